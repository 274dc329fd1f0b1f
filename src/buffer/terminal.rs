//! [`LockedBuffer::read_password`]: a prompt on the terminal, echo off, the
//! line read straight into guarded memory.

use std::fs::File;
use std::io::{self, Read, Write};

use super::LockedBuffer;
use crate::error::{Error, Result};
use crate::mem::sys::{OsTerminal, Terminal};

impl LockedBuffer {
    /// Prints `prompt` on the terminal, switches echo off, and reads one line
    /// into an immutable guarded buffer; echo is switched back on before it
    /// returns, whatever happens (an error or a panic). The line ending
    /// (`\n` or `\r\n`) is not kept.
    ///
    /// It talks to the process's controlling terminal (`/dev/tty` on Unix,
    /// the console's `CONIN$` and `CONOUT$` on Windows), not to standard
    /// input or output, so it works with both redirected. The line is read
    /// one byte at a time, unbuffered, straight into guarded memory: no heap
    /// or stack buffer holds it. (Reading a password with
    /// `std::io::stdin().read_line` would leave it in `Stdin`'s 8 KiB buffer,
    /// which is never wiped, and in the `String`.) The terminal driver's own
    /// line buffer is the operating system's.
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
        let (input, output) = OsTerminal::open().map_err(|source| Error::NoTerminal { source })?;
        read_password_on::<OsTerminal>(&input, &output, prompt)
    }
}

/// Echo off, prompt, one line, echo back on.
pub(crate) fn read_password_on<T: Terminal>(
    input: &File,
    output: &File,
    prompt: &str,
) -> Result<LockedBuffer> {
    let echo = EchoOff::<T>::new(input)?;
    let io_error = |source| Error::Io { read: 0, source };
    let mut out = output;
    out.write_all(prompt.as_bytes()).map_err(io_error)?;
    out.flush().map_err(io_error)?;
    let line = read_line(input);
    drop(echo);
    line
}

/// Switches echo off and back to what it was when dropped.
struct EchoOff<'a, T: Terminal> {
    input: &'a File,
    saved: T::Saved,
}

impl<'a, T: Terminal> EchoOff<'a, T> {
    fn new(input: &'a File) -> Result<EchoOff<'a, T>> {
        let saved = T::echo_off(input).map_err(|source| Error::NoTerminal { source })?;
        Ok(EchoOff { input, saved })
    }
}

impl<T: Terminal> Drop for EchoOff<'_, T> {
    fn drop(&mut self) {
        T::restore(self.input, &self.saved);
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
}
