//! The session key that seals enclaves, never stored whole.
//!
//! It lives in one guarded, locked buffer of 128 bytes:
//!
//! ```text
//! [ left (32) | right (32) | scratch (32) | noise (32) ]
//! key = left XOR BLAKE3(right)
//! ```
//!
//! Deriving the key for one operation writes it into `scratch`, keys the
//! cipher from there and wipes `scratch` at once: no guarded buffer is
//! allocated per operation. Re-splitting ("rekeying") draws fresh `noise`,
//! sets `right ^= noise` and fixes `left` so the key is unchanged; a
//! background thread does it every 500 ms by default
//! ([`set_rekey_interval`]). The key is made on first use and made anew
//! after a purge; every key has a generation number, so an enclave sealed
//! under a purged key is refused without any work.
//!
//! In a forked child the key's buffer is inherited, hence dead (its halves
//! are zeros there, or absent): the child treats the key as purged. Its
//! first seal makes a fresh key, with a new generation and a rekeying thread
//! of its own, and the parent's enclaves fail to open in it. The coffer's
//! locks are held across `fork`, so the child never finds them taken.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::thread::Thread;
use std::time::Duration;

use crate::buffer::LockedBuffer;
use crate::crypto::cipher::KEY_LEN;
use crate::crypto::hash::hash_into;
use crate::crypto::scramble_bytes;
use crate::error::{Error, Result};
use crate::mem::{self, wipe_bytes, ForkLock, Held};

/// Bytes in the coffer's buffer: four slots of [`KEY_LEN`].
const SIZE: usize = 4 * KEY_LEN;

/// The coffer's buffer seen as its slots: `[left, right, scratch, noise]`.
type Slots = [[u8; KEY_LEN]; 4];

/// The split key and the generation it belongs to.
struct Coffer {
    halves: LockedBuffer,
    generation: u64,
}

static COFFER: Mutex<Option<Coffer>> = Mutex::new(None);
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);
/// Milliseconds between rekeys; 0 turns rekeying off.
static REKEY_MILLIS: AtomicU64 = AtomicU64::new(500);
/// The rekeying thread of the current key, to wake it on purge or when the
/// interval changes.
static REKEYER: Mutex<Option<Thread>> = Mutex::new(None);

thread_local! {
    static COFFER_HELD: Held<Option<Coffer>> = const { Cell::new(None) };
    static REKEYER_HELD: Held<Option<Thread>> = const { Cell::new(None) };
}

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    // Held across fork, so that a child never finds them locked by a thread
    // it does not have (the rekeying thread, say).
    static FORK_SAFE: Once = Once::new();
    FORK_SAFE.call_once(|| {
        mem::hold_across_fork(
            ForkLock::Coffer,
            || mem::take_into(&COFFER_HELD, &COFFER),
            || mem::give_back_from(&COFFER_HELD),
        );
        mem::hold_across_fork(
            ForkLock::Rekeyer,
            || mem::take_into(&REKEYER_HELD, &REKEYER),
            || mem::give_back_from(&REKEYER_HELD),
        );
    });
    // Nothing panics while these locks are held; never let poison stop a purge.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets how often the session key is re-split; `None` stops rekeying.
///
/// The default is every 500 ms, on a background thread that never keeps the
/// process alive and ends when the key is purged. Re-splitting changes the
/// two stored halves without changing the key, so that an attacker who reads
/// memory a little at a time (cold boot, a slow side channel) has to get both
/// halves from the same moment.
///
/// ```
/// use std::time::Duration;
///
/// memguard::set_rekey_interval(Some(Duration::from_millis(100)));
/// memguard::set_rekey_interval(None); // off
/// memguard::set_rekey_interval(Some(Duration::from_millis(500))); // the default
/// ```
pub fn set_rekey_interval(interval: Option<Duration>) {
    let millis = interval.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
    REKEY_MILLIS.store(millis, Ordering::Release);
    if let Some(t) = lock(&REKEYER).as_ref() {
        t.unpark();
    }
}

/// Runs `f` with the session key, derived into guarded scratch memory that
/// is wiped as soon as `f` returns.
///
/// With `expected: Some(generation)`, fails with
/// [`Error::DecryptionFailed`] when that key has been purged; with `None`,
/// uses the current key, making one if there is none. `f` also receives the
/// key's generation. `f` must not panic (the coffer lock is held).
pub(crate) fn with_key<T>(
    expected: Option<u64>,
    f: impl FnOnce(&[u8; KEY_LEN], u64) -> T,
) -> Result<T> {
    let mut slot = lock(&COFFER);
    let alive = slot.as_ref().is_some_and(|c| c.halves.is_alive());
    if !alive {
        if expected.is_some() {
            return Err(Error::DecryptionFailed);
        }
        *slot = Some(Coffer::new()?);
    }
    let coffer = slot.as_mut().ok_or(Error::DecryptionFailed)?;
    if expected.is_some_and(|g| g != coffer.generation) {
        return Err(Error::DecryptionFailed);
    }
    let generation = coffer.generation;
    let mut bytes = coffer.halves.byte_array_mut::<SIZE>()?;
    let [left, right, scratch, _] = bytemuck::cast_mut::<_, Slots>(&mut *bytes);
    hash_into(right, scratch);
    xor_into(scratch, left);
    let out = f(scratch, generation);
    wipe_bytes(scratch);
    Ok(out)
}

