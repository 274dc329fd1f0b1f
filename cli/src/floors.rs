//! The raw floors the benchmarks measure memguard against: the same
//! protections written out as bare system calls, and the same cipher called
//! directly, so that each ratio says what memguard's own bookkeeping costs.
//! The operations built on them are in `benchops.rs` (this file is its
//! submodule), shared by `memguard bench` and the criterion benchmarks.
//!
//! - [`RawGuarded`]: mmap, two guard-page mprotects, mlock,
//!   `MADV_DONTDUMP` + `MADV_WIPEONFORK`, then a wipe of the `n` bytes,
//!   munlock and munmap: every protection as a call of its own, the
//!   "full" floor (BENCHMARKS.md's tables call it "the floor", after
//!   the benchmark issue that first asked for it); and [`RawGuarded::new_min`] /
//!   [`RawGuarded::destroy_min`], the fewest calls for the same protections
//!   (what `LockedBuffer` itself makes).
//! - [`RawSpare`]: the same mapping kept between uses, as memguard keeps
//!   the mapping of a destroyed one-page buffer: each use is two mprotects
//!   (writable, then `PROT_NONE`) and a wipe.
//! - [`RawCipher`] is `crypto_secretbox::XSalsa20Poly1305` (RustCrypto, the
//!   same `salsa20`/`poly1305` code the crate uses), keyed once, with a fixed
//!   nonce, working in place with a detached tag.
//! - [`seal_chunks`] and [`open_chunks`]: 16 KiB chunks, a counter (or
//!   random) nonce, one new `Vec` per sealed chunk; opening copies each
//!   chunk into one reused buffer and decrypts it there.

use std::hint::black_box;
use std::io;
use std::ptr;

use crypto_secretbox::aead::{Aead, AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};

use raw::Prot;

/// The fixed key of the raw cipher floors.
pub const KEY: [u8; 32] = [0x42; 32];
/// The fixed nonce of [`RawCipher`].
pub const NONCE: [u8; 24] = [0x24; 24];

/// A guarded, locked mapping made with raw system calls:
/// `[guard][data pages][guard]`, the data pages locked, out of core dumps
/// and wiped in forked children.
pub struct RawGuarded {
    base: *mut u8,
    total: usize,
    data: *mut u8,
    data_len: usize,
}

impl RawGuarded {
    /// mmap, mprotect both guard pages, mlock, madvise twice: the set-up
    /// half of the lifecycle floor.
    ///
    /// Fails (with nothing left mapped) when a call fails, typically mlock
    /// under a small `RLIMIT_MEMLOCK`.
    pub fn new(n: usize, page: usize) -> io::Result<RawGuarded> {
        let data_len = n.div_ceil(page) * page;
        let total = data_len + 2 * page;
        let base = raw::map(total, Prot::ReadWrite)?;
        // SAFETY: base..base+total is the mapping just made, and page and
        // data_len add up to less than total, so these offsets stay inside.
        let (data, trailing) = unsafe {
            let data = base.add(page);
            (data, data.add(data_len))
        };
        // SAFETY: every range below lies inside the mapping just made, which
        // nothing else references.
        let set_up = unsafe {
            raw::protect(base, page, Prot::None)
                .and_then(|()| raw::protect(trailing, page, Prot::None))
                .and_then(|()| raw::lock_and_advise(data, data_len))
        };
        RawGuarded::finish(base, total, data, data_len, set_up)
    }

    /// Wipes the last `n` data bytes (where a buffer of `n` bytes sits),
    /// then munlock and munmap: the tear-down half of the lifecycle floor.
    pub fn destroy(self, n: usize) {
        let n = n.min(self.data_len);
        // SAFETY: the data pages are mapped read-write and `n <= data_len`;
        // afterwards the whole mapping is released and never used again
        // (`self` is consumed).
        unsafe {
            let start = self.data.add(self.data_len - n);
            ptr::write_bytes(start, 0, n);
            // The pointer escapes, so the zeroing stores must happen.
            black_box(start);
            raw::unlock(self.data, self.data_len);
            raw::unmap(self.base, self.total);
        }
    }

