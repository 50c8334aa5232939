//! A pseudo-terminal for a child's standard streams, so a test can answer
//! the questions kiln asks only on a terminal.

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use std::fs::File;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

/// A child whose standard input, output and error are one terminal.
pub struct Session {
    master: File,
    child: Child,
    /// Everything the terminal has shown so far.
    pub screen: String,
}

impl Session {
    /// Starts `cmd` on a new pseudo-terminal.
    pub fn spawn(cmd: &mut Command) -> Session {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(name.to_str().unwrap())
                .unwrap()
        };
        let child = cmd
            .stdin(Stdio::from(slave()))
            .stdout(Stdio::from(slave()))
            .stderr(Stdio::from(slave()))
            .spawn()
            .unwrap();
        // Drop the Command's copies of the slave end, so the master reads
        // end of file once the child is gone.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Session {
            master: File::from(master),
            child,
            screen: String::new(),
        }
    }

    /// Reads until the screen shows `text` (panics at end of output).
    pub fn wait_for(&mut self, text: &str) {
        while !self.screen.contains(text) {
            assert!(
                self.read_some(),
                "{text:?} never appeared:\n{}",
                self.screen
            );
        }
    }

    /// Types `text` on the terminal.
    pub fn type_line(&mut self, text: &str) {
        self.master
            .write_all(format!("{text}\n").as_bytes())
            .unwrap();
    }

    /// Sends the child SIGINT, as Ctrl-C on its terminal would.
    pub fn interrupt(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    }

    /// Whether the terminal echoes what is typed.
    pub fn echoes(&self) -> bool {
        rustix::termios::tcgetattr(&self.master)
            .unwrap()
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO)
    }

    /// Reads to the end and waits for the child; its exit code. The
    /// terminal stays, to be looked at.
    pub fn wait(&mut self) -> i32 {
        while self.read_some() {}
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    /// [`Session::wait`], and the screen.
    pub fn finish(mut self) -> (i32, String) {
        let code = self.wait();
        (code, self.screen)
    }

    fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            // EIO: the last slave descriptor closed.
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.screen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
        }
    }
}
