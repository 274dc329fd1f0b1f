//! Keep secrets (keys, passwords, tokens) safe in a process's memory.
//!
//! A Rust implementation of the design of Go's
//! [memguard](https://github.com/awnumar/memguard): guarded, locked memory
//! for secrets while they are in use ([`LockedBuffer`]), encryption while
//! they are not ([`Enclave`], [`Stream`]), and ways to wipe everything at
//! once ([`purge`], [`safe_exit`], [`catch_signal`], and a wipe before a
//! crash).
//!
//! What it protects against, how, the test that shows it, and what it does
//! not protect against: the [`threat_model`] (THREAT_MODEL.md in the
//! repository).
//!
//! # At a glance
//!
//! ```
//! use memguard::{Enclave, LockedBuffer};
//!
//! // 32 random bytes in locked memory between two guard pages, read-only.
//! let key = LockedBuffer::random(32)?;
//!
//! // A secret read from a source straight into guarded memory.
//! let mut input = &b"hunter2\n"[..];
//! let password = LockedBuffer::from_reader_until(&mut input, b'\n')?;
//! assert!(password.equal_to(b"hunter2")); // constant time
//!
//! // Access goes through guards; Debug never shows the contents.
//! assert_eq!(key.try_bytes()?.len(), 32); // an error, not an empty slice, once purged
//! assert_eq!(format!("{password:?}"), "LockedBuffer { len: 7, alive: true, mutable: false, .. }");
//!
//! // Sealed while not in use; opened into guarded memory when needed.
//! let sealed: Enclave = password.seal()?;
//! assert!(sealed.open()?.equal_to(b"hunter2"));
//!
//! // Wipe everything, for instance before exiting.
//! memguard::purge();
//! assert!(!key.is_alive());
//! assert!(sealed.open().is_err()); // the session key is gone
//! # Ok::<(), memguard::Error>(())
//! ```
//!
//! # What each protection is
//!
//! See [`LockedBuffer`] for the memory layout and what each part guards
//! against, [`Enclave`] for the sealing, and [`Protections`] for what each
//! operating system gives each buffer. On its first allocation the crate
//! turns core dumps off and keeps debuggers out as far as the system lets
//! it ([`disable_process_hardening`] opts out), and installs a fault hook
//! (a SIGSEGV/SIGBUS handler on Unix, a vectored exception handler on
//! Windows) that wipes every buffer before the process dies
//! ([`crash_handler_installed`]).
//!
//! # Concurrency
//!
//! [`LockedBuffer`], [`Enclave`] and [`Stream`] are `Send + Sync`. Reading a
//! buffer takes a [`Ref`] guard, writing a [`RefMut`] guard (which needs
//! `&mut`). [`purge`] may run on any thread at any time: a buffer borrowed at
//! that moment is destroyed when its last guard is dropped, so no safe code
//! can see memory being wiped or freed, and nothing blocks or deadlocks.
//!
//! # Package name and features
//!
//! The package on crates.io is `memguard-enclave`; the library is `memguard`
//! (`use memguard::LockedBuffer`). Optional features:
//!
//! - `serde`: `Deserialize` for [`LockedBuffer`] and [`Enclave`] from
//!   strings and byte sequences, wiping owned intermediates; no `Serialize`.
//! - `secrecy`: `secrecy::ExposeSecret` for the read guards ([`Ref`]).
//!
//! In a debug build of your application the cipher runs many times slower
//! unless this crate is optimised: set
//! `[profile.dev.package.memguard-enclave] opt-level = 3`.
//!
//! # Platform
//!
//! Linux (x86-64, AArch64), macOS, FreeBSD, OpenBSD and Windows. Every call
//! into the operating system lives in one platform layer; what each system
//! gives a buffer is [`LockedBuffer::protections`], and the repository's
//! README has the table of protections by system and how each is tested.
#![deny(missing_docs)]
#![deny(unsafe_code)]
// Every `unsafe` block (allowed only in the platform layer, the crash handler
// and the vectorised cipher) says why it holds, in a `// SAFETY:` comment.
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(rust_2018_idioms)]

mod buffer;
mod coffer;
mod crypto;
mod enclave;
mod error;
mod interop;
#[allow(unsafe_code)]
mod mem;
mod session;
mod signals;
mod stream;

#[doc = include_str!("../THREAT_MODEL.md")]
pub mod threat_model {}

// The crates.io README's examples run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../CRATE_README.md")]
struct CrateReadme;

pub use buffer::LockedBuffer;
/// The `bytemuck` crate, version 1, re-exported on purpose: its `Pod` and
/// `AnyBitPattern` traits bound the typed views ([`LockedBuffer::as_pod`],
/// [`LockedBuffer::slice_of`]), so bytemuck 1 is part of this crate's API
/// either way. Derive through this path
/// (`#[bytemuck(crate = "memguard::bytemuck")]`) to get the version the
/// views expect. A move to a bytemuck 2 would be a breaking release here.
pub use bytemuck;
pub use coffer::set_rekey_interval;
pub use crypto::scramble_bytes;
pub use enclave::Enclave;
pub use error::{Error, Result};
pub use mem::{
    compact_mode, compact_slots_per_page, compact_usage, crash_handler_installed,
    disable_process_hardening, is_process_hardened, memory_backend, memory_backend_reason,
    set_compact_mode, set_memory_backend, set_no_access_between_uses, set_spare_limit,
    simulate_kernel_without_wipe_on_fork, spare_limit, spare_mappings, wipe_bytes, CompactMode,
    MemoryBackend, Protections, Ref, RefMut, COMPACT_MAX_FRACTION,
};
pub use session::{live_buffers, purge, safe_exit, safe_panic};
pub use signals::{catch_interrupt, catch_signal, catch_signals, Signal, TERMINATING_SIGNALS};
pub use stream::{Stream, DEFAULT_CHUNK_SIZE};
