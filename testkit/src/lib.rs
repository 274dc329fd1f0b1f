//! Test tooling for `memguard-enclave`: NOT part of the library, never
//! published, and free to be OS-specific (its Linux parts are behind
//! `cfg(target_os = "linux")`; the library's rule that only `src/mem/sys`
//! names an OS does not apply here).
//!
//! One implementation of each thing the integration tests (`tests/`) and
//! `memguard doctor`'s self-tests both need:
//!
//! - [`child`]: re-running a test binary for one scenario, any child process
//!   with a timeout (killed, never left hanging), reading its pipes on
//!   threads, and the marks a child prints before an action that should kill
//!   it;
//! - [`limits`] (Unix): dropping capabilities and setting `RLIMIT_MEMLOCK`
//!   in a child, so lock limits hold even for root;
//! - [`fork`] (Linux): forking from inside a child, with a pipe and a
//!   bounded wait;
//! - [`procfs`] (Linux): `/proc/<pid>/status`, `maps` and `smaps`;
//! - [`scan`] (Linux): searching a process's memory through
//!   `/proc/<pid>/mem` for every 16-byte window of a secret;
//! - [`sodium`]: libsodium loaded at run time, the reference of the
//!   cipher's tests and the baseline of its benchmarks.

// Every unsafe block says why it holds, as in the library.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod child;
#[cfg(target_os = "linux")]
pub mod fork;
#[cfg(unix)]
pub mod limits;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod scan;
pub mod sodium;