    /// Wraps a mapping whose set-up calls returned `set_up`; on failure the
    /// mapping is unmapped and the error returned.
    fn finish(
        base: *mut u8,
        total: usize,
        data: *mut u8,
        data_len: usize,
        set_up: io::Result<()>,
    ) -> io::Result<RawGuarded> {
        if let Err(e) = set_up {
            // SAFETY: exactly the mapping the caller just made, never shared.
            unsafe { raw::unmap(base, total) };
            return Err(e);
        }
        Ok(RawGuarded {
            base,
            total,
            data,
            data_len,
        })
    }

    /// The fewest calls for the same protections: map `PROT_NONE`, make the
    /// data pages read-write, lock, advise twice.
    pub fn new_min(n: usize, page: usize) -> io::Result<RawGuarded> {
        let data_len = n.div_ceil(page) * page;
        let total = data_len + 2 * page;
        let base = raw::map(total, Prot::None)?;
        // SAFETY: the data pages lie inside the mapping just made.
        let data = unsafe { base.add(page) };
        // SAFETY: every range below lies inside the mapping just made, which
        // nothing else references.
        let set_up = unsafe {
            raw::protect(data, data_len, Prot::ReadWrite)
                .and_then(|()| raw::lock_and_advise(data, data_len))
        };
        RawGuarded::finish(base, total, data, data_len, set_up)
    }

    /// Wipes the last `n` data bytes and unmaps; munmap also drops the lock,
    /// so there is no munlock.
    pub fn destroy_min(self, n: usize) {
        let n = n.min(self.data_len);
        // SAFETY: as in destroy().
        unsafe {
            let start = self.data.add(self.data_len - n);
            ptr::write_bytes(start, 0, n);
            black_box(start);
            raw::unmap(self.base, self.total);
        }
    }

    /// The floor under `freeze` + `melt`: the data pages made read-only,
    /// then read-write again, with two mprotects.
    pub fn freeze_melt(&mut self) -> io::Result<()> {
        let data = black_box(self.data);
        // SAFETY: the data pages of a live mapping of ours; `&mut self`
        // means no reference into them exists, so nothing writes while they
        // are read-only.
        unsafe {
            raw::protect(data, self.data_len, Prot::Read)?;
            raw::protect(data, self.data_len, Prot::ReadWrite)?;
        }
        Ok(())
    }
}

/// A guarded, locked mapping kept between uses, as memguard keeps the
/// mapping of a destroyed one-page buffer: its data page `PROT_NONE` while
/// unused. The floor under a lifecycle that reuses one.
pub struct RawSpare(RawGuarded);

impl RawSpare {
    /// A fresh mapping (the fewest calls), its data page sealed off.
    pub fn new(page: usize) -> io::Result<RawSpare> {
        let spare = RawSpare(RawGuarded::new_min(page, page)?);
        spare.protect(Prot::None)?;
        Ok(spare)
    }

    fn protect(&self, prot: Prot) -> io::Result<()> {
        // SAFETY: the data page of our live mapping; callers hold no
        // reference into it across a change that forbids their access.
        unsafe { raw::protect(self.0.data, self.0.data_len, prot) }
    }

    /// The last `n` bytes of the data page.
    ///
    /// # Safety
    /// The page must be writable, and the slice dropped before it is not.
    #[allow(clippy::mut_from_ref)]
    unsafe fn tail(&self, n: usize) -> &mut [u8] {
        let n = n.min(self.0.data_len);
        // SAFETY: inside the data page; the caller keeps it writable.
        unsafe { std::slice::from_raw_parts_mut(self.0.data.add(self.0.data_len - n), n) }
    }

    /// One use: the page made writable, `n` bytes wiped, the page sealed
    /// off again (2 mprotects and a wipe).
    pub fn cycle(&mut self, n: usize) -> io::Result<()> {
        self.protect(Prot::ReadWrite)?;
        // SAFETY: writable until the protect below; the slice ends first.
        let data = unsafe { self.tail(n) };
        data.fill(0);
        black_box(&data);
        self.protect(Prot::None)
    }

    /// One open: the page made writable, the ciphertext copied in and
    /// decrypted, the page read-only, writable again, wiped, sealed off
    /// (4 mprotects).
    pub fn open(&mut self, cipher: &RawCipher, ciphertext: &[u8], tag: &Tag) -> io::Result<()> {
        let n = ciphertext.len();
        self.protect(Prot::ReadWrite)?;
        // SAFETY: writable now; the slice is not used after the read-only
        // protect below until the page is writable again.
        let data = unsafe { self.tail(n) };
        let opened = cipher.open_copy(data, ciphertext, tag);
        self.protect(Prot::Read)?;
        self.protect(Prot::ReadWrite)?;
        data.fill(0);
        black_box(&data);
        self.protect(Prot::None)?;
        opened
    }

