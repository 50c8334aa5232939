//! Which process owns a snapshot, told apart from a later process that got
//! the same pid: the pid plus the process's start time from /proc.

use std::fs;

/// A process, identified so that pid reuse cannot fool a liveness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pid: u32,
    /// Clock ticks after boot when the process started (/proc/PID/stat
    /// field 22).
    start: u64,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            // /proc missing means nothing can be checked anyway; 0 still
            // keeps our records well-formed.
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// Whether this process is still running.
    pub(crate) fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// The prefix of work-directory names this process creates, which
    /// [`Owner::from_name`] reads back.
    pub(crate) fn name_prefix(&self) -> String {
        format!("{}.{}.", self.pid, self.start)
    }

    /// The owner encoded at the start of a name made from
    /// [`Owner::name_prefix`].
    pub(crate) fn from_name(name: &str) -> Option<Owner> {
        let mut parts = name.splitn(3, '.');
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        parts.next()?;
        Some(Owner { pid, start })
    }

    /// The text of an owner file.
    pub(crate) fn record(&self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    /// Reads the text of an owner file.
    pub(crate) fn parse_record(text: &str) -> Option<Owner> {
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        Some(Owner { pid, start })
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses itself, so count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::current();
        assert!(me.is_alive());
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn names_and_records_round_trip() {
        let me = Owner::current();
        let name = format!("{}abc.def", me.name_prefix());
        assert_eq!(Owner::from_name(&name), Some(me));
        assert_eq!(Owner::from_name("layer-x"), None);
        assert_eq!(Owner::parse_record(&me.record()), Some(me));
        assert_eq!(Owner::parse_record("garbage"), None);
    }
}
