//! `kvctl shell`: a REPL with a prompt and history on a terminal; one command per line
//! and one flushed result line per command otherwise (for scripts and test drivers).

use crate::command::{execute, parse_line, Outcome};
use crate::output::{outcome_json, outcome_text};
use clerk::Clerk;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Runs the shell until end of input.
pub fn run(clerk: &Clerk, json: bool) -> ExitCode {
    if std::io::stdin().is_terminal() && !json {
        interactive(clerk)
    } else {
        line_mode(clerk, json)
    }
}

fn line_mode(clerk: &Clerk, json: bool) -> ExitCode {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let text = match parse_line(&line) {
            Ok(None) => continue,
            Ok(Some(cmd)) => render(&execute(clerk, &cmd), json),
            Err(e) if json => json!({"ok": false, "error": e, "definite": true}).to_string(),
            Err(e) => format!("error: {e}"),
        };
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn render(outcome: &Outcome, json: bool) -> String {
    if json {
        outcome_json(outcome).to_string()
    } else {
        outcome_text(outcome)
    }
}

fn interactive(clerk: &Clerk) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(_) => return line_mode(clerk, false),
    };
    println!("raftkv shell: get KEY | put KEY VALUE | append KEY VALUE | delete KEY | cas KEY EXPECTED NEW | quit");
    loop {
        match editor.readline("raftkv> ") {
            Ok(line) => {
                let trimmed = line.trim();
                if trimmed == "quit" || trimmed == "exit" {
                    break;
                }
                if !trimmed.is_empty() {
                    let _ = editor.add_history_entry(trimmed);
                }
                match parse_line(&line) {
                    Ok(None) => {}
                    Ok(Some(cmd)) => println!("{}", outcome_text(&execute(clerk, &cmd))),
                    Err(e) => println!("error: {e}"),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    ExitCode::SUCCESS
}