    /// Unmaps it.
    pub fn destroy(self) {
        self.0.destroy_min(0);
    }
}

/// XSalsa20-Poly1305 from `crypto_secretbox`, keyed once, with a fixed
/// nonce: the floor under sealing and opening an enclave.
pub struct RawCipher {
    cipher: XSalsa20Poly1305,
    nonce: Nonce,
}

impl Default for RawCipher {
    fn default() -> RawCipher {
        RawCipher::new()
    }
}

impl RawCipher {
    /// The cipher under the fixed benchmark key.
    pub fn new() -> RawCipher {
        RawCipher {
            cipher: XSalsa20Poly1305::new(&KEY.into()),
            nonce: Nonce::from(NONCE),
        }
    }

    /// Encrypts `buf` in place and returns the detached tag.
    #[inline(always)]
    pub fn seal(&self, buf: &mut [u8]) -> Tag {
        self.cipher
            .encrypt_in_place_detached(&self.nonce, b"", buf)
            .expect("encrypting in place cannot fail below 256 GiB")
    }

    /// Copies `ciphertext` into `dst` (the same length) and authenticates
    /// and decrypts it there; an error if the tag does not match.
    pub fn open_copy(&self, dst: &mut [u8], ciphertext: &[u8], tag: &Tag) -> io::Result<()> {
        dst.copy_from_slice(ciphertext);
        let opened = self.open(dst, tag);
        black_box(&dst);
        if opened {
            Ok(())
        } else {
            Err(io::Error::other(
                "the raw cipher refused its own ciphertext",
            ))
        }
    }

    /// Authenticates and decrypts `buf` in place; false if the tag does not
    /// match.
    #[inline(always)]
    pub fn open(&self, buf: &mut [u8], tag: &Tag) -> bool {
        self.cipher
            .decrypt_in_place_detached(&self.nonce, b"", buf, tag)
            .is_ok()
    }
}

/// The floor under `Enclave::open`: a raw guarded mapping is made, the
/// ciphertext copied into it and decrypted there, the pages made read-only
/// (as `open` freezes its buffer) and writable again for the wipe, and the
/// mapping destroyed: the lifecycle floor plus the cipher plus two
/// mprotects.
pub fn guarded_open(
    cipher: &RawCipher,
    ciphertext: &[u8],
    tag: &Tag,
    page: usize,
) -> io::Result<()> {
    let n = ciphertext.len();
    let mut g = RawGuarded::new(n, page)?;
    // SAFETY: the last `n` bytes of the live guarded mapping's data pages,
    // mapped read-write; this slice is the only reference to them and it
    // ends before the pages are made read-only.
    let data = unsafe { std::slice::from_raw_parts_mut(g.data.add(g.data_len - n), n) };
    let opened = cipher.open_copy(data, ciphertext, tag);
    let protected = g.freeze_melt();
    g.destroy(n);
    protected?;
    opened
}

/// One chunk sealed by [`seal_detached_chunks`]: nonce, tag, ciphertext.
pub type DetachedChunk = (Nonce, Tag, Vec<u8>);

/// One chunk sealed by [`seal_chunks`]: nonce, then tag and ciphertext.
pub type SealedChunk = (Nonce, Vec<u8>);

/// The next nonce of a 64-bit counter (little endian in the first 8 bytes).
pub fn counter_nonce(counter: &mut u64) -> Nonce {
    *counter += 1;
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(n)
}

/// A nonce from the OS (`getrandom`), as `Stream` draws one per chunk.
pub fn random_nonce() -> Nonce {
    let mut n = [0u8; 24];
    getrandom::fill(&mut n).expect("getrandom");
    Nonce::from(n)
}

/// A cipher for the stream floors, under the fixed benchmark key.
pub fn chunk_cipher() -> XSalsa20Poly1305 {
    XSalsa20Poly1305::new(&KEY.into())
}

