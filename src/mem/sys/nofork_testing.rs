//! Test helpers where there is no `fork` (Windows) or no system (Miri):
//! the tests that need a forked child return at once.

use std::ptr::NonNull;

/// Whether [`in_child`] can fork here.
pub(crate) const CAN_FORK: bool = false;

/// Never called ([`CAN_FORK`] is false).
pub(crate) fn in_child(_scenario: impl FnOnce() -> i32) -> i32 {
    unreachable!("no fork here")
}

/// Never called ([`CAN_FORK`] is false).
pub(crate) fn mapped(_pages: usize) -> NonNull<u8> {
    unreachable!("no fork here")
}

/// Never called ([`CAN_FORK`] is false).
pub(crate) fn unmap(_ptr: NonNull<u8>, _pages: usize) {
    unreachable!("no fork here")
}

/// No library loading here: the tests that compare against a shared
/// library (libsodium) find none.
pub(crate) struct SharedLibrary;

/// Always `None` here.
pub(crate) fn load_library(_names: &[&std::ffi::CStr]) -> Option<SharedLibrary> {
    None
}

impl SharedLibrary {
    /// Never called ([`load_library`] gives none).
    pub(crate) fn symbol(&self, _name: &std::ffi::CStr) -> Option<NonNull<std::ffi::c_void>> {
        None
    }
}

/// No stack reading here: the stack scrub's test returns at once.
pub(crate) const CAN_READ_STACK: bool = false;

/// Never called ([`CAN_READ_STACK`] is false).
pub(crate) fn stack_below(_out: &mut [u8]) {
    unreachable!("no stack reading here")
}
