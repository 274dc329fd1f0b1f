//! A password from the terminal, the whole of it: run with
//! `cargo run --example password`.
//!
//! `LockedBuffer::read_password` prompts on the controlling terminal
//! (`/dev/tty`), switches echo off, reads the line unbuffered straight into
//! guarded memory and strips its `\n` / `\r\n`. Without a terminal (a
//! service, CI, `setsid`) it fails with `Error::NoTerminal`, whose message
//! says what to do instead; `main` returning `memguard::Error` prints it.
//! Only the password's length is printed.

use memguard::LockedBuffer;

fn main() -> Result<(), memguard::Error> {
    let password = LockedBuffer::read_password("Password (not echoed): ")?;
    let text = password.as_str()?; // a view of the guarded bytes, no copy
    println!("read {} characters", text.chars().count());
    drop(text);

    // Keep it sealed until it is needed again.
    let sealed = password.seal()?;
    println!("sealed: {} bytes", sealed.len());
    memguard::purge();
    Ok(())
}
