//! A key sent over a (loopback) TCP connection, read straight into guarded
//! memory on the receiving side: run with `cargo run --example socketkey`.
//!
//! The sender keeps its copy of the key in a `LockedBuffer` and writes it
//! from there; the receiver reads it with `LockedBuffer::from_reader`, so the
//! key never passes through an ordinary heap or stack buffer in this process
//! (the kernel's socket buffers are out of our hands: use TLS or another
//! encrypted channel for anything but loopback). The received key is then
//! sealed into an `Enclave`, opened again and compared, in constant time,
//! with what was sent.
//!
//! Prints `keys match: true` and exits 0, or exits non-zero.

use std::error::Error;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use memguard::LockedBuffer;

const KEY_LEN: usize = 32;

fn main() -> ExitCode {
    let outcome = run();
    // Wipe everything that is left before reporting.
    memguard::purge();
    match outcome {
        Ok(true) => {
            println!("keys match: true");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("keys match: false");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<bool, Box<dyn Error>> {
    // Port 0: the operating system picks a free port, on loopback only.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    // Connecting before accepting succeeds (the connection waits in the
    // backlog), so neither side can be left waiting for the other to start.
    let outgoing = TcpStream::connect(addr)?;
    println!("listening on {addr}");

    let sender = std::thread::spawn(move || -> Result<LockedBuffer, memguard::Error> {
        let mut outgoing = outgoing;
        let key = LockedBuffer::random(KEY_LEN)?;
        outgoing
            .write_all(&key.bytes())
            .and_then(|()| outgoing.flush())
            .map_err(|source| memguard::Error::Io { read: 0, source })?;
        // Closing the connection here; the sender keeps its copy.
        drop(outgoing);
        Ok(key)
    });

    let (incoming, peer) = listener.accept()?;
    // A sender that died without closing must not hang the receiver.
    incoming.set_read_timeout(Some(Duration::from_secs(10)))?;
    let received = LockedBuffer::from_reader(incoming, KEY_LEN)?;
    println!(
        "received {} bytes from {peer} into guarded memory",
        received.len()
    );

    let sent = sender.join().map_err(|_| "the sender thread panicked")??;

    // Seal the received key (the buffer is destroyed), then open it again.
    let sealed = received.seal()?;
    println!("sealed into {sealed:?}");
    let opened = sealed.open()?;
    let same = opened.equal_to(&sent.bytes());
    Ok(same)
}