/// Seals `src` in `chunk`-byte chunks, each with a nonce from `nonce` into
/// a new `Vec` (as the stream allocates one box per chunk): the floor under
/// `Stream` writes.
#[inline(always)]
pub fn seal_chunks(
    cipher: &XSalsa20Poly1305,
    src: &[u8],
    chunk: usize,
    mut nonce: impl FnMut() -> Nonce,
) -> Vec<SealedChunk> {
    let mut out = Vec::with_capacity(src.len().div_ceil(chunk));
    for part in src.chunks(chunk) {
        let n = nonce();
        let sealed = cipher.encrypt(&n, part).expect("encrypt");
        out.push((n, sealed));
    }
    out
}

/// Seals `src` in `chunk`-byte chunks with detached tags, for
/// [`open_chunks`] (done once, outside the timing).
pub fn seal_detached_chunks(
    cipher: &XSalsa20Poly1305,
    src: &[u8],
    chunk: usize,
    counter: &mut u64,
) -> Vec<DetachedChunk> {
    src.chunks(chunk)
        .map(|part| {
            let n = counter_nonce(counter);
            let mut ct = part.to_vec();
            let tag = cipher
                .encrypt_in_place_detached(&n, b"", &mut ct)
                .expect("encrypt");
            (n, tag, ct)
        })
        .collect()
}

/// Opens every chunk: copies it into `out` (one reused chunk-sized buffer)
/// and decrypts it there; the floor under `Stream` reads. Returns the bytes
/// opened, or `None` if a tag did not match.
#[inline(always)]
pub fn open_chunks(
    cipher: &XSalsa20Poly1305,
    sealed: &[DetachedChunk],
    out: &mut [u8],
) -> Option<usize> {
    let mut total = 0;
    for (n, tag, ct) in sealed {
        let out = &mut out[..ct.len()];
        out.copy_from_slice(ct);
        cipher.decrypt_in_place_detached(n, b"", out, tag).ok()?;
        black_box(&out);
        total += ct.len();
    }
    Some(total)
}

/// The system calls of the page floors, per OS: the same protections
/// memguard's backend for that OS gives, written out bare.
///
/// Linux: mmap, mprotect, mlock, `MADV_DONTDUMP` + `MADV_WIPEONFORK`,
/// munlock, munmap (what the figures in BENCHMARKS.md measure). Other Unix
/// systems: the same without the Linux advice (the floors there are only
/// compile-checked here). Windows: VirtualAlloc, VirtualProtect,
/// VirtualLock, VirtualUnlock, VirtualFree.
mod raw {
    /// The protections the floors switch between.
    #[derive(Clone, Copy)]
    pub enum Prot {
        None,
        Read,
        ReadWrite,
    }

    #[cfg(unix)]
    pub use self::unix::*;
    #[cfg(windows)]
    pub use self::windows::*;

    #[cfg(unix)]
    mod unix {
        use std::ffi::c_void;
        use std::io;
        use std::ptr;

        use rustix::mm::{self, MapFlags, MprotectFlags, ProtFlags};

        use super::Prot;

        /// A fresh private anonymous mapping of `total` bytes.
        pub fn map(total: usize, prot: Prot) -> io::Result<*mut u8> {
            let (prot, flags) = match prot {
                Prot::None => (ProtFlags::empty(), no_reserve()),
                Prot::Read => (ProtFlags::READ, MapFlags::PRIVATE),
                Prot::ReadWrite => (ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE),
            };
            // SAFETY: a null hint lets the kernel choose an unused address;
            // the new private anonymous mapping aliases nothing.
            let base = unsafe { mm::mmap_anonymous(ptr::null_mut(), total, prot, flags) }?;
            Ok(base.cast())
        }

        /// Flags of a mapping made inaccessible (its pages made accessible
        /// later): no swap reserved for it where the OS has the flag.
        #[cfg(target_os = "linux")]
        fn no_reserve() -> MapFlags {
            MapFlags::PRIVATE | MapFlags::NORESERVE
        }
        #[cfg(not(target_os = "linux"))]
        fn no_reserve() -> MapFlags {
            MapFlags::PRIVATE
        }

        /// mprotect.
        ///
        /// # Safety
        /// The range lies in a mapping of the caller's, and no reference into
        /// it is used against the new protection.
        pub unsafe fn protect(ptr: *mut u8, len: usize, prot: Prot) -> io::Result<()> {
            let flags = match prot {
                Prot::None => MprotectFlags::empty(),
                Prot::Read => MprotectFlags::READ,
                Prot::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
            };
            // SAFETY: as the caller guarantees.
            unsafe { mm::mprotect(ptr.cast::<c_void>(), len, flags) }?;
            Ok(())
        }

