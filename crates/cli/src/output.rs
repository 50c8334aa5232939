//! Standard output and error that a closed pipe cannot break.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader has gone fails
//! with EPIPE, and `println!`/`eprintln!` panic on that error:
//! `kiln images | head -1` crashed, and `kiln build 2>&1 | head` killed the
//! build half-way. Every line the CLI prints goes through here instead
//! (`clippy::print_stdout` and `print_stderr` are denied in the crate). A
//! stream whose reader is gone is marked closed and later writes to it are
//! dropped without a word, as docker does: a query stops printing and ends
//! as usual, and a build keeps going and stores its image.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first failure other than a closed pipe on standard output (a full
/// disk under `> file`), which [`stdout_error`] hands to `main` so the
/// command does not claim success for output that was lost.
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// Writes to standard output; see the module documentation.
pub fn write_out(args: fmt::Arguments) {
    if let Err(e) = write(&mut io::stdout().lock(), &STDOUT_CLOSED, args) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(e);
        }
    }
}

/// Copies `data` to standard output as bytes (`kiln save` without `-o`),
/// with the same rules as [`write_out`]: a reader that went away stops
/// the copy quietly, any other failure is reported by [`stdout_error`].
pub fn copy_out(data: &mut dyn io::Read) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = io::copy(data, &mut out).and_then(|_| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(e);
        }
    }
}

/// Writes to standard error; see the module documentation. A failure has
/// nowhere to be reported, so any failure closes the stream.
pub fn write_err(args: fmt::Arguments) {
    let _ = write(&mut io::stderr().lock(), &STDERR_CLOSED, args);
}

/// Takes the error that stopped standard output, unless the reader simply
/// went away.
pub fn stdout_error() -> Option<io::Error> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

fn write(w: &mut impl Write, closed: &AtomicBool, args: fmt::Arguments) -> io::Result<()> {
    if closed.load(Ordering::Relaxed) {
        return Ok(());
    }
    // Flushing each write finds a closed reader at once, not at exit when
    // the buffer is flushed and the error can no longer be acted on.
    let result = w.write_fmt(args).and_then(|()| w.flush());
    if result.is_err() {
        closed.store(true, Ordering::Relaxed);
    }
    result
}

/// `print!` through [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// `println!` through [`write_out`].
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`write_err`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
