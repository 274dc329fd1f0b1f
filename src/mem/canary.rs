//! The canary written into the slack before each buffer's data.
//!
//! One random page-sized pattern is drawn once per process; each buffer's
//! slack gets the tail of it that fits, so creating a buffer costs no system
//! call for randomness. On destroy the slack is compared with the pattern in
//! constant time.

use std::sync::OnceLock;

use crate::error::Result;

static PATTERN: OnceLock<Box<[u8]>> = OnceLock::new();

/// The process's canary pattern, `page` bytes long.
pub(crate) fn pattern(page: usize) -> Result<&'static [u8]> {
    if let Some(p) = PATTERN.get() {
        return Ok(p);
    }
    let mut fresh = vec![0u8; page].into_boxed_slice();
    getrandom::fill(&mut fresh)?;
    Ok(PATTERN.get_or_init(|| fresh))
}

/// Fills `slack` with the canary.
pub(crate) fn write(slack: &mut [u8], pattern: &[u8]) {
    let n = slack.len();
    slack.copy_from_slice(&pattern[pattern.len() - n..]);
}

/// Whether `slack` still holds the canary, compared in constant time.
pub(crate) fn intact(slack: &[u8], pattern: &[u8]) -> bool {
    let expected = &pattern[pattern.len() - slack.len()..];
    let diff = slack
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// How many bytes of `slack` differ from the canary (for the report only;
/// not constant time).
pub(crate) fn damaged(slack: &[u8], pattern: &[u8]) -> usize {
    let expected = &pattern[pattern.len() - slack.len()..];
    slack.iter().zip(expected).filter(|(a, b)| a != b).count()
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
    fn empty_slack_is_intact() {
        let p = pattern(4096).unwrap();
        assert!(intact(&[], p));
    }
}
