//! Secret memory on Linux: `memfd_secret(2)` (5.14 and later).
//!
//! The pages of a secret-memory file are taken out of the kernel's direct
//! map: only the page tables of the processes that map the file reach
//! them, so `/proc/<pid>/mem`, `process_vm_readv`, `ptrace` peeks and every
//! other path that pins user pages fail on them, root's included. The
//! kernel marks such mappings `VM_LOCKED` (they count against
//! `RLIMIT_MEMLOCK` when mapped; `mlock` itself refuses them) and
//! `VM_DONTDUMP`.
//!
//! A file costs a system call to make, one to size (once: a secret file's
//! size can be set only once, and holes cannot be punched), and a mapping
//! per piece. So the files are *arenas*: one file of [`ARENA_BYTES`],
//! handed out in pieces at page-aligned offsets, each piece mapped over the
//! interior of an anonymous `PROT_NONE` reservation (its guard pages stay
//! plain reservation: they count against nothing and hold no memory). A
//! freed piece's offset is kept for the next piece of that size or less,
//! and zeroed when reused (its pages stay in the file until then). A piece
//! larger than a quarter of an arena gets a file of its own. An arena with
//! no piece left is closed (its pages go back to the system), except the
//! last one, kept for the next allocation.
//!
//! The mappings are `MAP_SHARED` (the only way to map a secret file), which
//! a forked child would share, writes included. So every piece gets
//! `MADV_DONTFORK` as soon as it is mapped, under the pool's lock (which
//! `fork` waits for), and the child closes the inherited file descriptors
//! in a `pthread_atfork` hook, so it cannot map the files again.
//!
//! # Aliased pieces
//!
//! [`allocate_aliased`] maps a piece twice: over the reservation as above
//! (the view the secrets are read through, guard pages around it), and once
//! more, read-write, anywhere (the *alias*, for the compact slabs of frozen
//! secrets: filled and wiped through it, so the first view can stay
//! read-only without an `mprotect` pair per fill and wipe). With secret
//! memory the alias is a second mapping of the same file range: the kernel
//! counts every mapping of a secret file against `RLIMIT_MEMLOCK`, so the
//! alias costs its length in lock budget again. With anonymous memory the
//! piece comes from a second pool of the same shape whose files are
//! ordinary `memfd_create` files (`MFD_CLOEXEC`, holes punched when a piece
//! is given back): the caller `mlock`s the first view only, which locks the
//! file's pages for every mapping of them, so the alias costs no lock
//! budget; both views get `MADV_DONTDUMP` here. Both views of either kind
//! get `MADV_DONTFORK` (`MADV_WIPEONFORK` is refused on shared mappings).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use rustix::io::Errno;
use rustix::mm::{self, Advice, MprotectFlags};

use super::unix::{map_error, memlock_limit};
use crate::error::{Error, Result};

/// The size of a shared arena file: 1 MiB of offsets (only the pages
/// pieces touch hold memory).
const ARENA_BYTES: usize = 1 << 20;

/// A secret-memory file, handed out in pieces.
struct Arena {
    /// The file; -1 once closed (in a forked child).
    fd: libc::c_int,
    /// Its size in bytes, set once.
    size: usize,
    /// Offsets from here on were never handed out (their pages are zero).
    next: usize,
    /// Offsets handed out and given back: (offset, length), sorted.
    free: Vec<(usize, usize)>,
    /// Pieces mapped now.
    live: usize,
    /// Made for one large piece.
    dedicated: bool,
}

/// Where a piece came from.
struct Piece {
    arena: u64,
    offset: usize,
    len: usize,
    /// The second, writable view of an aliased piece.
    alias: Option<usize>,
}

/// Which files a pool's arenas are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `memfd_secret` files (the secret-memory backend).
    Secret,
    /// Ordinary `memfd_create` files, for aliased pieces of the anonymous
    /// backend.
    Shared,
}

