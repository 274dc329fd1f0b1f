//! The canary written into the slack before each buffer's data.
//!
//! One random page-sized pattern is drawn once per process; each buffer's
//! slack gets the tail of it that fits, so creating a buffer costs no system
//! call for randomness. On destroy the slack is compared with the pattern in
//! constant time.

use std::sync::OnceLock;

use crate::error::{Error, Result};

static PATTERN: OnceLock<Box<[u8]>> = OnceLock::new();

/// The process's canary pattern, `page` bytes long.
pub(crate) fn pattern(page: usize) -> Result<&'static [u8]> {
    if let Some(p) = PATTERN.get() {
        return Ok(p);
    }
    let mut fresh = vec![0u8; page].into_boxed_slice();
    getrandom::fill(&mut fresh).map_err(Error::random)?;
    Ok(PATTERN.get_or_init(|| fresh))
}

// The slack always starts at the first data page, which is page-aligned,
// so byte `j` of the slack holds `pattern[j % page]`: the pattern repeated
// page by page. A slack longer than a page (a buffer shrunk by a reading
// constructor) simply gets the pattern more than once.

/// Fills `slack` with the canary.
pub(crate) fn write(slack: &mut [u8], pattern: &[u8]) {
    for chunk in slack.chunks_mut(pattern.len()) {
        chunk.copy_from_slice(&pattern[..chunk.len()]);
    }
}

/// Whether `slack` still holds the canary, compared in constant time.
pub(crate) fn intact(slack: &[u8], pattern: &[u8]) -> bool {
    let diff = slack
        .chunks(pattern.len())
        .flat_map(|chunk| chunk.iter().zip(pattern))
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// How many bytes of `slack` differ from the canary (for the report only;
/// not constant time).
pub(crate) fn damaged(slack: &[u8], pattern: &[u8]) -> usize {
    slack
        .chunks(pattern.len())
        .flat_map(|chunk| chunk.iter().zip(pattern))
        .filter(|(a, b)| a != b)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_canary_is_intact_and_any_change_is_seen() {
        let p = pattern(4096).unwrap();
        let mut slack = vec![0u8; 100];
        write(&mut slack, p);
        assert!(intact(&slack, p));
        assert_eq!(damaged(&slack, p), 0);
        for i in [0, 50, 99] {
            slack[i] ^= 1;
            assert!(!intact(&slack, p));
            assert_eq!(damaged(&slack, p), 1);
            slack[i] ^= 1;
        }
    }

    #[test]
    fn pattern_is_random_looking_and_stable() {
        let a = pattern(4096).unwrap();
        let b = pattern(4096).unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr());
        let zeros = a.iter().filter(|&&x| x == 0).count();
        assert!(zeros < 100, "{zeros} zero bytes in a random page");
    }

    #[test]
    fn slack_longer_than_a_page_repeats_the_pattern() {
        let p = pattern(4096).unwrap();
        let mut slack = vec![0u8; 3 * 4096 + 17];
        write(&mut slack, p);
        assert!(intact(&slack, p));
        assert_eq!(&slack[4096..8192], p);
        slack[3 * 4096 + 5] ^= 0x40;
        assert!(!intact(&slack, p));
        assert_eq!(damaged(&slack, p), 1);
    }

    #[test]
    fn empty_slack_is_intact() {
        let p = pattern(4096).unwrap();
        assert!(intact(&[], p));
    }
}
