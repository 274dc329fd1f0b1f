//! Keep secrets (keys, passwords, tokens) safe in a process's memory.
//!
//! A Rust implementation of the design of Go's
//! [memguard](https://github.com/awnumar/memguard): guarded, locked memory
//! for secrets while they are in use, and (in later releases of this crate)
//! encryption while they are not.
//!
//! # At a glance
//!
//! ```
//! use memguard::LockedBuffer;
//!
//! // 32 random bytes in locked memory between two guard pages, read-only.
//! let key = LockedBuffer::random(32)?;
//!
//! // A secret read straight from a source into guarded memory.
//! let mut input = &b"hunter2\n"[..];
//! let password = LockedBuffer::from_reader_until(&mut input, b'\n')?;
//! assert!(password.equal_to(b"hunter2")); // constant time
//!
//! // Access goes through guards; Debug never shows the contents.
//! assert_eq!(key.bytes().len(), 32);
//! assert_eq!(format!("{password:?}"), "LockedBuffer { len: 7, alive: true, mutable: false, .. }");
//!
//! // Wipe everything, for instance before exiting.
//! memguard::purge();
//! assert!(!key.is_alive());
//! # Ok::<(), memguard::Error>(())
//! ```
//!
//! # What each protection is
//!
//! See [`LockedBuffer`] for the memory layout and what each part guards
//! against. On its first allocation the crate also turns core dumps off and
//! marks the process non-dumpable; [`disable_process_hardening`] opts out.
//!
//! # Concurrency
//!
//! [`LockedBuffer`] is `Send + Sync`. Reading takes a [`Ref`] guard, writing
//! a [`RefMut`] guard (which needs `&mut`). [`purge`] may run on any thread
//! at any time: a buffer borrowed at that moment is destroyed when its last
//! guard is dropped, so no safe code can see memory being wiped or freed,
//! and nothing ever blocks or deadlocks.
//!
//! # Platform
//!
//! Linux only for now; the memory layer keeps each operating system behind a
//! small internal interface so that other backends can follow.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(rust_2018_idioms)]

mod buffer;
mod coffer;
mod crypto;
mod enclave;
mod error;
#[allow(unsafe_code)]
mod mem;
mod session;
mod signals;
mod stream;

pub use buffer::LockedBuffer;
pub use bytemuck;
pub use coffer::set_rekey_interval;
pub use crypto::scramble_bytes;
pub use enclave::Enclave;
pub use error::{Error, Result};
pub use mem::{
    crash_handler_installed, disable_process_hardening, is_process_hardened, wipe_bytes, Ref,
    RefMut,
};
pub use session::{live_buffers, purge, safe_exit, safe_panic};
pub use signals::{catch_interrupt, catch_signal, TERMINATING_SIGNALS};
pub use stream::{Stream, DEFAULT_CHUNK_SIZE};
