//! Where things sit inside one guarded mapping: pure arithmetic, no system
//! calls, so it runs under Miri.
//!
//! ```text
//! base
//! |<- page ->|<------------ data_pages ------------>|<- page ->|
//! [  guard   ][ canary ... canary ][ data (len bytes) ][  guard  ]
//!                                                    ^ end of data = start of trailing guard
//! ```

use crate::error::{Error, Result};

/// The largest mapping asked of the kernel: 64 TiB, half of the 47-bit user
/// address space of x86-64 and aarch64 with 4-level page tables. Anything
/// larger cannot be mapped in practice, and saying "too large" is clearer
/// than the kernel's ENOMEM.
pub(crate) const MAX_MAPPING: usize = 1 << 46;

/// The geometry of one guarded mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The page size the mapping was made with.
    pub(crate) page: usize,
    /// Bytes of readable/writable pages between the two guard pages: the
    /// buffer's capacity rounded up to whole pages.
    pub(crate) data_pages: usize,
}

impl Layout {
    /// The layout for a buffer that can hold `capacity` bytes.
    ///
    /// Fails with [`Error::NullBuffer`] for zero and [`Error::TooLarge`] when
    /// the mapping's size would not fit in an `isize`.
    pub(crate) fn new(capacity: usize, page: usize) -> Result<Layout> {
        debug_assert!(page.is_power_of_two());
        if capacity == 0 {
            return Err(Error::NullBuffer);
        }
        let too_large = Error::TooLarge { size: capacity };
        let data_pages = capacity
            .checked_add(page - 1)
            .map(|n| n & !(page - 1))
            .ok_or(too_large)?;
        let layout = Layout { page, data_pages };
        match data_pages.checked_add(2 * page) {
            Some(total) if total <= MAX_MAPPING => Ok(layout),
            _ => Err(Error::TooLarge { size: capacity }),
        }
    }

    /// Bytes in the whole mapping, both guard pages included.
    pub(crate) fn total(&self) -> usize {
        self.data_pages + 2 * self.page
    }

    /// Offset of the first data page from the start of the mapping.
    pub(crate) fn data_pages_offset(&self) -> usize {
        self.page
    }

    /// Offset of the trailing guard page from the start of the mapping.
    pub(crate) fn trailing_guard_offset(&self) -> usize {
        self.page + self.data_pages
    }

    /// Offset of the first byte of a `len`-byte buffer: right-aligned against
    /// the trailing guard page.
    pub(crate) fn data_offset(&self, len: usize) -> usize {
        debug_assert!(len <= self.data_pages);
        self.trailing_guard_offset() - len
    }

    /// Bytes of canary between the first data page and a `len`-byte buffer.
    pub(crate) fn slack(&self, len: usize) -> usize {
        debug_assert!(len <= self.data_pages);
        self.data_pages - len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn small_buffer_takes_one_page_and_ends_at_the_guard() {
        let l = Layout::new(32, PAGE).unwrap();
        assert_eq!(l.data_pages, PAGE);
        assert_eq!(l.total(), 3 * PAGE);
        assert_eq!(l.data_offset(32), 2 * PAGE - 32);
        assert_eq!(l.data_offset(32) + 32, l.trailing_guard_offset());
        assert_eq!(l.slack(32), PAGE - 32);
    }

    #[test]
    fn exact_page_multiple_has_no_slack() {
        let l = Layout::new(2 * PAGE, PAGE).unwrap();
        assert_eq!(l.data_pages, 2 * PAGE);
        assert_eq!(l.slack(2 * PAGE), 0);
        assert_eq!(l.data_offset(2 * PAGE), PAGE);
    }

    #[test]
    fn one_past_a_page_takes_two() {
        let l = Layout::new(PAGE + 1, PAGE).unwrap();
        assert_eq!(l.data_pages, 2 * PAGE);
        assert_eq!(l.slack(PAGE + 1), PAGE - 1);
    }

    #[test]
    fn zero_and_huge_sizes_are_refused() {
        assert!(matches!(Layout::new(0, PAGE), Err(Error::NullBuffer)));
        assert!(matches!(
            Layout::new(usize::MAX, PAGE),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            Layout::new(isize::MAX as usize, PAGE),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            Layout::new(MAX_MAPPING, PAGE),
            Err(Error::TooLarge { .. })
        ));
        assert!(Layout::new(MAX_MAPPING - 3 * PAGE, PAGE).is_ok());
    }

    #[test]
    fn data_start_is_aligned_to_the_largest_power_of_two_dividing_len() {
        for len in 1..=3 * PAGE {
            let l = Layout::new(len, PAGE).unwrap();
            let start = l.data_offset(len);
            let align = 1usize << len.trailing_zeros().min(PAGE.trailing_zeros());
            assert_eq!(start % align, 0, "len {len}");
        }
    }
}