/// `dst ^= src`.
fn xor_into(dst: &mut [u8; KEY_LEN], src: &[u8; KEY_LEN]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// Destroys the session key (the next use makes a new one), stops its
/// rekeying thread, and runs `then` before any new key can be made.
///
/// `then` is the rest of a purge (destroying every buffer): running it
/// under the coffer lock keeps a key made by another thread in the meantime
/// from being destroyed with the old buffers. `then` must not panic or
/// block on a guard (destruction of borrowed buffers is deferred, never
/// waited for).
pub(crate) fn destroy_then<T>(then: impl FnOnce() -> T) -> T {
    let mut slot = lock(&COFFER);
    let old = slot.take();
    drop(old);
    let out = then();
    drop(slot);
    if let Some(t) = lock(&REKEYER).take() {
        t.unpark();
    }
    out
}

impl Coffer {
    fn new() -> Result<Coffer> {
        let mut halves = LockedBuffer::new(SIZE)?;
        {
            let mut b = halves.byte_array_mut::<SIZE>()?;
            let [left, right, _, _] = bytemuck::cast_mut::<_, Slots>(&mut *b);
            scramble_bytes(left)?;
            scramble_bytes(right)?;
        }
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        start_rekeyer(generation);
        Ok(Coffer { halves, generation })
    }

    /// Re-splits the key: `right ^= noise`, and `left` corrected so that
    /// `left ^ H(right)` is unchanged.
    fn rekey(&mut self) -> Result<()> {
        let mut bytes = self.halves.byte_array_mut::<SIZE>()?;
        let [left, right, scratch, noise] = bytemuck::cast_mut::<_, Slots>(&mut *bytes);
        scramble_bytes(noise)?;
        hash_into(right, scratch);
        xor_into(left, scratch);
        xor_into(right, noise);
        hash_into(right, scratch);
        xor_into(left, scratch);
        wipe_bytes(scratch);
        wipe_bytes(noise);
        Ok(())
    }
}

/// Starts the thread that rekeys the key of `generation` until it is purged.
/// If no thread can be started, the key simply is not re-split.
fn start_rekeyer(generation: u64) {
    let spawned = std::thread::Builder::new()
        .name("memguard-rekey".into())
        .spawn(move || rekey_loop(generation));
    if let Ok(handle) = spawned {
        let previous = lock(&REKEYER).replace(handle.thread().clone());
        if let Some(t) = previous {
            t.unpark();
        }
    }
}

fn rekey_loop(generation: u64) {
    loop {
        match REKEY_MILLIS.load(Ordering::Acquire) {
            0 => std::thread::park(),
            ms => std::thread::park_timeout(Duration::from_millis(ms)),
        }
        let mut slot = lock(&COFFER);
        match slot.as_mut() {
            Some(c) if c.generation == generation && c.halves.is_alive() => {
                if REKEY_MILLIS.load(Ordering::Acquire) != 0 {
                    // A failure (the buffer purged meanwhile) ends the loop
                    // on the next round.
                    let _ = c.rekey();
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_key() -> [u8; 32] {
        with_key(None, |k, _| *k).unwrap()
    }

    /// All four slots, copied out.
    fn slots() -> Slots {
        let slot = lock(&COFFER);
        let b = slot.as_ref().unwrap().halves.byte_array::<SIZE>().unwrap();
        *bytemuck::cast_ref::<_, Slots>(&*b)
    }

    fn halves() -> ([u8; 32], [u8; 32]) {
        let [left, right, _, _] = slots();
        (left, right)
    }

    #[test]
    fn rekeying_changes_both_halves_but_not_the_key() {
        let key = current_key();
        let (l0, r0) = halves();
        for _ in 0..5 {
            lock(&COFFER).as_mut().unwrap().rekey().unwrap();
            let (l1, r1) = halves();
            assert_ne!(l0, l1);
            assert_ne!(r0, r1);
            assert_eq!(current_key(), key);
        }
        let [_, _, scratch, noise] = slots();
        assert_eq!(scratch, [0; 32], "scratch wiped");
        assert_eq!(noise, [0; 32], "noise wiped");
    }

    #[test]
    fn key_is_left_xor_hash_of_right_and_scratch_is_wiped_after_use() {
        let key = current_key();
        let (l, r) = halves();
        let mut h = [0u8; 32];
        hash_into(&r, &mut h);
        let expect: Vec<u8> = l.iter().zip(&h).map(|(a, b)| a ^ b).collect();
        // A rekey may have run between the two reads; the key is the same.
        assert_eq!(&key[..], &expect[..]);
        let [_, _, scratch, _] = slots();
        assert_eq!(scratch, [0; 32], "scratch wiped");
    }

    #[test]
    fn a_wrong_generation_is_refused() {
        let g = with_key(None, |_, g| g).unwrap();
        assert!(matches!(
            with_key(Some(g + 1000), |_, _| ()),
            Err(Error::DecryptionFailed)
        ));
        assert!(with_key(Some(g), |_, _| ()).is_ok());
    }
}
