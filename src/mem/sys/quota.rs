//! The decision of the Windows lock path, as a pure function so that it is
//! tested on every system: when `VirtualLock` fails, grow the working-set
//! quota once and try again, or give up with the quota named.
//!
//! `VirtualLock` can lock at most about the process's minimum working set
//! (less a few pages of overhead); the default minimum is small (a few
//! hundred KiB), so a process with many buffers hits
//! `ERROR_WORKING_SET_QUOTA` early (Go's memguard hit it: memcall #3). The
//! fix is `SetProcessWorkingSetSizeEx` with a larger minimum (and maximum),
//! which an ordinary process may do within the system's limits.

/// `ERROR_WORKING_SET_QUOTA` (1453), the refusal that a larger quota cures.
pub(crate) const ERROR_WORKING_SET_QUOTA: u32 = 1453;

/// What to do after `VirtualLock` failed with `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterLockFailure {
    /// Set the working set to `min..=max` bytes, then lock again.
    Grow {
        /// The new minimum working set.
        min: usize,
        /// The new maximum working set.
        max: usize,
    },
    /// The quota is the problem and cannot be grown further (already tried,
    /// or the sizes would overflow): an `Error::MemoryLock` naming it.
    QuotaExhausted,
    /// Some other failure: an `Error::Os`.
    Other,
}

/// The decision: `error` from `VirtualLock`, the current working-set
/// bounds `min` and `max`, `need` bytes to lock, `page` the page size, and
/// whether the quota was grown once already for this lock.
pub(crate) fn after_lock_failure(
    error: u32,
    min: usize,
    max: usize,
    need: usize,
    page: usize,
    grown: bool,
) -> AfterLockFailure {
    if error != ERROR_WORKING_SET_QUOTA {
        return AfterLockFailure::Other;
    }
    if grown {
        return AfterLockFailure::QuotaExhausted;
    }
    // The amount to lock, plus a margin of pages, so that the next small
    // buffers do not each need a grow of their own: at least 16 pages, or
    // as much as the minimum already is (the quota doubles).
    let margin = page.saturating_mul(16).max(min);
    let grow = need.checked_add(margin);
    let new_min = grow.and_then(|g| min.checked_add(g));
    let new_max = grow.and_then(|g| max.max(min).checked_add(g));
    match (new_min, new_max) {
        (Some(min), Some(max)) => AfterLockFailure::Grow { min, max },
        _ => AfterLockFailure::QuotaExhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn the_quota_is_grown_once_then_named() {
        let first = after_lock_failure(
            ERROR_WORKING_SET_QUOTA,
            200 * PAGE,
            1380 * PAGE,
            PAGE,
            PAGE,
            false,
        );
        match first {
            AfterLockFailure::Grow { min, max } => {
                assert!(min >= 200 * PAGE + PAGE, "room for the page: {min}");
                assert!(max >= min, "max {max} under min {min}");
                assert!(max >= 1380 * PAGE + PAGE);
            }
            other => panic!("{other:?}"),
        }
        let second = after_lock_failure(
            ERROR_WORKING_SET_QUOTA,
            200 * PAGE,
            1380 * PAGE,
            PAGE,
            PAGE,
            true,
        );
        assert_eq!(second, AfterLockFailure::QuotaExhausted);
    }

    #[test]
    fn other_errors_are_not_the_quota() {
        // ERROR_NOACCESS (998), ERROR_INVALID_PARAMETER (87).
        for error in [998, 87, 0] {
            assert_eq!(
                after_lock_failure(error, PAGE, PAGE, PAGE, PAGE, false),
                AfterLockFailure::Other
            );
        }
    }

    #[test]
    fn sizes_that_would_overflow_are_exhausted_not_wrapped() {
        let huge = usize::MAX - PAGE;
        assert_eq!(
            after_lock_failure(ERROR_WORKING_SET_QUOTA, huge, huge, 2 * PAGE, PAGE, false),
            AfterLockFailure::QuotaExhausted
        );
    }

    #[test]
    fn a_maximum_below_the_minimum_is_raised_with_it() {
        match after_lock_failure(
            ERROR_WORKING_SET_QUOTA,
            100 * PAGE,
            10 * PAGE,
            PAGE,
            PAGE,
            false,
        ) {
            AfterLockFailure::Grow { min, max } => assert!(max >= min),
            other => panic!("{other:?}"),
        }
    }
}
