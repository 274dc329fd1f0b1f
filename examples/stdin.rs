//! A secret typed (or piped) on standard input, read straight into guarded
//! memory and sealed: run with `cargo run --example stdin`, or
//! `printf 'correct horse\n' | cargo run --example stdin`.
//!
//! For a password typed at the terminal, `LockedBuffer::read_password` does
//! all of this in one call (`examples/password.rs`); this example shows the
//! route by hand, which also takes piped input.
//!
//! When standard input is a terminal, echo is switched off while the line is
//! read and switched back on afterwards, whatever happens (an error, a
//! panic, or Ctrl-C). The line goes into guarded memory one byte at a time
//! with `LockedBuffer::from_reader_until`, so nothing past the newline is
//! consumed and no ordinary buffer ever holds the secret. Only its length is
//! printed.
//!
//! Note: `std::io::stdin().lock()` is buffered: a one-byte read through it
//! fills its 8 KiB heap buffer from the descriptor first, and that buffer is
//! never wiped. So the line is read through an unbuffered handle on the same
//! descriptor instead (a duplicate of fd 0, made without `unsafe`), while
//! the `Stdin` lock keeps other threads of the process off it.

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    by_hand::main()
}

/// Echo is switched with `termios`, so this route is Unix only; on Windows
/// use `LockedBuffer::read_password` (examples/password.rs).
#[cfg(not(unix))]
fn main() {
    eprintln!("this example switches echo with termios: Unix only; see examples/password.rs");
}

#[cfg(unix)]
mod by_hand {
    use std::io::{IsTerminal, Write};
    use std::os::fd::AsFd;
    use std::process::ExitCode;
    use std::sync::Mutex;

    use memguard::{Error, LockedBuffer};

    pub fn main() -> ExitCode {
        let code = match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
        memguard::purge();
        code
    }

    fn run() -> Result<(), Box<dyn std::error::Error>> {
        let stdin = std::io::stdin();
        let line = {
            // Restores echo when dropped, on every path out of this block.
            let echo = EchoOff::if_terminal(&stdin)?;
            if echo.is_some() {
                eprint!("secret (not echoed): ");
                std::io::stderr().flush()?;
            }
            let locked = stdin.lock();
            let unbuffered = std::fs::File::from(locked.as_fd().try_clone_to_owned()?);
            let line = LockedBuffer::from_reader_until(&unbuffered, b'\n');
            drop(unbuffered);
            drop(locked);
            if echo.is_some() {
                // The newline the user typed was not echoed either.
                eprintln!();
            }
            line
        };
        let line = match line {
            Ok(line) => line,
            Err(Error::NullBuffer) => {
                return Err("no input: expected a line on standard input".into());
            }
            Err(e) => return Err(format!("reading standard input failed: {e}").into()),
        };
        let len = line.len();
        // Sealing destroys the buffer; the secret now exists only encrypted.
        let sealed = line.seal()?;
        println!("read {len} bytes, sealed");
        debug_assert_eq!(sealed.len(), len);
        Ok(())
    }

    /// The terminal settings from before echo was switched off, for the
    /// signal handler to put back.
    static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

    /// Echo switched off on file descriptor 0; switched back on when dropped.
    struct EchoOff;

    impl EchoOff {
        /// Switches echo off when standard input is a terminal; `None` (nothing
        /// to restore) when it is a pipe or a file.
        fn if_terminal(stdin: &std::io::Stdin) -> std::io::Result<Option<EchoOff>> {
            if !stdin.is_terminal() {
                return Ok(None);
            }
            // SAFETY: termios is plain old data; tcgetattr fills it in.
            let mut original: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: fd 0 is open and `original` is a valid termios to write.
            if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut original) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            *saved() = Some(original);
            // Ctrl-C (and the other terminating signals) while echo is off:
            // put echo back, then memguard purges and exits.
            memguard::catch_signal(|_| restore(), &[]).map_err(std::io::Error::other)?;
            let mut quiet = original;
            // Keep ECHONL off too, so not even the newline shows.
            quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
            // SAFETY: fd 0 is a terminal and `quiet` a valid termios.
            if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &quiet) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Some(EchoOff))
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            restore();
        }
    }

    fn saved() -> std::sync::MutexGuard<'static, Option<libc::termios>> {
        SAVED.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the saved terminal settings back, once.
    fn restore() {
        if let Some(original) = saved().take() {
            // SAFETY: `original` came from tcgetattr on the same descriptor.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &original) };
        }
    }
}
