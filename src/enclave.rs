//! [`Enclave`]: a secret sealed with XSalsa20-Poly1305 under the session key.

use std::fmt;

use crate::buffer::LockedBuffer;
use crate::coffer;
use crate::crypto::cipher::{MessageCipher, NONCE_LEN, TAG_LEN};
use crate::crypto::nonce;
use crate::error::{Error, Result};
use crate::mem::{scrub_stack, wipe_bytes};

const HEADER: usize = NONCE_LEN + TAG_LEN;

/// A secret sealed (encrypted and authenticated) under the session key.
///
/// The sealed form (`nonce || tag || ciphertext`) lives in ordinary memory:
/// it is safe there. The key is never stored whole (see the crate docs);
/// every seal takes a fresh 24-byte nonce, unique under the session key (a
/// per-process counter and a random prefix drawn from the OS once per
/// process and again in a forked child; see THREAT_MODEL.md).
///
/// Plaintext never touches ordinary memory: sealing reads it where it is,
/// and opening authenticates the ciphertext first, then decrypts it straight
/// into guarded memory.
///
/// After [`purge`](crate::purge) every existing enclave is undecryptable:
/// opening it gives [`Error::DecryptionFailed`].
///
/// `Debug` shows only the length.
///
/// ```
/// use memguard::Enclave;
///
/// let mut secret = *b"launch codes";
/// let sealed = Enclave::new(&mut secret)?;
/// assert_eq!(secret, [0u8; 12]); // the source is wiped
///
/// let opened = sealed.open()?; // a frozen LockedBuffer
/// assert!(opened.equal_to(b"launch codes"));
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Clone)]
pub struct Enclave {
    sealed: Box<[u8]>,
    generation: u64,
}

impl Enclave {
    /// Seals a copy of `src`, then wipes `src`.
    ///
    /// An empty `src` gives [`Error::NullBuffer`]. On failure `src` is left
    /// as it was.
    pub fn new(src: &mut [u8]) -> Result<Enclave> {
        let enclave = Enclave::seal_bytes(src)?;
        wipe_bytes(src);
        Ok(enclave)
    }

    /// Seals `size` random bytes.
    ///
    /// The random plaintext never exists anywhere, not even in guarded
    /// memory: a random ciphertext is authenticated as it is, and decrypts to
    /// uniformly random bytes that only [`open`](Enclave::open) reveals.
    ///
    /// ```
    /// let key = memguard::Enclave::random(32)?;
    /// assert_eq!(key.len(), 32);
    /// assert_eq!(key.open()?.len(), 32);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn random(size: usize) -> Result<Enclave> {
        Enclave::sealed_with(size, |cipher, body| {
            getrandom::fill(body).map_err(Error::random)?;
            Ok(cipher.tag(body))
        })
    }

    /// Decrypts into a new, frozen [`LockedBuffer`].
    ///
    /// Fails with [`Error::DecryptionFailed`] when the ciphertext was altered
    /// or its key purged; whatever was allocated is wiped and freed.
    pub fn open(&self) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(self.len())?;
        self.open_into(&mut buf)?;
        buf.freeze()?;
        Ok(buf)
    }

    /// As [`open`](Enclave::open), but when locked memory or mappings run
    /// out ([`Error::MemoryLock`], [`Error::OutOfMappings`]) it waits for
    /// another buffer to be destroyed and tries again, for at most
    /// `timeout`; then it returns that error. It sleeps on a condition
    /// variable (no busy loop) and holds no lock of memguard's while it
    /// waits, so other threads destroy, purge and borrow as usual.
    ///
    /// A thread that holds the buffers that use up the budget itself (and
    /// no other thread frees any) waits the whole `timeout` for nothing,
    /// then gets the error: never a deadlock, but drop what you can before
    /// waiting.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let sealed = memguard::Enclave::random(32)?;
    /// let key = sealed.open_timeout(Duration::from_millis(100))?;
    /// assert_eq!(key.len(), 32);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn open_timeout(&self, timeout: std::time::Duration) -> Result<LockedBuffer> {
        crate::mem::retry_on_lock_limit(timeout, || self.open())
    }

    /// Decrypts into `dst`, which must be mutable and exactly
    /// [`len`](Enclave::len) bytes long. Allocates nothing.
    ///
    /// The ciphertext is authenticated before anything is written; on
    /// [`Error::DecryptionFailed`] `dst` is left as it was. A `dst` of
    /// another length gives [`Error::SizeMismatch`], a frozen one
    /// [`Error::Immutable`].
    ///
    /// ```
    /// let sealed = memguard::Enclave::random(32)?;
    /// let mut dst = memguard::LockedBuffer::new(32)?;
    /// sealed.open_into(&mut dst)?;
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn open_into(&self, dst: &mut LockedBuffer) -> Result<()> {
        self.open_to_slice(&mut dst.bytes_mut()?)
    }

    /// Authenticates, then decrypts into `dst` (exactly `len()` bytes).
    /// `dst` is untouched on failure.
    pub(crate) fn open_to_slice(&self, dst: &mut [u8]) -> Result<()> {
        if dst.len() != self.len() {
            return Err(Error::SizeMismatch {
                expected: self.len(),
                actual: dst.len(),
            });
        }
        self.open_range_to_slice(0, dst)
    }

    /// Authenticates the whole ciphertext, then decrypts `dst.len()` bytes
    /// from plaintext offset `offset` into `dst`. `dst` is untouched on
    /// failure.
    pub(crate) fn open_range_to_slice(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let nonce = nonce_of(&self.sealed);
        let cipher = coffer::with_key(Some(self.generation), |key, _| {
            MessageCipher::new(key, &nonce)
        })?;
        let tag: [u8; TAG_LEN] = self.sealed[NONCE_LEN..HEADER]
            .try_into()
            .map_err(|_| Error::DecryptionFailed)?;
        let opened = cipher
            .open_range(&self.sealed[HEADER..], &tag, offset, dst)
            .map_err(|_| Error::DecryptionFailed);
        scrub_stack();
        opened
    }

    /// The length of the plaintext in bytes.
    pub fn len(&self) -> usize {
        self.sealed.len() - HEADER
    }

    /// Always false: an enclave holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sealed form, `nonce (24) || tag (16) || ciphertext`. It is bound
    /// to this process's session key and useless anywhere else.
    pub fn sealed_bytes(&self) -> &[u8] {
        &self.sealed
    }

    /// Mutable access to the sealed form, for tests that tamper with it.
    /// Not part of the API: only in the crate's own unit tests and with the
    /// `test-hooks` feature (tests/, fuzz/, the doctor's self-test).
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    pub fn sealed_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.sealed
    }

    /// Seals a copy of `plaintext`, which is left as it is.
    pub(crate) fn seal_bytes(plaintext: &[u8]) -> Result<Enclave> {
        Enclave::sealed_with(plaintext.len(), |cipher, body| {
            Ok(cipher.seal(plaintext, body))
        })
    }

    /// The one way an enclave is made: a fresh nonce, the cipher
    /// keyed under the session key, `fill` writing the `len`-byte
    /// ciphertext and returning its tag, then the stack scrubbed.
    fn sealed_with(
        len: usize,
        fill: impl FnOnce(MessageCipher, &mut [u8]) -> Result<[u8; TAG_LEN]>,
    ) -> Result<Enclave> {
        if len == 0 {
            return Err(Error::NullBuffer);
        }
        let mut sealed = alloc_sealed(len)?;
        nonce::fill(&mut sealed[..NONCE_LEN])?;
        let nonce = nonce_of(&sealed);
        let (cipher, generation) =
            coffer::with_key(None, |key, g| (MessageCipher::new(key, &nonce), g))?;
        let (head, body) = sealed.split_at_mut(HEADER);
        let tag = fill(cipher, body);
        scrub_stack();
        head[NONCE_LEN..].copy_from_slice(&tag?);
        Ok(Enclave { sealed, generation })
    }
}

