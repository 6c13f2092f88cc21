//! CPU time used by this process (all threads, user plus system), read from Linux's
//! `/proc/self/stat`, so a report can say how much of the machine the load generator
//! itself took. `None` where that file is missing or unreadable; never panics.

use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every mainstream
/// architecture (it is fixed by the ABI, unlike the kernel's HZ).
const USER_HZ: u64 = 100;

/// User plus system CPU time of this process so far.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_time_from_stat(&stat)
}

/// Parses `utime + stime` out of a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after the last `)`.
fn cpu_time_from_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3; utime is field 14 and stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(ticks.checked_mul(1000 / USER_HZ)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_plus_stime_after_a_name_with_spaces() {
        let line = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_time_from_stat(line), Some(Duration::from_millis(3000)));
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(cpu_time_from_stat(""), None);
        assert_eq!(cpu_time_from_stat("12 (x) S 1 2"), None);
        assert_eq!(
            cpu_time_from_stat("12 (x) S 1 2 3 4 5 6 7 8 9 10 x 5"),
            None
        );
    }
}
