//! [`LockedBuffer::read_password`]: a prompt on the terminal, echo off, the
//! line read straight into guarded memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use rustix::termios::{self, LocalModes, OptionalActions, Termios};

use super::LockedBuffer;
use crate::error::{Error, Result};

impl LockedBuffer {
    /// Prints `prompt` on the terminal, switches echo off, and reads one line
    /// into an immutable guarded buffer; echo is switched back on before it
    /// returns, whatever happens (an error or a panic). The line ending
    /// (`\n` or `\r\n`) is not kept.
    ///
    /// It talks to the process's controlling terminal (`/dev/tty`), not to
    /// standard input or output, so it works with both redirected. The line
    /// is read one byte at a time, unbuffered, straight into guarded memory:
    /// no heap or stack buffer holds it. (Reading a password with
    /// `std::io::stdin().read_line` would leave it in `Stdin`'s 8 KiB buffer,
    /// which is never wiped, and in the `String`.) The terminal driver's own
    /// line buffer is the kernel's.
    ///
    /// Errors: [`Error::NoTerminal`] when there is no controlling terminal
    /// (a service, CI, a pipeline under `setsid`): read the secret some other
    /// way then, for instance with [`from_reader_until`](LockedBuffer::from_reader_until)
    /// on an unbuffered standard input; [`Error::EmptyLine`] when the line is
    /// empty or input ends first (Ctrl-D); [`Error::Io`] when reading fails.
    ///
    /// A signal that ends the process while the prompt waits (Ctrl-C with
    /// [`catch_interrupt`](crate::catch_interrupt), which exits at once)
    /// leaves echo off; `stty echo` or `reset` brings it back.
    ///
    /// ```no_run
    /// let password = memguard::LockedBuffer::read_password("Password: ")?;
    /// let text = password.as_str()?; // or try_bytes() for any bytes
    /// # drop(text);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn read_password(prompt: &str) -> Result<LockedBuffer> {
        read_password_at(Path::new("/dev/tty"), prompt)
    }
}

/// [`LockedBuffer::read_password`] on the terminal at `path`.
fn read_password_at(path: &Path, prompt: &str) -> Result<LockedBuffer> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| Error::NoTerminal { source })?;
    read_password_on(&tty, prompt)
}

/// Echo off, prompt, one line, echo back on.
fn read_password_on(tty: &File, prompt: &str) -> Result<LockedBuffer> {
    let echo = EchoOff::new(tty)?;
    let io_error = |source| Error::Io { read: 0, source };
    let mut out = tty;
    out.write_all(prompt.as_bytes()).map_err(io_error)?;
    out.flush().map_err(io_error)?;
    let line = read_line(tty);
    drop(echo);
    line
}

/// Switches echo off (but keeps echoing the newline, so the cursor moves on)
/// and back to what it was when dropped.
struct EchoOff<'a> {
    tty: &'a File,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn new(tty: &'a File) -> Result<EchoOff<'a>> {
        let no_terminal = |e: rustix::io::Errno| Error::NoTerminal { source: e.into() };
        let saved = termios::tcgetattr(tty).map_err(no_terminal)?;
        let mut quiet = saved.clone();
        quiet
            .local_modes
            .remove(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK);
        quiet.local_modes.insert(LocalModes::ECHONL);
        termios::tcsetattr(tty, OptionalActions::Now, &quiet).map_err(no_terminal)?;
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // Nothing better to do on failure than to leave the terminal as is.
        let _ = termios::tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

/// One line from `r`, read a byte at a time into guarded memory, without its
/// `\n` or `\r\n`. An empty line, or an end of input before any byte, is
/// [`Error::EmptyLine`].
fn read_line<R: Read>(mut r: R) -> Result<LockedBuffer> {
    let mut buf = LockedBuffer::new(crate::mem::page_size())?;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf = buf.grown(filled)?;
        }
        let byte = {
            let mut data = buf.bytes_mut()?;
            loop {
                match r.read(&mut data[filled..=filled]) {
                    Ok(0) => break None,
                    Ok(_) => break Some(data[filled]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(Error::Io {
                            read: filled,
                            source,
                        })
                    }
                }
            }
        };
        match byte {
            None | Some(b'\n') => break,
            Some(_) => filled += 1,
        }
    }
    if filled > 0 && buf.try_bytes()?[filled - 1] == b'\r' {
        filled -= 1;
    }
    if filled == 0 {
        return Err(Error::EmptyLine);
    }
    // The line ending left past `filled` is overwritten by the canary.
    buf.finish(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn line_endings_are_stripped() {
        let line = read_line(&b"hunter2\r\nrest"[..]).unwrap();
        assert!(line.equal_to(b"hunter2"));
        let line = read_line(&b"hunter2\n"[..]).unwrap();
        assert!(line.equal_to(b"hunter2"));
        let line = read_line(&b"no newline"[..]).unwrap();
        assert!(line.equal_to(b"no newline"));
        assert!(!line.is_mutable());
    }

    #[test]
    fn empty_lines_are_an_error() {
        for input in [&b"\n"[..], b"\r\n", b""] {
            assert!(
                matches!(read_line(input), Err(Error::EmptyLine)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn long_lines_grow_the_buffer() {
        let mut input = vec![b'x'; 3 * crate::mem::page_size() + 5];
        input.push(b'\n');
        let line = read_line(&input[..]).unwrap();
        assert_eq!(line.len(), input.len() - 1);
    }

    #[test]
    fn no_terminal_is_a_clear_error() {
        for path in ["/dev/null", "/nonexistent/tty"] {
            let e = read_password_at(Path::new(path), "Password: ").unwrap_err();
            assert!(matches!(e, Error::NoTerminal { .. }), "{path}: {e:?}");
            assert!(e.to_string().contains("no terminal"), "{e}");
        }
    }

    /// On a pseudo-terminal: the prompt is shown, the typed line is not
    /// echoed, and echo is on again afterwards.
    #[test]
    fn prompt_turns_echo_off_and_back_on() {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let path = std::path::PathBuf::from(name.to_str().unwrap());
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut master = File::from(master);

        let reader = std::thread::spawn(move || {
            let line = read_password_on(&slave, "Password: ");
            (line, termios::tcgetattr(slave.as_fd()).unwrap())
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
