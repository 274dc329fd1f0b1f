//! The memory layer: guarded page mappings, their protection, locking and
//! advice, the canary, wiping, and the borrow guards. This module and the
//! crash handler are the only places with `unsafe` code.

mod backend;
mod borrow;
mod canary;
mod corruption;
mod crash_handler;
mod crash_table;
mod harden;
mod layout;
#[cfg(all(target_os = "linux", not(miri)))]
mod linux;
#[cfg(miri)]
mod miri;
mod reference;
mod reference_mut;
mod region;
mod wipe;

#[cfg(all(target_os = "linux", not(miri)))]
type Os = linux::Linux;
#[cfg(miri)]
type Os = miri::Simulated;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "memguard has a memory backend for Linux only so far; a new platform implements \
     mem::backend::Pages in a file of its own"
);

pub(crate) use backend::ForkPolicy;
pub(crate) use corruption::{report_and_abort, set_wipe_all, CanaryCorruption};
pub use harden::{disable_process_hardening, is_process_hardened};
pub use reference::Ref;
pub use reference_mut::RefMut;
pub(crate) use region::Region;
pub(crate) use wipe::scrub_stack;
pub use wipe::wipe_bytes;

/// Whether the wipe-before-crash handler for SIGSEGV and SIGBUS is in
/// place. It is installed on the first allocation.
///
/// ```
/// let _key = memguard::LockedBuffer::new(32)?;
/// assert!(memguard::crash_handler_installed());
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn crash_handler_installed() -> bool {
    crash_handler::installed()
}

/// The system's page size.
pub(crate) fn page_size() -> usize {
    use backend::Pages;
    Os::page_size()
}
