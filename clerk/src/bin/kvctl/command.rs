//! The five key-value commands, shared by one-shot invocations and the shell.

use clerk::{Clerk, ClerkError};

/// A key-value command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Append {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    Cas {
        key: String,
        expected: String,
        new: String,
    },
}

/// What a command did.
#[derive(Debug)]
pub enum Outcome {
    /// A put, append or delete succeeded.
    Written,
    /// A get's value (lossily decoded as UTF-8), or `None` when absent.
    Value(Option<String>),
    /// A cas happened or not.
    Swapped(bool),
    /// The operation failed.
    Failed(ClerkError),
}

/// Runs `command` on `clerk`.
pub fn execute(clerk: &Clerk, command: &Command) -> Outcome {
    let result = match command {
        Command::Get { key } => {
            return match clerk.get(key.clone().into_bytes()) {
                Ok(v) => Outcome::Value(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
                Err(e) => Outcome::Failed(e),
            }
        }
        Command::Put { key, value } => {
            clerk.put(key.clone().into_bytes(), value.clone().into_bytes())
        }
        Command::Append { key, value } => {
            clerk.append(key.clone().into_bytes(), value.clone().into_bytes())
        }
        Command::Delete { key } => clerk.delete(key.clone().into_bytes()).map(|_| ()),
        Command::Cas { key, expected, new } => {
            return match clerk.cas(
                key.clone().into_bytes(),
                expected.clone().into_bytes(),
                new.clone().into_bytes(),
            ) {
                Ok(s) => Outcome::Swapped(s),
                Err(e) => Outcome::Failed(e),
            }
        }
    };
    match result {
        Ok(()) => Outcome::Written,
        Err(e) => Outcome::Failed(e),
    }
}

/// Parses a shell line. Tokens are separated by spaces; `"..."` quotes a token (with
/// `\"` and `\\` escapes; `""` is the empty string). The VALUE of put/append, and NEW of
/// cas, is the rest of the line.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (verb, rest) = split_word(line);
    let cmd = match verb.to_ascii_lowercase().as_str() {
        "get" => Command::Get {
            key: only_token(rest, "get KEY")?,
        },
        "delete" | "del" => Command::Delete {
            key: only_token(rest, "delete KEY")?,
        },
        "put" | "append" => {
            let (key, value) = token(rest)?;
            let key = key.ok_or_else(|| format!("usage: {verb} KEY VALUE"))?;
            let value = unquote_rest(value)?;
            if verb.eq_ignore_ascii_case("put") {
                Command::Put { key, value }
            } else {
                Command::Append { key, value }
            }
        }
        "cas" => {
            let usage = || "usage: cas KEY EXPECTED NEW".to_string();
            let (key, rest) = token(rest)?;
            let (expected, rest) = token(rest)?;
            let new = unquote_rest(rest)?;
            Command::Cas {
                key: key.ok_or_else(usage)?,
                expected: expected.ok_or_else(usage)?,
                new,
            }
        }
        other => {
            return Err(format!(
                "unknown command {other:?} (get, put, append, delete, cas)"
            ))
        }
    };
    Ok(Some(cmd))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn only_token(s: &str, usage: &str) -> Result<String, String> {
    match token(s)? {
        (Some(t), rest) if rest.trim().is_empty() => Ok(t),
        _ => Err(format!("usage: {usage}")),
    }
}

/// The rest of the line as one value: unquoted if it is exactly one quoted token.
fn unquote_rest(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with('"') {
        if let (Some(t), rest) = token(s)? {
            if rest.trim().is_empty() {
                return Ok(t);
            }
        }
    }
    Ok(s.to_string())
}

/// One token (quoted or not) and the rest after it.
fn token(s: &str) -> Result<(Option<String>, &str), String> {
    let s = s.trim_start();
    if s.is_empty() {
        return Ok((None, s));
    }
    if !s.starts_with('"') {
        let (w, rest) = split_word(s);
        return Ok((Some(w.to_string()), rest));
    }
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Some(out), s[i + 1..].trim_start())),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, c)) => out.push(c),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quote".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse_line("get k").unwrap(),
            Some(Command::Get { key: "k".into() })
        );
        assert_eq!(
            parse_line("put k hello world").unwrap(),
            Some(Command::Put {
                key: "k".into(),
                value: "hello world".into()
            })
        );
        assert_eq!(
            parse_line("append \"a key\" \" x\"").unwrap(),
            Some(Command::Append {
                key: "a key".into(),
                value: " x".into()
            })
        );
        assert_eq!(
            parse_line("cas k \"\" new value").unwrap(),
            Some(Command::Cas {
                key: "k".into(),
                expected: "".into(),
                new: "new value".into()
            })
        );
        assert_eq!(parse_line("  ").unwrap(), None);
        assert!(parse_line("frob k").is_err());
        assert!(parse_line("get").is_err());
        assert!(parse_line("get \"unterminated").is_err());
        assert!(parse_line("cas k").is_err());
    }
}
