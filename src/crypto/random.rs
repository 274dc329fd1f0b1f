//! Randomness from the operating system's CSPRNG.

use crate::error::{Error, Result};

/// Overwrites `buf` with cryptographically secure random bytes from the
/// operating system (`getrandom(2)`).
///
/// ```
/// let mut nonce = [0u8; 24];
/// memguard::scramble_bytes(&mut nonce)?;
/// assert_ne!(nonce, [0u8; 24]);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn scramble_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(Error::random)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scrambles_differently_each_time() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        super::scramble_bytes(&mut a).unwrap();
        super::scramble_bytes(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        super::scramble_bytes(&mut []).unwrap();
    }
}