/// Every arena, and every piece mapped now (by the address of its first
/// secret page).
struct Pool {
    kind: Kind,
    arenas: Vec<(u64, Arena)>,
    pieces: BTreeMap<usize, Piece>,
    next_id: u64,
    /// Set in a forked child: the arenas are this process's no more.
    forked: bool,
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new(Kind::Secret));
/// The `memfd_create` files of aliased pieces of the anonymous backend.
static SHARED_POOL: Mutex<Pool> = Mutex::new(Pool::new(Kind::Shared));

/// Both pools' locks, in the order `before_fork` takes them.
type HeldPools = (MutexGuard<'static, Pool>, MutexGuard<'static, Pool>);

thread_local! {
    /// The pools' locks, held by the forking thread across `fork`.
    static HELD: Cell<Option<HeldPools>> = const { Cell::new(None) };
}

/// The pool of `kind`.
fn pool_of(kind: Kind) -> &'static Mutex<Pool> {
    match kind {
        Kind::Secret => &POOL,
        Kind::Shared => &SHARED_POOL,
    }
}

fn pool(kind: Kind) -> MutexGuard<'static, Pool> {
    install_fork_hooks();
    let mut pool = pool_of(kind).lock().unwrap_or_else(PoisonError::into_inner);
    if pool.forked {
        // A forked child: the pieces were not inherited (MADV_DONTFORK) and
        // the files were closed by the child hook; start afresh.
        pool.arenas.clear();
        pool.pieces.clear();
        pool.forked = false;
    }
    pool
}

extern "C" fn before_fork() {
    let secret = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    let shared = SHARED_POOL.lock().unwrap_or_else(PoisonError::into_inner);
    HELD.with(|held| held.set(Some((secret, shared))));
}

extern "C" fn after_fork_in_parent() {
    HELD.with(|held| drop(held.take()));
}

extern "C" fn after_fork_in_child() {
    HELD.with(|held| {
        let Some((secret, shared)) = held.take() else {
            return;
        };
        for mut pool in [secret, shared] {
            for (_, arena) in &mut pool.arenas {
                if arena.fd >= 0 {
                    // SAFETY: close is async-signal-safe; the descriptor is
                    // this child's copy of one of our arena files, which
                    // nothing else in the child uses.
                    unsafe { libc::close(arena.fd) };
                    arena.fd = -1;
                }
            }
            pool.forked = true;
        }
    });
}

/// Registers the fork hooks of the pool, once. They must be registered
/// before any other hook of the crate (see `Unix::install_fork_hooks`), so
/// that the pool's lock is taken last before `fork` (a thread may hold
/// another lock of the crate while it allocates or frees pages).
pub(super) fn install_fork_hooks() {
    static HOOKS: Once = Once::new();
    HOOKS.call_once(|| {
        // SAFETY: registers three functions that live as long as the
        // program; the child hook only calls close and stores plain values,
        // as code run in a child after fork must.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork as unsafe extern "C" fn()),
                Some(after_fork_in_parent as unsafe extern "C" fn()),
                Some(after_fork_in_child as unsafe extern "C" fn()),
            );
        }
    });
}

