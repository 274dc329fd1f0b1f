//! Everything the command does that depends on the operating system, one
//! module per OS; nothing above this folder names an OS.
//!
//! Each OS module provides the same items:
//!
//! - `OS`: the OS's name, for the report's first line;
//! - `CHECKS`: the doctor's table of rows on this OS, in order (name, kind,
//!   children, check function: see [`crate::doctor::Row`]); the rows every
//!   OS has are in [`crate::doctor`] (and every Unix's in `unix`), the OS's
//!   own ones here; `Shared` and `shared()`: what the rows read once before
//!   any runs;
//! - `system_info()`: the report's `system` object (`kernel`, `machine`,
//!   `user`, and what else matters here);
//! - `process_state()`: what the hardening self-test reports of the
//!   process before and after memguard's first allocation;
//! - `selftest(test)`: the child side of the self-tests of this OS only;
//! - `FAULT`, `died_of_fault(status)`, `ending(status)`, `CRASH_EVENTS`:
//!   how a child that touched a guard page ends, in words;
//! - `LOCK_LIMIT`, `LOCK_FIX`, `lock_shortfall(bytes)`: the limit on
//!   locked memory (RLIMIT_MEMLOCK, the working-set quota) and its fix;
//! - `page_size()`, `terminal_width(stdout)`.

#[cfg(unix)]
pub mod unix;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::*;

#[cfg(any(target_os = "freebsd", target_os = "openbsd"))]
mod bsd;
#[cfg(any(target_os = "freebsd", target_os = "openbsd"))]
pub use bsd::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
