//! Nonces for sealing: a 64-bit counter and a random prefix drawn from the
//! operating system once per process, and again in every forked child.
//!
//! ```text
//! nonce (24 bytes) = counter (8, little-endian) || prefix (16)
//! ```
//!
//! Under one session key every nonce differs from every other by
//! construction (the counter is one atomic `fetch_add` per seal), which is
//! stronger than 24 random bytes per seal (unique with overwhelming
//! probability), and costs no system call: the OS nonce was the largest
//! single cost of sealing 32 bytes (0.6 to 0.9 µs per `getrandom` on the
//! development VM, against tens of nanoseconds here; `seal_open_32` in
//! `benches/enclave.rs`). The counter comes first so that every seal still
//! gets its own HSalsa20 subkey, as with random nonces.
//!
//! The prefix separates processes and fork generations: a forked child
//! inherits the counter, so it draws a prefix of its own before its first
//! seal (the fork generation of [`crate::mem`] tells it that it is a child).
//! A child never seals under its parent's key anyway (it makes a fresh
//! session key, see `coffer`); the new prefix is a second, independent
//! guard.
//!
//! What it costs in safety, against a random nonce per seal (also in
//! THREAT_MODEL.md):
//! - nonces are public, and now tell the order and number of seals within a
//!   process, and which enclaves come from the same process;
//! - uniqueness rests on the fork hooks: a process that forks with the raw
//!   system call (no `pthread_atfork` hooks) gives its child the parent's
//!   prefix and counter. The child's key is not the parent's, so no nonce
//!   repeats under one key, but two such children of one parent would share
//!   prefix, counter and (zero-filled, known) key: the threat model already
//!   names the raw fork as unsupported. Where the hooks cannot be installed,
//!   every nonce comes from the OS as before.
//! - After 2^63 seals in one process (centuries at any real rate) nonces
//!   come from the OS again, so the counter can never wrap.

use std::sync::atomic::{AtomicU64, Ordering};

use super::cipher::NONCE_LEN;
use crate::error::{Error, Result};
use crate::mem;

/// Bytes of the counter at the start of a nonce.
const COUNTER_LEN: usize = 8;
/// Bytes of the random prefix after it.
const PREFIX_LEN: usize = NONCE_LEN - COUNTER_LEN;

/// The next counter value.
static COUNTER: AtomicU64 = AtomicU64::new(0);
/// The random prefix, as two words.
static PREFIX: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// One more than the fork generation whose prefix is in [`PREFIX`]; 0
/// before the first draw.
static SEEDED: AtomicU64 = AtomicU64::new(0);

/// Counter values from this one on are not used: the nonce comes from the
/// OS instead (the counter cannot wrap back to values already used).
const COUNTER_LIMIT: u64 = 1 << 63;

/// Fills `nonce` with a fresh nonce, unique under the session key.
pub(crate) fn fill(nonce: &mut [u8]) -> Result<()> {
    debug_assert_eq!(nonce.len(), NONCE_LEN);
    if !mem::fork_hooks_installed() {
        return os_nonce(nonce);
    }
    let seeded_for = mem::fork_generation().wrapping_add(1);
    if SEEDED.load(Ordering::Acquire) != seeded_for {
        reseed(seeded_for)?;
    }
    compose(COUNTER.fetch_add(1, Ordering::Relaxed), nonce)
}

/// Writes the nonce of counter value `count` (and the current prefix) into
/// `nonce`; from [`COUNTER_LIMIT`] on, an OS nonce instead.
fn compose(count: u64, nonce: &mut [u8]) -> Result<()> {
    if count >= COUNTER_LIMIT {
        return os_nonce(nonce);
    }
    let (counter, prefix) = nonce.split_at_mut(COUNTER_LEN);
    counter.copy_from_slice(&count.to_le_bytes());
    for (bytes, word) in prefix.chunks_exact_mut(8).zip(&PREFIX) {
        bytes.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    Ok(())
}

/// A nonce straight from the OS (every byte random).
fn os_nonce(nonce: &mut [u8]) -> Result<()> {
    getrandom::fill(nonce).map_err(Error::random)
}

/// Draws a new prefix for fork generation `seeded_for - 1`.
///
/// Two threads may reseed at once; a seal between their stores may then
/// combine half of each prefix. That is harmless: within a process the
/// counter alone makes nonces unique, and the mixed prefix is as random.
#[cold]
fn reseed(seeded_for: u64) -> Result<()> {
    let mut fresh = [0u8; PREFIX_LEN];
    os_nonce(&mut fresh)?;
    for (bytes, word) in fresh.chunks_exact(8).zip(&PREFIX) {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        word.store(u64::from_le_bytes(w), Ordering::Relaxed);
    }
    SEEDED.store(seeded_for, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn one() -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        fill(&mut n).unwrap();
        n
    }

    #[test]
    fn nonces_are_unique_across_threads() {
        let per_thread = if cfg!(miri) { 200 } else { 20_000 };
        let all: Vec<[u8; NONCE_LEN]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..per_thread).map(|_| one()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 4 * per_thread, "a nonce repeated");
    }

    #[test]
    fn a_nonce_is_a_counter_then_the_process_prefix() {
        // Every backend installs them (Windows and Miri have no fork to hook).
        assert!(mem::fork_hooks_installed());
        let a = one();
        let b = one();
        // Other tests seal at the same time: b's counter is above a's, and
        // within one generation both carry the same random prefix.
        let count = |n: &[u8; NONCE_LEN]| u64::from_le_bytes(n[..8].try_into().unwrap());
        assert!(count(&b) > count(&a));
        assert_eq!(a[COUNTER_LEN..], b[COUNTER_LEN..]);
        assert_ne!(a[COUNTER_LEN..], [0u8; PREFIX_LEN], "the prefix was drawn");
    }

    #[test]
    fn a_new_generation_draws_a_new_prefix() {
        // Every backend installs them (Windows and Miri have no fork to hook).
        assert!(mem::fork_hooks_installed());
        let before = one();
        // What a forked child sees: SEEDED names another generation.
        // (tests/fork.rs checks it in a real forked child.)
        SEEDED.store(u64::MAX, Ordering::Release);
        let after = one();
        assert_ne!(before[COUNTER_LEN..], after[COUNTER_LEN..]);
        assert_eq!(
            SEEDED.load(Ordering::Acquire),
            mem::fork_generation().wrapping_add(1)
        );
    }

    #[test]
    fn past_the_counter_limit_nonces_come_from_the_os() {
        // Through `compose` (the counter itself is shared with the other
        // tests): below the limit the counter and prefix, from it on
        // neither (24 random bytes: equal to them with probability 2^-192).
        let mut below = [0u8; NONCE_LEN];
        compose(COUNTER_LIMIT - 1, &mut below).unwrap();
        assert_eq!(below[..COUNTER_LEN], (COUNTER_LIMIT - 1).to_le_bytes());
        for count in [COUNTER_LIMIT, COUNTER_LIMIT + 1, u64::MAX] {
            let mut n = [0u8; NONCE_LEN];
            compose(count, &mut n).unwrap();
            assert_ne!(n[..COUNTER_LEN], count.to_le_bytes(), "{count}");
            assert_ne!(n[COUNTER_LEN..], below[COUNTER_LEN..], "{count}");
        }
    }
}
