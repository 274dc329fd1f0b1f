//! The controlling terminal on Unix: `/dev/tty`, echo switched with
//! `termios`.

use std::fs::{File, OpenOptions};
use std::io;

use rustix::termios::{self, LocalModes, OptionalActions, Termios};

use crate::mem::sys::Terminal;

/// `/dev/tty` through `termios`.
pub(crate) struct Tty;

/// Opens the terminal at `path`, for reading and writing.
fn open_at(path: &str) -> io::Result<(File, File)> {
    let tty = OpenOptions::new().read(true).write(true).open(path)?;
    let out = tty.try_clone()?;
    Ok((tty, out))
}

impl Terminal for Tty {
    type Saved = Termios;

    fn open() -> io::Result<(File, File)> {
        open_at("/dev/tty")
    }

    /// Echo off, but the newline still echoed (`ECHONL`), so the cursor
    /// moves on.
    fn echo_off(input: &File) -> io::Result<Termios> {
        let saved = termios::tcgetattr(input)?;
        let mut quiet = saved.clone();
        quiet
            .local_modes
            .remove(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK);
        quiet.local_modes.insert(LocalModes::ECHONL);
        termios::tcsetattr(input, OptionalActions::Now, &quiet)?;
        Ok(saved)
    }

    fn restore(input: &File, saved: &Termios) {
        // Nothing better to do on failure than to leave the terminal as is.
        let _ = termios::tcsetattr(input, OptionalActions::Now, saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    #[cfg_attr(miri, ignore = "no files under Miri's isolation")]
    fn no_terminal_is_an_error() {
        for path in ["/dev/null", "/nonexistent/tty"] {
            let opened = open_at(path).and_then(|(input, _)| Tty::echo_off(&input));
            assert!(opened.is_err(), "{path}");
        }
    }

    /// On a pseudo-terminal: the prompt is shown, the typed line is not
    /// echoed, and echo is on again afterwards.
    #[test]
    #[cfg_attr(miri, ignore = "no pseudo-terminals under Miri")]
    fn prompt_turns_echo_off_and_back_on() {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let (input, output) = open_at(name.to_str().unwrap()).unwrap();
        let mut master = File::from(master);

        let reader = std::thread::spawn(move || {
            let line = crate::buffer::read_password_on::<Tty>(&input, &output, "Password: ");
            (line, termios::tcgetattr(input.as_fd()).unwrap())
        });
        // The prompt is written once echo is off: wait for it, then type.
        let mut seen = Vec::new();
        while !seen.ends_with(b"Password: ") {
            let mut chunk = [0u8; 64];
            let n = master.read(&mut chunk).unwrap();
            seen.extend_from_slice(&chunk[..n]);
        }
        master.write_all(b"s3cret\n").unwrap();
        let (line, after) = reader.join().unwrap();
        let line = line.unwrap();
        assert_eq!(&*line.as_str().unwrap(), "s3cret");
        assert!(after.local_modes.contains(LocalModes::ECHO));

        // Only the newline was echoed (ECHONL), never the secret.
        let mut chunk = [0u8; 64];
        let n = master.read(&mut chunk).unwrap();
        let echoed = &chunk[..n];
        assert!(!echoed.windows(2).any(|w| w == b"s3"), "{echoed:?}");
        assert!(echoed.contains(&b'\n'), "{echoed:?}");
    }
}