fn alloc_sealed(len: usize) -> Result<Box<[u8]>> {
    let total = len
        .checked_add(HEADER)
        .ok_or(Error::TooLarge { size: len })?;
    let mut v = Vec::new();
    v.try_reserve_exact(total)
        .map_err(|_| Error::TooLarge { size: len })?;
    v.resize(total, 0);
    Ok(v.into_boxed_slice())
}

fn nonce_of(sealed: &[u8]) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[..NONCE_LEN]);
    nonce
}

impl LockedBuffer {
    /// Seals the buffer's contents into an [`Enclave`] and destroys the
    /// buffer. The buffer is destroyed on failure too.
    ///
    /// Fails with [`Error::Destroyed`] for a destroyed buffer.
    ///
    /// ```
    /// let key = memguard::LockedBuffer::random(32)?;
    /// let sealed = key.seal()?;
    /// assert_eq!(sealed.len(), 32);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn seal(self) -> Result<Enclave> {
        if !self.is_alive() {
            return Err(Error::Destroyed);
        }
        let data = self.bytes();
        if data.is_empty() {
            return Err(Error::Destroyed);
        }
        Enclave::seal_bytes(&data)
    }
}

impl fmt::Debug for Enclave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enclave")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wipe() {
        for len in [1usize, 2, 31, 32, 33, 4095, 4096, 4097, 100_000] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 253) as u8 + 1).collect();
            let mut src = msg.clone();
            let e = Enclave::new(&mut src).unwrap();
            assert!(src.iter().all(|&b| b == 0));
            assert_eq!(e.len(), len);
            assert!(e.open().unwrap().equal_to(&msg), "len {len}");
            let mut dst = LockedBuffer::new(len).unwrap();
            e.open_into(&mut dst).unwrap();
            assert!(dst.equal_to(&msg));
        }
    }

    /// Bytes of stack painted and read back by the scrub-depth test: more
    /// than [`crate::mem::SCRUB`] in every build.
    const PAINTED: usize = 80 * 1024;

    /// Fills the stack below the caller's frame with 0xA5.
    #[inline(never)]
    fn paint_stack() {
        let mut stack = [0xA5u8; PAINTED];
        std::hint::black_box(&mut stack);
    }

    /// How deep below the caller's frame the calls made since
    /// [`paint_stack`] wrote (a conservative bound: from the caller's frame,
    /// where the scrub starts lower down, in `sealed_with` or
    /// `open_range_to_slice`).
    fn depth_written() -> usize {
        let mut stack = vec![0u8; PAINTED - 1024];
        crate::mem::sys::testing::stack_below(&mut stack);
        // stack_below starts 512 bytes below its own frame.
        let deepest = stack.iter().position(|&b| b != 0xA5);
        deepest.map_or(0, |i| stack.len() - i + 512)
    }

    /// The scrub after a seal or an open (`scrub_stack`) must reach below
    /// every frame the key's derivation and the cipher used, or something
    /// of the key, the keystream or a half could be left beyond it. Measured
    /// with the scrub off, from a painted stack; the control: the
    /// operations do write below the caller (the painting is seen).
    #[test]
    fn the_scrub_reaches_deeper_than_a_seal_or_an_open_goes() {
        if !crate::mem::sys::testing::CAN_READ_STACK {
            return;
        }
        // The session key made first: its creation (once per process and
        // after a purge) starts the rekeying thread, whose frames are not
        // what the scrub is for.
        drop(Enclave::new(&mut [1u8; 8]));
        crate::mem::SKIP_SCRUB.with(|skip| skip.set(true));
        let mut deepest = 0;
        for len in [1usize, 32, 33, 300, 4103, 70_000] {
            let msg = vec![7u8; len];
            paint_stack();
            let sealed = Enclave::new(&mut msg.clone());
            let sealing = depth_written();
            let mut dst = LockedBuffer::new(len).unwrap();
            paint_stack();
            let opened = sealed.as_ref().map(|e| e.open_into(&mut dst));
            let opening = depth_written();
            eprintln!("{len} B: the seal wrote {sealing} bytes deep, the open {opening}");
            assert!(matches!(opened, Ok(Ok(()))), "{len} B");
            assert!(dst.equal_to(&msg), "{len} B");
            deepest = deepest.max(sealing).max(opening);
        }
        crate::mem::SKIP_SCRUB.with(|skip| skip.set(false));
        assert!(
            deepest > 1024,
            "the control: a seal writes below its caller ({deepest} bytes)"
        );
        assert!(
            deepest < crate::mem::SCRUB,
            "a seal or open wrote {deepest} bytes deep, the scrub covers {}",
            crate::mem::SCRUB
        );
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let msg = [0x41u8; 64];
        let e = Enclave::new(&mut msg.clone()).unwrap();
        assert!(!e.sealed_bytes().windows(16).any(|w| w == &msg[..16]));
    }

    #[test]
    fn nonces_differ_between_seals() {
        let a = Enclave::new(&mut [1u8; 8]).unwrap();
        let b = Enclave::new(&mut [1u8; 8]).unwrap();
        assert_ne!(a.sealed_bytes()[..24], b.sealed_bytes()[..24]);
        assert_ne!(a.sealed_bytes()[24..], b.sealed_bytes()[24..]);
    }

    #[test]
    fn tampering_anywhere_fails_and_dst_is_untouched() {
        let e = Enclave::new(&mut b"sixteen byte key".to_vec()).unwrap();
        for i in 0..e.sealed_bytes().len() {
            let mut bad = e.clone();
            bad.sealed_bytes_mut()[i] ^= 0x01;
            assert!(
                matches!(bad.open(), Err(Error::DecryptionFailed)),
                "byte {i}"
            );
            let mut dst = LockedBuffer::new(16).unwrap();
            dst.copy(&[0xAB; 16]).unwrap();
            assert!(matches!(
                bad.open_into(&mut dst),
                Err(Error::DecryptionFailed)
            ));
            assert!(dst.equal_to(&[0xAB; 16]));
        }
    }

    #[test]
    fn bad_arguments() {
        assert!(matches!(Enclave::new(&mut []), Err(Error::NullBuffer)));
        assert!(matches!(Enclave::random(0), Err(Error::NullBuffer)));
        let e = Enclave::random(8).unwrap();
        let mut wrong = LockedBuffer::new(9).unwrap();
        assert!(matches!(
            e.open_into(&mut wrong),
            Err(Error::SizeMismatch {
                expected: 8,
                actual: 9
            })
        ));
        let mut frozen = LockedBuffer::random(8).unwrap();
        assert!(matches!(e.open_into(&mut frozen), Err(Error::Immutable)));
        assert_eq!(format!("{e:?}"), "Enclave { len: 8, .. }");
    }

    #[test]
    fn seal_consumes_the_buffer() {
        let mut src = *b"0123456789";
        let buf = LockedBuffer::from_bytes(&mut src).unwrap();
        let e = buf.seal().unwrap();
        assert!(e.open().unwrap().equal_to(b"0123456789"));
    }

    #[test]
    fn random_enclaves_differ_and_open() {
        let a = Enclave::random(32).unwrap().open().unwrap();
        let b = Enclave::random(32).unwrap().open().unwrap();
        assert!(!a.equal_to(&b.bytes()));
    }
}