/// A new file of `kind` and `size` bytes.
fn open(kind: Kind, size: usize) -> std::result::Result<libc::c_int, Errno> {
    let fd = match kind {
        // SAFETY: memfd_secret takes one integer flag; it returns a new file
        // descriptor or -1.
        Kind::Secret => unsafe {
            libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_uint)
        },
        // SAFETY: a NUL-terminated name and a flag; returns a new file
        // descriptor or -1.
        Kind::Shared => libc::c_long::from(unsafe {
            libc::memfd_create(c"memguard-slab".as_ptr(), libc::MFD_CLOEXEC)
        }),
    };
    if fd < 0 {
        return Err(last_errno());
    }
    let fd = fd as libc::c_int;
    let Ok(len) = libc::off_t::try_from(size) else {
        // SAFETY: our new descriptor, used by nothing else.
        unsafe { libc::close(fd) };
        return Err(Errno::NOMEM);
    };
    // SAFETY: sizes our new file; no pointer is passed.
    if unsafe { libc::ftruncate(fd, len) } != 0 {
        let e = last_errno();
        // SAFETY: as above.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// Whether secret memory works here: a file is made and sized (and kept as
/// the first arena); why not otherwise.
pub(super) fn probe() -> std::result::Result<String, String> {
    match open(Kind::Secret, ARENA_BYTES) {
        Ok(fd) => {
            let mut pool = pool(Kind::Secret);
            let id = pool.next_id;
            pool.next_id += 1;
            pool.arenas.push((id, Arena::new(fd, ARENA_BYTES, false)));
            Ok("memfd_secret works on this kernel (pages out of the kernel's direct map)".into())
        }
        Err(e) => Err(why_not(e)),
    }
}

/// What a refusal of `memfd_secret` means.
fn why_not(e: Errno) -> String {
    match e {
        Errno::NOSYS => "the kernel has no memfd_secret (ENOSYS: Linux before 5.14, built \
                         without CONFIG_SECRETMEM, booted with secretmem.enable=0, or run under \
                         an emulator, valgrind or a seccomp filter that refuses it this way)"
            .to_owned(),
        Errno::PERM | Errno::ACCESS => format!(
            "memfd_secret was refused ({}: a seccomp filter, such as a container runtime's, \
             or a security module forbids it)",
            std::io::Error::from(e)
        ),
        Errno::NOMEM | Errno::MFILE | Errno::NFILE => format!(
            "memfd_secret failed for lack of resources ({})",
            std::io::Error::from(e)
        ),
        other => format!("memfd_secret failed ({})", std::io::Error::from(other)),
    }
}

impl Arena {
    fn new(fd: libc::c_int, size: usize, dedicated: bool) -> Arena {
        Arena {
            fd,
            size,
            next: 0,
            free: Vec::new(),
            live: 0,
            dedicated,
        }
    }

    /// An offset for `len` bytes, and whether its pages were used before.
    fn take(&mut self, len: usize) -> Option<(usize, bool)> {
        if self.fd < 0 {
            return None;
        }
        if let Some(i) = self.free.iter().position(|&(_, l)| l >= len) {
            let (offset, l) = self.free[i];
            if l == len {
                self.free.remove(i);
            } else {
                self.free[i] = (offset + len, l - len);
            }
            return Some((offset, true));
        }
        if self.size - self.next >= len {
            let offset = self.next;
            self.next += len;
            return Some((offset, false));
        }
        None
    }

    /// Takes back `len` bytes at `offset`, merged with free neighbours.
    fn give_back(&mut self, offset: usize, len: usize) {
        let i = self.free.partition_point(|&(o, _)| o < offset);
        self.free.insert(i, (offset, len));
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

impl Pool {
    const fn new(kind: Kind) -> Pool {
        Pool {
            kind,
            arenas: Vec::new(),
            pieces: BTreeMap::new(),
            next_id: 0,
            forked: false,
        }
    }

    /// An arena and an offset in it for `len` bytes: (arena id, fd,
    /// offset, whether the pages were used before).
    fn take(&mut self, len: usize) -> Result<(u64, libc::c_int, usize, bool)> {
        if len <= ARENA_BYTES / 4 {
            for (id, arena) in self.arenas.iter_mut().rev() {
                if arena.dedicated {
                    continue;
                }
                if let Some((offset, used)) = arena.take(len) {
                    arena.live += 1;
                    return Ok((*id, arena.fd, offset, used));
                }
            }
        }
        let dedicated = len > ARENA_BYTES / 4;
        let size = if dedicated { len } else { ARENA_BYTES };
        let call = match self.kind {
            Kind::Secret => "memfd_secret",
            Kind::Shared => "memfd_create",
        };
        let fd = open(self.kind, size).map_err(|e| match e {
            Errno::MFILE | Errno::NFILE => Error::os(call, e.into()),
            other => map_error(call, other),
        })?;
        let mut arena = Arena::new(fd, size, dedicated);
        let (offset, used) = arena.take(len).ok_or(Error::TooLarge { size: len })?;
        arena.live = 1;
        let id = self.next_id;
        self.next_id += 1;
        self.arenas.push((id, arena));
        Ok((id, fd, offset, used))
    }

    /// Gives a piece's offset back to its arena; closes the arena when it
    /// holds no piece any more, unless it is the one shared arena left.
    fn give_back(&mut self, piece: &Piece) {
        let Some(i) = self.arenas.iter().position(|(id, _)| *id == piece.arena) else {
            return;
        };
        let arena = &mut self.arenas[i].1;
        if self.kind == Kind::Shared && arena.fd >= 0 {
            // The pages go back to the system now (a secret file cannot
            // punch holes: its pages stay until the file is closed). The
            // piece was wiped by its owner; should this fail, the pages
            // stay in the file and are zeroed when reused.
            // SAFETY: our file; the range is the piece's, mapped nowhere
            // any more.
            let _ = unsafe {
                libc::fallocate(
                    arena.fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    piece.offset as libc::off_t,
                    piece.len as libc::off_t,
                )
            };
        }
        arena.give_back(piece.offset, piece.len);
        arena.live -= 1;
        if arena.live > 0 {
            return;
        }
        let dedicated = arena.dedicated;
        let other_shared = self
            .arenas
            .iter()
            .enumerate()
            .any(|(j, (_, a))| j != i && !a.dedicated);
        if dedicated || other_shared {
            let (_, arena) = self.arenas.remove(i);
            if arena.fd >= 0 {
                // SAFETY: our arena's descriptor; no piece of it is mapped,
                // and nothing else uses it.
                unsafe { libc::close(arena.fd) };
            }
        }
    }
}

/// A piece of secret memory for `len` bytes: a `PROT_NONE` reservation of
/// `len` bytes whose interior (all but the first and last page, for a
/// mapping of three pages or more) is mapped from an arena, zero-filled,
/// `PROT_NONE`, with `MADV_DONTFORK`.
pub(super) fn allocate(len: usize, page: usize) -> Result<*mut c_void> {
    allocate_in(Kind::Secret, len, page, false).map(|(base, _)| base)
}

/// As [`allocate`], from secret memory (`secret`) or from an ordinary
/// `memfd_create` file (for the anonymous backend), plus a second mapping
/// of the interior, read-write, with `MADV_DONTFORK` (and, for an ordinary
/// file, `MADV_DONTDUMP` on both views): the base and the alias.
pub(super) fn allocate_aliased(
    secret: bool,
    len: usize,
    page: usize,
) -> Result<Option<(*mut c_void, *mut c_void)>> {
    let kind = if secret { Kind::Secret } else { Kind::Shared };
    let (base, alias) = allocate_in(kind, len, page, true)?;
    Ok(alias.map(|alias| (base, alias)))
}

/// The error for a failed `mmap` of a piece.
fn map_failed(kind: Kind, e: Errno, requested: usize) -> Error {
    match (kind, e) {
        // The lock limit (mlock_future_ok) refuses with EAGAIN.
        (Kind::Secret, Errno::AGAIN | Errno::PERM) => Error::MemoryLock {
            requested,
            limit: memlock_limit(),
            source: e.into(),
        },
        (Kind::Secret, other) => map_error("mmap(memfd_secret)", other),
        (Kind::Shared, other) => map_error("mmap(memfd)", other),
    }
}

fn allocate_in(
    kind: Kind,
    len: usize,
    page: usize,
    aliased: bool,
) -> Result<(*mut c_void, Option<*mut c_void>)> {
    let lead = if len >= 3 * page { page } else { 0 };
    let inner = len - 2 * lead;
    let base = super::linux::map(len)?;
    let data = base as usize + lead;
    let mut pool = pool(kind);
    let (arena, fd, offset, used) = match pool.take(inner) {
        Ok(got) => got,
        Err(e) => {
            drop(pool);
            unmap(base, len);
            return Err(e);
        }
    };
    let prot = if used {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    // SAFETY: the target range is the interior of the reservation we just
    // made, which nothing else uses; MAP_FIXED replaces that part of it
    // only. The file and offset are ours (the offset range is handed to
    // this piece alone).
    let got = unsafe {
        libc::mmap(
            data as *mut c_void,
            inner,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            offset as libc::off_t,
        )
    };
    let mut failed = if got == libc::MAP_FAILED {
        Some(last_errno())
    } else {
        // SAFETY: the piece just mapped, ours alone. Under the pool's lock,
        // which fork waits for: no child can be made before the advice.
        unsafe { advise(kind, data as *mut c_void, inner) }.err()
    };
    let mut alias = None;
    if aliased && failed.is_none() {
        // SAFETY: a null hint: the kernel picks an address that overlaps
        // nothing; the file range is this piece's alone.
        let view = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                inner,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if view == libc::MAP_FAILED {
            failed = Some(last_errno());
        } else {
            alias = Some(view);
            // SAFETY: the alias just mapped, ours alone; under the pool's
            // lock, as above.
            failed = unsafe { advise(kind, view, inner) }.err();
        }
    }
    // Undoes the allocation: the piece back to its arena, the reservation
    // and the alias unmapped.
    let undo = |mut pool: MutexGuard<'static, Pool>| {
        pool.give_back(&Piece {
            arena,
            offset,
            len: inner,
            alias: None,
        });
        drop(pool);
        unmap(base, len);
        if let Some(view) = alias {
            unmap(view, inner);
        }
    };
    if let Some(e) = failed {
        undo(pool);
        return Err(map_failed(kind, e, inner));
    }
    if used {
        // SAFETY: the piece is mapped readable and writable, and only we
        // know of it; the pages held an earlier piece, wiped by its owner,
        // and are zeroed again so that every allocation starts zero-filled.
        unsafe { std::ptr::write_bytes(data as *mut u8, 0, inner) };
        // SAFETY: the piece just mapped; nothing references it.
        let sealed = unsafe { mm::mprotect(data as *mut c_void, inner, MprotectFlags::empty()) };
        if let Err(e) = sealed {
            undo(pool);
            return Err(map_error("mprotect", e));
        }
    }
    pool.pieces.insert(
        data,
        Piece {
            arena,
            offset,
            len: inner,
            alias: alias.map(|v| v as usize),
        },
    );
    Ok((base, alias))
}

/// `MADV_DONTFORK` on a view of a piece, and `MADV_DONTDUMP` for an
/// ordinary file (the kernel sets `VM_DONTDUMP` on secret memory itself).
///
/// # Safety
/// The range must be a view of one of our pieces.
unsafe fn advise(kind: Kind, addr: *mut c_void, len: usize) -> std::result::Result<(), Errno> {
    if kind == Kind::Shared {
        // SAFETY: the caller's range; the advice changes no contents.
        unsafe { mm::madvise(addr, len, Advice::LinuxDontDump) }?;
    }
    // SAFETY: as above.
    unsafe { mm::madvise(addr, len, Advice::LinuxDontFork) }
}

fn unmap(base: *mut c_void, len: usize) {
    // SAFETY: a reservation or view we made, which nothing uses any more
    // (never handed out, or given back by its owner).
    let _ = unsafe { mm::munmap(base, len) };
}

/// Unmaps a mapping from [`allocate`] and gives its piece back; `false`
/// (and nothing done) when `base` is no piece of secret memory.
///
/// # Safety
/// `base` and `len` must be exactly a mapping from [`allocate`] (or from
/// the anonymous backend), and nothing may use it afterwards.
pub(super) unsafe fn free(base: NonNull<u8>, len: usize, page: usize) -> bool {
    // SAFETY: the caller's contract, passed on.
    unsafe { free_in(Kind::Secret, base, len, page) }
}

/// Unmaps a mapping from [`allocate_aliased`] (`secret` as given there),
/// its alias with it, and gives its piece back; `false` when it is none.
///
/// # Safety
/// `base` and `len` must be exactly a mapping from [`allocate_aliased`],
/// and nothing may use either view afterwards.
pub(super) unsafe fn free_aliased(
    secret: bool,
    base: NonNull<u8>,
    len: usize,
    page: usize,
) -> bool {
    let kind = if secret { Kind::Secret } else { Kind::Shared };
    // SAFETY: the caller's contract, passed on.
    unsafe { free_in(kind, base, len, page) }
}

/// Unmaps the alias of a mapping from [`allocate_aliased`] and keeps the
/// rest; nothing when it has none.
///
/// # Safety
/// `base` and `len` must be exactly a live mapping from
/// [`allocate_aliased`], and nothing may use its alias afterwards.
pub(super) unsafe fn drop_alias(secret: bool, base: NonNull<u8>, len: usize, page: usize) {
    let kind = if secret { Kind::Secret } else { Kind::Shared };
    let lead = if len >= 3 * page { page } else { 0 };
    let data = base.as_ptr() as usize + lead;
    let mut pool = pool(kind);
    if let Some(piece) = pool.pieces.get_mut(&data) {
        if let Some(view) = piece.alias.take() {
            unmap(view as *mut c_void, piece.len);
        }
    }
}

/// # Safety
/// As for [`free_aliased`].
unsafe fn free_in(kind: Kind, base: NonNull<u8>, len: usize, page: usize) -> bool {
    let lead = if len >= 3 * page { page } else { 0 };
    let data = base.as_ptr() as usize + lead;
    let mut pool = pool(kind);
    let Some(piece) = pool.pieces.remove(&data) else {
        return false;
    };
    // SAFETY: exactly one of our mappings, which the caller no longer uses.
    let _ = unsafe { mm::munmap(base.as_ptr().cast::<c_void>(), len) };
    if let Some(view) = piece.alias {
        unmap(view as *mut c_void, piece.len);
    }
    pool.give_back(&piece);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An arena for the bookkeeping alone (the descriptor is never used).
    fn arena(size: usize) -> Arena {
        Arena::new(i32::MAX, size, false)
    }

    #[test]
    fn offsets_are_handed_out_once_and_reused_first_fit() {
        let mut a = arena(8);
        assert_eq!(a.take(2), Some((0, false)));
        assert_eq!(a.take(2), Some((2, false)));
        assert_eq!(a.take(2), Some((4, false)));
        a.give_back(2, 2);
        // A freed range is reused (its pages were used), before fresh space.
        assert_eq!(a.take(1), Some((2, true)));
        assert_eq!(a.take(1), Some((3, true)));
        assert_eq!(a.take(2), Some((6, false)));
        assert_eq!(a.take(1), None, "full");
    }

    #[test]
    fn freed_neighbours_merge() {
        let mut a = arena(6);
        for expect in [0, 2, 4] {
            assert_eq!(a.take(2), Some((expect, false)));
        }
        a.give_back(0, 2);
        a.give_back(4, 2);
        a.give_back(2, 2);
        assert_eq!(a.free, vec![(0, 6)]);
        assert_eq!(a.take(6), Some((0, true)));
    }

    #[test]
    fn a_closed_arena_hands_out_nothing() {
        let mut a = Arena::new(-1, 8, false);
        assert_eq!(a.take(1), None);
    }

    #[test]
    fn why_not_names_the_cause_and_the_fix() {
        assert!(why_not(Errno::NOSYS).contains("secretmem.enable=0"));
        assert!(why_not(Errno::PERM).contains("seccomp"));
        assert!(why_not(Errno::NOMEM).contains("resources"));
    }
}