        /// mlock, and on Linux `MADV_DONTDUMP` + `MADV_WIPEONFORK`, as
        /// memguard does.
        ///
        /// # Safety
        /// The range is the data pages of a mapping the caller just made and
        /// nothing else references.
        pub unsafe fn lock_and_advise(ptr: *mut u8, len: usize) -> io::Result<()> {
            let data = ptr.cast::<c_void>();
            // SAFETY: the caller's mapping; locking and advising change no
            // contents.
            unsafe {
                mm::mlock(data, len)?;
                #[cfg(target_os = "linux")]
                {
                    mm::madvise(data, len, mm::Advice::LinuxDontDump)?;
                    mm::madvise(data, len, mm::Advice::LinuxWipeOnFork)?;
                }
            }
            Ok(())
        }

        /// munlock; an error is ignored, as the mapping goes next.
        ///
        /// # Safety
        /// The range lies in a mapping of the caller's.
        pub unsafe fn unlock(ptr: *mut u8, len: usize) {
            // SAFETY: as the caller guarantees; unlocking changes no contents.
            let _ = unsafe { mm::munlock(ptr.cast::<c_void>(), len) };
        }

        /// munmap.
        ///
        /// # Safety
        /// Exactly a mapping from [`map`], never used afterwards.
        pub unsafe fn unmap(ptr: *mut u8, total: usize) {
            // SAFETY: as the caller guarantees.
            let _ = unsafe { mm::munmap(ptr.cast::<c_void>(), total) };
        }
    }

    #[cfg(windows)]
    mod windows {
        use std::ffi::c_void;
        use std::io;
        use std::ptr;

        use windows_sys::Win32::System::Memory::{
            VirtualAlloc, VirtualFree, VirtualLock, VirtualProtect, VirtualUnlock, MEM_COMMIT,
            MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS, PAGE_PROTECTION_FLAGS, PAGE_READONLY,
            PAGE_READWRITE,
        };

        use super::Prot;

        fn flags(prot: Prot) -> PAGE_PROTECTION_FLAGS {
            match prot {
                Prot::None => PAGE_NOACCESS,
                Prot::Read => PAGE_READONLY,
                Prot::ReadWrite => PAGE_READWRITE,
            }
        }

        /// VirtualAlloc of `total` committed bytes.
        pub fn map(total: usize, prot: Prot) -> io::Result<*mut u8> {
            // SAFETY: a null address lets the system choose; the new
            // allocation aliases nothing.
            let base =
                unsafe { VirtualAlloc(ptr::null(), total, MEM_RESERVE | MEM_COMMIT, flags(prot)) };
            if base.is_null() {
                return Err(io::Error::last_os_error());
            }
            Ok(base.cast())
        }

        /// VirtualProtect.
        ///
        /// # Safety
        /// The range lies in an allocation of the caller's, and no reference
        /// into it is used against the new protection.
        pub unsafe fn protect(ptr: *mut u8, len: usize, prot: Prot) -> io::Result<()> {
            let mut old = 0;
            // SAFETY: as the caller guarantees; `old` is a valid out pointer.
            if unsafe { VirtualProtect(ptr.cast::<c_void>(), len, flags(prot), &mut old) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// VirtualLock (Windows has no per-allocation dump or fork advice).
        ///
        /// # Safety
        /// The range lies in an allocation of the caller's.
        pub unsafe fn lock_and_advise(ptr: *mut u8, len: usize) -> io::Result<()> {
            // SAFETY: as the caller guarantees; locking changes no contents.
            if unsafe { VirtualLock(ptr.cast::<c_void>(), len) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// VirtualUnlock; an error is ignored, as the allocation goes next.
        ///
        /// # Safety
        /// The range lies in an allocation of the caller's.
        pub unsafe fn unlock(ptr: *mut u8, len: usize) {
            // SAFETY: as the caller guarantees.
            let _ = unsafe { VirtualUnlock(ptr.cast::<c_void>(), len) };
        }

        /// VirtualFree of the whole allocation.
        ///
        /// # Safety
        /// Exactly an allocation from [`map`], never used afterwards.
        pub unsafe fn unmap(ptr: *mut u8, _total: usize) {
            // SAFETY: as the caller guarantees; MEM_RELEASE takes size 0.
            let _ = unsafe { VirtualFree(ptr.cast::<c_void>(), 0, MEM_RELEASE) };
        }
    }
}
