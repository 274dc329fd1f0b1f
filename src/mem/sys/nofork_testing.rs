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

/// No stack reading here: the stack scrub's test returns at once.
pub(crate) const CAN_READ_STACK: bool = false;

/// Never called ([`CAN_READ_STACK`] is false).
pub(crate) fn stack_below(_out: &mut [u8]) {
    unreachable!("no stack reading here")
}
