//! Questions asked on a terminal, as docker asks them: a confirmation
//! before deleting, and a user name and password for `kiln login`, the
//! password read without echo. Prompts go to standard error, so standard
//! output keeps only the command's result.

use anyhow::{bail, Context};
use std::io::{BufRead, IsTerminal};

/// Whether standard input is a terminal someone can answer on.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` with `[y/N]`; true for y or yes. Without a terminal,
/// fails with `refusal`: nobody can answer, and a script must say `-f`.
pub fn confirm(question: &str, refusal: &str) -> anyhow::Result<bool> {
    if !interactive() {
        bail!("{refusal}");
    }
    let answer = line(&format!("{question} [y/N] "))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Shows `prompt` and reads one line from standard input, without its
/// line ending.
pub fn line(prompt: &str) -> anyhow::Result<String> {
    crate::output::write_err(format_args!("{prompt}"));
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer from standard input")?;
    Ok(answer.trim_end_matches(['\n', '\r']).to_string())
}

/// Refuses: turning a Windows console's echo off is not written yet, and
/// a password must never be echoed.
#[cfg(not(unix))]
pub fn password(_prompt: &str) -> anyhow::Result<String> {
    bail!("kiln cannot read a password without echo on this OS's terminal: pass it on standard input with --password-stdin")
}

/// Shows `prompt` and reads a line with the terminal's echo off, turning
/// it back on whatever happens to the read, Ctrl-C included.
#[cfg(unix)]
pub fn password(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use signal_hook::consts::SIGINT;
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // Keep the newline the user types visible, as `sudo` does.
    quiet.local_modes.insert(LocalModes::ECHONL);
    // SIGINT would end kiln with the echo still off and leave the shell
    // blind: the handler turns it back on first, then exits as an
    // interrupted command does. It stays for the rest of the run (an
    // unregistered signal-hook handler would leave Ctrl-C doing nothing),
    // where putting the same settings back is harmless.
    let restore = before.clone();
    let on_interrupt = move || {
        let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &restore);
        let _ = rustix::io::write(rustix::stdio::stderr(), b"\n");
        signal_hook::low_level::exit(130);
    };
    // SAFETY: the handler is async-signal-safe: tcsetattr (an ioctl) and
    // write(2) on values made before it was installed, then _exit; no
    // allocation and no lock.
    unsafe { signal_hook::low_level::register(SIGINT, on_interrupt) }
        .context("installing the SIGINT handler")?;
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("turning the echo off")?;
    let answer = line(prompt);
    tcsetattr(&stdin, OptionalActions::Now, &before).context("turning the echo back on")?;
    answer
}
