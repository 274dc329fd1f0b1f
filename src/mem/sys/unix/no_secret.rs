//! Where the system has no secret memory (every Unix but Linux): the
//! backend is always anonymous memory.

use std::ffi::c_void;
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// Why there is no secret memory here.
pub(in crate::mem::sys) fn probe() -> std::result::Result<String, String> {
    Err(format!(
        "{} has no secret memory (memory out of the kernel's reach is Linux's memfd_secret)",
        std::env::consts::OS
    ))
}

/// Never called: [`probe`] fails, so the backend is anonymous.
pub(in crate::mem::sys) fn allocate(_len: usize, _page: usize) -> Result<*mut c_void> {
    Err(Error::SecretMemoryUnavailable {
        reason: probe().err().unwrap_or_default(),
    })
}

/// No mapping here is secret memory.
///
/// # Safety
/// None needed: nothing is done.
pub(in crate::mem::sys) unsafe fn free(_base: NonNull<u8>, _len: usize, _page: usize) -> bool {
    false
}

/// No second view of a mapping here (`None`): the caller keeps its
/// `mprotect` path.
pub(in crate::mem::sys) fn allocate_aliased(
    _secret: bool,
    _len: usize,
    _page: usize,
) -> Result<Option<(*mut c_void, *mut c_void)>> {
    Ok(None)
}

/// Nothing is aliased here.
///
/// # Safety
/// None needed: nothing is done.
pub(in crate::mem::sys) unsafe fn free_aliased(
    _secret: bool,
    _base: NonNull<u8>,
    _len: usize,
    _page: usize,
) -> bool {
    false
}

/// Nothing is aliased here.
///
/// # Safety
/// None needed: nothing is done.
pub(in crate::mem::sys) unsafe fn drop_alias(
    _secret: bool,
    _base: NonNull<u8>,
    _len: usize,
    _page: usize,
) {
}

/// Nothing to hook.
pub(in crate::mem::sys) fn install_fork_hooks() {}
