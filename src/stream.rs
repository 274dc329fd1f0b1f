//! [`Stream`]: an encrypted in-memory queue of sealed chunks.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::buffer::LockedBuffer;
use crate::enclave::Enclave;
use crate::error::{Error, Result};
use crate::mem::wipe_bytes;

/// The default chunk size: 16 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024;

/// An in-memory FIFO of secret bytes, kept sealed in chunks, for data too
/// large to hold in one guarded buffer.
///
/// Writing seals the data as it comes, in chunks of at most
/// [`chunk_size`](Stream::chunk_size) bytes (each `write` call is cut into
/// chunks of its own; nothing is buffered in plaintext).
///
/// Reading takes whole chunks by decrypting them straight into the reader's
/// buffer, with no guarded allocation. A read that wants less than half of
/// what is left of a chunk opens that chunk once into a guarded
/// [`LockedBuffer`] which stays at the front of the queue: this read and the
/// following ones copy from it, until it is used up and dropped (which wipes
/// it). A read that wants half or more of it (but not all) decrypts its part
/// straight into the reader's buffer, authenticating the whole chunk for it:
/// the next read of that size takes the rest. So small reads cost about the
/// same per byte as large ones (a chunk is authenticated once when read in
/// pieces smaller than half of it, at most twice for any fixed read size),
/// and the plaintext is only ever in guarded memory or in the reader's
/// buffer. If no guarded memory can be had (`RLIMIT_MEMLOCK` used up, say),
/// small reads decrypt straight into the reader's buffer too (slower: the
/// whole chunk is authenticated for each one). The opened front chunk counts
/// in [`len`](Stream::len) and [`chunk_count`](Stream::chunk_count) like a
/// sealed one, and holds at most [`chunk_size`](Stream::chunk_size) bytes of
/// locked memory.
///
/// `Stream` is `Send + Sync`, and `Read`/`Write` are implemented for
/// `&Stream` too, so one thread can write while another reads.
///
/// A chunk that fails to authenticate can never be read: after
/// [`purge`](crate::purge) the key it was sealed under is gone (and an
/// opened front chunk is destroyed with every other buffer), or its sealed
/// form was altered. Such chunks do not block the stream: the first
/// [`read`](io::Read::read), [`next_chunk`](Stream::next_chunk) or
/// [`drain`](Stream::drain) that meets them fails once with
/// [`Error::DecryptionFailed`] (for `io::Read`, `ErrorKind::InvalidData`
/// wrapping it) and drops them from the queue; what was written after them
/// is read as usual by the next call. Each method's docs say exactly which
/// chunks it drops.
///
/// ```
/// use std::io::{Read, Write};
///
/// let mut s = memguard::Stream::new();
/// s.write_all(b"a large secret, in pieces")?;
/// let mut first = [0u8; 7];
/// s.read_exact(&mut first)?;
/// assert_eq!(&first, b"a large");
/// let rest = s.drain().map_err(std::io::Error::from)?;
/// assert!(rest.equal_to(b" secret, in pieces"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Stream {
    chunk_size: usize,
    queue: Mutex<Queue>,
}

struct Queue {
    chunks: Chunks,
    /// The guarded buffer of the last opened chunk, wiped, kept for the
    /// next chunk to open into while more chunks are queued: it saves a
    /// mapping's lifecycle (about 20 us of system calls) per chunk read in
    /// small pieces.
    reuse: Option<LockedBuffer>,
}

/// The queued chunks, oldest first: a deque whose first chunk is kept
/// apart, inline in the [`Queue`], so that a small read reaches it and its
/// read position with no index arithmetic and no pointer to follow.
/// The unread bytes are counted as the first chunk's own count plus
/// `after_len`, so that a read from the first chunk updates one number (its
/// read position), not two. Together: 256 KiB read a byte at a time took
/// 0.65 ms instead of 0.81 ms (BENCHMARKS.md, "Session 10").
#[derive(Default)]
struct Chunks {
    first: Option<Chunk>,
    /// The chunks after `first`; empty whenever `first` is `None`. None of
    /// them has been read from (only the first chunk is).
    after: VecDeque<Chunk>,
    /// The bytes of the chunks in `after`.
    after_len: usize,
}

impl Chunks {
    fn front(&self) -> Option<&Chunk> {
        self.first.as_ref()
    }

    #[inline]
    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.first.as_mut()
    }

    fn pop_front(&mut self) -> Option<Chunk> {
        let first = self.first.take();
        self.first = self.after.pop_front();
        if let Some(next) = &self.first {
            self.after_len -= next.remaining();
        }
        first
    }

    /// The unread bytes of all the chunks.
    fn unread(&self) -> usize {
        self.first.as_ref().map_or(0, Chunk::remaining) + self.after_len
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.after.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.first.iter().chain(&self.after)
    }

    fn extend(&mut self, chunks: impl IntoIterator<Item = Chunk>) {
        for chunk in chunks {
            match self.first {
                None => self.first = Some(chunk),
                Some(_) => {
                    self.after_len += chunk.remaining();
                    self.after.push_back(chunk);
                }
            }
        }
    }

    /// Keeps the chunks for which `keep` says true, in order.
    fn retain(&mut self, keep: impl FnMut(&Chunk) -> bool) {
        let mut all: VecDeque<Chunk> = self.first.take().into_iter().collect();
        all.append(&mut self.after);
        all.retain(keep);
        self.first = all.pop_front();
        self.after_len = all.iter().map(Chunk::remaining).sum();
        self.after = all;
    }

    fn clear(&mut self) {
        self.first = None;
        self.after.clear();
        self.after_len = 0;
    }
}

/// The chunk at an index (0 is the front), for the tests.
#[cfg(test)]
impl std::ops::Index<usize> for Chunks {
    type Output = Chunk;
    fn index(&self, index: usize) -> &Chunk {
        self.iter().nth(index).expect("a chunk at that index")
    }
}

#[cfg(test)]
impl std::ops::IndexMut<usize> for Chunks {
    fn index_mut(&mut self, index: usize) -> &mut Chunk {
        match index {
            0 => self.first.as_mut(),
            _ => self.after.get_mut(index - 1),
        }
        .expect("a chunk at that index")
    }
}

/// One chunk, of which the first `consumed` of `len` bytes were read.
struct Chunk {
    body: Body,
    /// Kept here: an opened buffer's own length reads 0 once it is destroyed.
    len: usize,
    consumed: usize,
}

/// `repr(u8)`: an explicit tag byte, whose spare values give
/// `Option<Chunk>` its `None`, so that "a front chunk, opened" is one
/// comparison on the small-read path (without it, two: `Option`'s tag and
/// the niche in the sealed form's pointer).
#[repr(u8)]
enum Body {
    /// As written. `consumed` is not 0 when a read took half or more of it,
    /// or could not get guarded memory, and decrypted its part directly.
    Sealed(Enclave),
    /// Opened by a read that wanted less than half of what was left of it;
    /// only ever the front chunk. Mutable (never frozen): freezing would cost two
    /// `mprotect` calls per chunk, and nothing else can reach it.
    Opened(LockedBuffer),
}

/// Authenticates `sealed` whole, then decrypts `dst.len()` bytes from
/// `offset` into `dst`; every chunk authentication of a stream goes through
/// here (tests count them).
fn open_range(sealed: &Enclave, offset: usize, dst: &mut [u8]) -> Result<()> {
    #[cfg(test)]
    tests::OPENS.with(|n| n.set(n.get() + 1));
    sealed.open_range_to_slice(offset, dst)
}

impl Chunk {
    fn sealed(sealed: Enclave) -> Chunk {
        Chunk {
            len: sealed.len(),
            body: Body::Sealed(sealed),
            consumed: 0,
        }
    }

    /// Bytes not read yet.
    fn remaining(&self) -> usize {
        self.len - self.consumed
    }

    /// Puts the next `dst.len()` unread bytes into `dst`, without taking
    /// them. Fails with [`Error::DecryptionFailed`] when they can never be
    /// read; `dst` is untouched on failure.
    fn copy_to(&self, dst: &mut [u8]) -> Result<()> {
        match &self.body {
            Body::Sealed(sealed) => open_range(sealed, self.consumed, dst),
            Body::Opened(buf) => {
                // Empty once a purge destroyed the buffer: its bytes are gone.
                let bytes = buf.bytes();
                let src = self
                    .consumed
                    .checked_add(dst.len())
                    .and_then(|end| bytes.get(self.consumed..end))
                    .ok_or(Error::DecryptionFailed)?;
                dst.copy_from_slice(src);
                Ok(())
            }
        }
    }

    /// Takes the next bytes into `dst`, as many as fit. When they are less
    /// than half of what is left, more reads will follow: the chunk is
    /// opened into guarded memory first, once. Half or more is decrypted
    /// directly: the next read of that size takes the rest, and one more
    /// authentication costs less than a guarded buffer's lifecycle (about
    /// 20 us with its system calls, against 6 to 14 us to authenticate 16 KiB).
    fn read(&mut self, dst: &mut [u8], reuse: &mut Option<LockedBuffer>) -> Result<usize> {
        let rest = self.remaining();
        let n = rest.min(dst.len());
        if n < rest - n {
            self.open(reuse)?;
        }
        self.copy_to(&mut dst[..n])?;
        self.consumed += n;
        Ok(n)
    }

    /// Opens the unread part of a sealed chunk into a guarded buffer (the
    /// one in `reuse` when it is large enough, else a new one the size of
    /// the whole chunk), which replaces the sealed form. Without guarded
    /// memory the chunk stays sealed, and `Ok` is returned all the same.
    fn open(&mut self, reuse: &mut Option<LockedBuffer>) -> Result<()> {
        let Body::Sealed(sealed) = &self.body else {
            return Ok(());
        };
        let rest = self.remaining();
        let reused = reuse.take().filter(|b| b.len() >= rest && b.is_mutable());
        let mut buf = match reused {
            Some(buf) => buf,
            None => match LockedBuffer::new(self.len) {
                Ok(buf) => buf,
                Err(_) => return Ok(()),
            },
        };
        {
            // Only a purge that ran since `new` (or since the buffer was
            // kept) can refuse this, and then the key is gone too: the
            // chunk fails as it stays sealed.
            let Ok(mut dst) = buf.bytes_mut() else {
                return Ok(());
            };
            open_range(sealed, self.consumed, &mut dst[..rest])?;
        }
        *self = Chunk {
            body: Body::Opened(buf),
            len: rest,
            consumed: 0,
        };
        Ok(())
    }

    /// Whether the chunk can still be read. Authenticates a sealed chunk
    /// (decrypting nothing).
    fn authenticates(&self) -> bool {
        match &self.body {
            Body::Sealed(sealed) => {
                !matches!(open_range(sealed, 0, &mut []), Err(Error::DecryptionFailed))
            }
            Body::Opened(buf) => buf.is_alive(),
        }
    }
}

impl Queue {
    /// Drops the front chunk, read to its end. Its opened buffer, if any,
    /// is wiped at once and kept for the next chunk while there is one.
    fn retire_front(&mut self) {
        if let Some(Chunk {
            body: Body::Opened(mut opened),
            ..
        }) = self.chunks.pop_front()
        {
            opened.end_lease();
            if opened.wipe().is_ok() {
                self.reuse = Some(opened);
            }
        }
        self.drop_reuse_if_empty();
    }

    /// Drops the front chunk, which failed with [`Error::DecryptionFailed`],
    /// and the chunks after it up to the first one that authenticates.
    fn drop_failed_front(&mut self) {
        self.chunks.pop_front();
        while let Some(front) = self.chunks.front() {
            if front.authenticates() {
                break;
            }
            self.chunks.pop_front();
        }
        self.drop_reuse_if_empty();
    }

    /// Lets the kept buffer go once no chunk is queued: it is kept only
    /// for a next chunk, never for an empty stream.
    fn drop_reuse_if_empty(&mut self) {
        if self.chunks.is_empty() {
            self.reuse = None;
        }
    }

    /// The common case of small reads, kept short: the front chunk is
    /// opened and holds more than `buf` wants. One copy under the opened
    /// buffer's lease, the bookkeeping; `None` (nothing taken) in every
    /// other case, including a purge that destroyed the opened buffer.
    #[inline]
    fn pull_from_opened_front(&mut self, buf: &mut [u8]) -> Option<usize> {
        let front = self.chunks.front_mut()?;
        let Body::Opened(opened) = &mut front.body else {
            return None;
        };
        let n = buf.len();
        // No overflow: both are at most isize::MAX.
        let end = front.consumed + n;
        if end >= front.len {
            return None;
        }
        // Under the buffer's lease: no guard borrowed per read (a purge
        // takes the lease back; see mem::lease).
        if !opened.read_leased(front.consumed, buf) {
            return None;
        }
        front.consumed = end;
        Some(n)
    }

    /// Reads into `buf`: whole chunks while they fit, then part of the next.
    ///
    /// When a chunk fails, the bytes read before it are returned and the
    /// chunk stays queued, so the next call reports it; with nothing read,
    /// it and the failing chunks after it are dropped and the error returned.
    #[inline]
    fn pull(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.pull_from_opened_front(buf) {
            Some(n) => Ok(n),
            None => self.pull_chunks(buf),
        }
    }

    /// [`Queue::pull`] beyond the short path: out of line, so that the
    /// short path is not paying for this one's stack frame.
    #[inline(never)]
    fn pull_chunks(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            match front.read(&mut buf[done..], &mut self.reuse) {
                Ok(n) => {
                    done += n;
                    if front.remaining() == 0 {
                        self.retire_front();
                    }
                }
                Err(_) if done > 0 => break,
                Err(e) => {
                    if matches!(e, Error::DecryptionFailed) {
                        self.drop_failed_front();
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }
}

impl Stream {
    /// An empty stream with chunks of [`DEFAULT_CHUNK_SIZE`] (16 KiB).
    pub fn new() -> Stream {
        Stream::with_chunk_size(DEFAULT_CHUNK_SIZE)
    }

    /// An empty stream whose chunks hold at most `bytes` bytes (at least 1:
    /// 0 is taken as 1).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let mut s = memguard::Stream::with_chunk_size(4);
    /// s.write_all(b"0123456789")?;
    /// assert_eq!(s.chunk_count(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_chunk_size(bytes: usize) -> Stream {
        Stream {
            chunk_size: bytes.max(1),
            queue: Mutex::new(Queue {
                chunks: Chunks::default(),
                reuse: None,
            }),
        }
    }

    /// The largest number of bytes in one chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The number of bytes queued and not read yet (those of chunks that
    /// will fail included, until a read drops them).
    pub fn len(&self) -> usize {
        self.queue().chunks.unread()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of chunks queued, the partly read one at the front
    /// included.
    pub fn chunk_count(&self) -> usize {
        self.queue().chunks.len()
    }

    /// Takes the oldest chunk out (its unread part, if a read took some of
    /// it), opened into a frozen [`LockedBuffer`]; `None` when the stream is
    /// empty.
    ///
    /// When that chunk fails to authenticate (its key was purged, or it was
    /// altered), it is dropped, and so are the chunks right after it that
    /// fail too, up to the first one that authenticates; the call returns
    /// [`Error::DecryptionFailed`], and the next one returns that chunk. On
    /// any other failure (no guarded memory, say) nothing is taken out.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let mut s = memguard::Stream::with_chunk_size(4);
    /// s.write_all(b"abcdef")?;
    /// let first = s.next_chunk()?.expect("a chunk");
    /// assert!(first.equal_to(b"abcd"));
    /// assert_eq!(s.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_chunk(&mut self) -> Result<Option<LockedBuffer>> {
        let mut q = self.queue();
        let Some(front) = q.chunks.front() else {
            return Ok(None);
        };
        let n = front.remaining();
        let mut opened = LockedBuffer::new(n)?;
        let copied = front.copy_to(&mut opened.bytes_mut()?);
        if let Err(e) = copied {
            if matches!(e, Error::DecryptionFailed) {
                q.drop_failed_front();
            }
            return Err(e);
        }
        opened.freeze()?;
        q.chunks.pop_front();
        q.drop_reuse_if_empty();
        Ok(Some(opened))
    }

    /// Takes everything queued out, opened into one frozen [`LockedBuffer`].
    ///
    /// An empty stream gives [`Error::NullBuffer`](crate::Error::NullBuffer).
    ///
    /// Every chunk is opened. If some fail to authenticate (their key was
    /// purged, or they were altered), all of those are dropped, wherever they
    /// are in the queue, the chunks that opened stay queued, and the call
    /// returns [`Error::DecryptionFailed`]; the next `drain` returns the
    /// rest. On any other failure (no guarded memory, say) nothing is taken
    /// out.
    pub fn drain(&mut self) -> Result<LockedBuffer> {
        let mut q = self.queue();
        let mut all = LockedBuffer::new(q.chunks.unread())?;
        let mut failed = Vec::new();
        {
            let mut out = all.bytes_mut()?;
            let mut at = 0;
            for (index, chunk) in q.chunks.iter().enumerate() {
                let n = chunk.remaining();
                match chunk.copy_to(&mut out[at..at + n]) {
                    Ok(()) => {}
                    Err(Error::DecryptionFailed) => failed.push(index),
                    Err(e) => return Err(e),
                }
                at += n;
            }
        }
        if !failed.is_empty() {
            // `all` is wiped as it is dropped.
            let mut index = 0;
            let mut failed = failed.into_iter().peekable();
            q.chunks.retain(|_| {
                let keep = failed.next_if_eq(&index).is_none();
                index += 1;
                keep
            });
            q.drop_reuse_if_empty();
            return Err(Error::DecryptionFailed);
        }
        all.freeze()?;
        q.chunks.clear();
        q.reuse = None;
        Ok(all)
    }

    /// Seals `src` into the stream, then wipes `src`. On failure nothing is
    /// queued and `src` is left as it was.
    ///
    /// ```
    /// let mut s = memguard::Stream::new();
    /// let mut secret = *b"pin 0000";
    /// s.move_from(&mut secret)?;
    /// assert_eq!(secret, [0u8; 8]);
    /// assert_eq!(s.len(), 8);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn move_from(&mut self, src: &mut [u8]) -> Result<()> {
        self.push(src)?;
        wipe_bytes(src);
        Ok(())
    }

    /// Seals `data` in chunks and queues them, all or nothing. The sealing
    /// happens outside the lock, so a reader is not held up.
    fn push(&self, data: &[u8]) -> Result<()> {
        let sealed = data
            .chunks(self.chunk_size)
            .map(|part| Enclave::seal_bytes(part).map(Chunk::sealed))
            .collect::<Result<Vec<_>>>()?;
        let mut q = self.queue();
        q.chunks.extend(sealed);
        Ok(())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue without the lock: `&mut self` proves that no other thread
    /// holds it (what [`io::Read`] for an owned `Stream` uses, so that a
    /// 1-byte read does not pay for locking and unlocking a mutex).
    #[inline]
    fn queue_mut(&mut self) -> &mut Queue {
        self.queue.get_mut().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Stream {
    fn default() -> Stream {
        Stream::new()
    }
}

/// Shows the lengths, never the contents (nor whether a chunk is opened).
impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.queue();
        f.debug_struct("Stream")
            .field("len", &q.chunks.unread())
            .field("chunks", &q.chunks.len())
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// Seals the caller's bytes as they come. The caller's slice cannot be
/// wiped through `Write` (it is borrowed immutably): use
/// [`Stream::move_from`] for that.
impl io::Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Seals the caller's bytes as they come; see the impl for `&Stream`.
impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Takes the oldest bytes into the caller's buffer; `Ok(0)` at the end.
///
/// `read` fills the buffer from as many chunks as it needs, under one lock.
/// When a chunk fails to authenticate (see [`Stream`]), a read that already
/// copied bytes returns them and leaves that chunk queued; a read that copied
/// nothing drops it, and the failing chunks right after it, up to the first
/// one that authenticates, and returns `ErrorKind::InvalidData` wrapping
/// [`Error::DecryptionFailed`], with nothing written into the buffer. The
/// next read goes on with the data written after them.
///
/// `read_to_end` reserves room for everything queued at once (so that the
/// `Vec` is not grown, leaving copies of the plaintext behind, while it
/// reads) and decrypts whole chunks straight into it; on a failing chunk it
/// returns the error as above, with the bytes before that chunk appended.
impl io::Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.queue().pull(buf)?)
    }

    fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        loop {
            let mut q = self.queue();
            let at = out.len();
            let unread = q.chunks.unread();
            if unread == 0 {
                return Ok(at - start);
            }
            out.try_reserve_exact(unread)
                .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
            out.resize(at + unread, 0);
            let pulled = q.pull(&mut out[at..]);
            drop(q);
            match pulled {
                Ok(n) => {
                    out.truncate(at + n);
                    if n == 0 {
                        return Ok(at - start);
                    }
                }
                Err(e) => {
                    out.truncate(at);
                    return Err(e.into());
                }
            }
        }
    }
}

/// Takes the oldest bytes into the caller's buffer; see the impl for
/// `&Stream`. Through `&mut Stream` no other thread can hold the stream, so
/// `read` takes no lock: small reads cost less than through `&Stream` (a
/// 1-byte read, about an eighth; see BENCHMARKS.md).
impl io::Read for Stream {
    /// Inlined into the caller, so that a small read the opened chunk
    /// serves is a short run of loads and stores (see `Queue::pull`).
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.queue_mut().pull(buf)?)
    }

    fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::{Read, Write};

    thread_local! {
        /// Chunk authentications made on this thread (see `open_range`).
        pub(super) static OPENS: Cell<usize> = const { Cell::new(0) };
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn the_buffer_kept_for_the_next_chunk_is_wiped_and_reused() {
        let mut s = Stream::with_chunk_size(1000);
        s.write_all(&pattern(3000)).unwrap();
        let mut small = [0u8; 10];
        for _ in 0..100 {
            s.read_exact(&mut small).unwrap();
        }
        let kept = {
            let q = s.queue_mut();
            let kept = q.reuse.as_ref().expect("kept for the next chunk");
            assert!(kept.bytes().iter().all(|&b| b == 0), "wiped at once");
            kept.region_for_tests()
        };
        s.read_exact(&mut small).unwrap();
        assert_eq!(&small[..], &pattern(3000)[1000..1010]);
        let q = s.queue_mut();
        assert!(q.reuse.is_none());
        let Body::Opened(opened) = &q.chunks[0].body else {
            panic!("the second chunk is opened");
        };
        assert!(
            std::sync::Arc::ptr_eq(&opened.region_for_tests(), &kept),
            "into the same buffer"
        );
    }

    #[test]
    fn an_emptied_stream_keeps_no_buffer() {
        let mut small = [0u8; 10];
        for empty_it in 0..3 {
            let mut s = Stream::with_chunk_size(1000);
            s.write_all(&pattern(3000)).unwrap();
            for _ in 0..100 {
                s.read_exact(&mut small).unwrap();
            }
            assert!(s.queue_mut().reuse.is_some());
            match empty_it {
                0 => drop(s.drain().unwrap()),
                1 => while s.next_chunk().unwrap().is_some() {},
                _ => {
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                }
            }
            assert!(s.is_empty());
            assert!(s.queue_mut().reuse.is_none(), "way {empty_it}");
        }
    }

    #[test]
    fn chunk_size_really_applies() {
        let mut s = Stream::with_chunk_size(1000);
        s.write_all(&pattern(2500)).unwrap();
        assert_eq!(s.chunk_count(), 3);
        assert_eq!(s.len(), 2500);
        let sizes: Vec<usize> = std::iter::from_fn(|| s.next_chunk().unwrap())
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert!(s.is_empty());
    }

    /// Reads `s` to the end with a buffer of `read_size` bytes, checking
    /// `len` after each read; every `write_every` reads, `more` is written
    /// (and appended to `expected`).
    fn read_all_in(
        s: &mut Stream,
        read_size: usize,
        expected: &mut Vec<u8>,
        more: &[u8],
        write_every: usize,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        let mut reads = 0;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= read_size);
            out.extend_from_slice(&buf[..n]);
            assert_eq!(s.len(), expected.len() - out.len(), "read size {read_size}");
            reads += 1;
            if reads % write_every == 0 && expected.len() < 3 * more.len() {
                s.write_all(more).unwrap();
                expected.extend_from_slice(more);
            }
        }
        out
    }

    #[test]
    fn without_a_lease_small_reads_give_back_the_same_bytes() {
        // Every lease slot taken (see mem::lease_roster): each read of the
        // opened chunk goes through a guard instead.
        let data = pattern(3_000);
        for read_size in [1, 7] {
            let mut s = Stream::with_chunk_size(1_000);
            s.write_all(&data).unwrap();
            let mut expected = data.clone();
            crate::mem::LEASE_ROSTER_FULL.with(|f| f.set(true));
            let out = read_all_in(&mut s, read_size, &mut expected, b"more", 100);
            crate::mem::LEASE_ROSTER_FULL.with(|f| f.set(false));
            assert_eq!(out, expected, "read size {read_size}");
        }
    }

    #[test]
    fn reads_in_any_buffer_size_give_back_the_bytes_in_order() {
        let c = DEFAULT_CHUNK_SIZE;
        let cases = [
            (3_000, 1_000, 1),
            (3_000, 1_000, 3),
            (3_000, 1_000, 7),
            (3_000, 1_000, 999),
            (3_000, 1_000, 1_001),
            (50_000, c, 1),
            (50_000, c, 3),
            (50_000, c, 7),
            (50_000, c, 64),
            (50_000, c, 4096),
            (50_000, c, c - 1),
            (50_000, c, c),
            (50_000, c, c + 1),
            (50_000, c, 60_000),
        ];
        for (total, chunk, read_size) in cases {
            let data = pattern(total);
            let fill = || {
                let mut s = Stream::with_chunk_size(chunk);
                s.write_all(&data[..total / 3]).unwrap();
                s.write_all(&data[total / 3..]).unwrap();
                s
            };
            let mut whole = Vec::new();
            fill().read_to_end(&mut whole).unwrap();
            assert_eq!(whole, data);

            // Writes in between the reads land behind what is queued.
            let more = pattern(total / 2 + 5);
            let mut expected = data.clone();
            let every = (total / read_size / 5).max(1);
            let out = read_all_in(&mut fill(), read_size, &mut expected, &more, every);
            assert!(expected.len() > data.len(), "read size {read_size}");
            assert_eq!(out, expected, "read size {read_size}, chunks of {chunk}");
        }
    }

    #[test]
    fn a_chunk_is_authenticated_once_or_twice_whatever_the_read_size() {
        let c = DEFAULT_CHUNK_SIZE;
        let data = pattern(4 * c);
        // Less than half a chunk: each chunk is opened once into guarded
        // memory. Half a chunk or more: a chunk is authenticated for each
        // read that takes part of it, at most twice.
        for read_size in [
            1,
            3,
            7,
            64,
            1000,
            4096,
            c / 2 - 1,
            c / 2,
            c - 1,
            c,
            c + 1,
            4 * c,
        ] {
            let mut s = Stream::new();
            s.write_all(&data).unwrap();
            OPENS.with(|n| n.set(0));
            let out = read_all_in(&mut s, read_size, &mut data.clone(), &[], usize::MAX);
            assert_eq!(out, data);
            let opens = OPENS.with(Cell::get);
            if read_size < c / 2 || read_size % c == 0 {
                assert_eq!(opens, 4, "read size {read_size}");
            } else {
                assert!((4..=8).contains(&opens), "read size {read_size}: {opens}");
            }
        }
        // The same through read_to_end, next_chunk after a partial read, and
        // drain after a partial read.
        let mut s = Stream::new();
        s.write_all(&data).unwrap();
        OPENS.with(|n| n.set(0));
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        assert_eq!(OPENS.with(Cell::get), 4);

        s.write_all(&data).unwrap();
        OPENS.with(|n| n.set(0));
        let mut one = [0u8; 1];
        for _ in 0..100 {
            s.read_exact(&mut one).unwrap();
        }
        assert!(s.next_chunk().unwrap().unwrap().equal_to(&data[100..c]));
        s.read_exact(&mut one).unwrap();
        assert!(s.drain().unwrap().equal_to(&data[c + 1..]));
        assert_eq!(OPENS.with(Cell::get), 4);
    }

    #[test]
    fn partial_read_keeps_the_rest_at_the_front() {
        let mut s = Stream::with_chunk_size(10);
        s.write_all(b"0123456789abcdefghij").unwrap();
        let mut three = [0u8; 3];
        s.read_exact(&mut three).unwrap();
        assert_eq!(&three, b"012");
        assert_eq!(s.chunk_count(), 2);
        assert_eq!(s.len(), 17);
        let front = s.next_chunk().unwrap().unwrap();
        assert!(front.equal_to(b"3456789"));
        assert!(!front.is_mutable());

        // Half a chunk or more is decrypted directly, the chunk stays sealed;
        // a smaller read then opens what is left of it.
        let mut six = [0u8; 6];
        s.read_exact(&mut six).unwrap();
        assert_eq!(&six, b"abcdef");
        assert!(matches!(s.queue().chunks[0].body, Body::Sealed(_)));
        assert_eq!((s.len(), s.chunk_count()), (4, 1));
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"g");
        assert!(matches!(s.queue().chunks[0].body, Body::Opened(_)));
        assert!(s.drain().unwrap().equal_to(b"hij"));

        // A direct part of a tampered chunk fails as a whole one does.
        s.write_all(b"0123456789").unwrap();
        tamper(&s, 0);
        assert!(is_decryption_failed(&s.read(&mut six).unwrap_err()));
        assert!(s.is_empty());
    }

    #[test]
    fn the_opened_front_chunk_is_dropped_when_used_up_and_never_shown() {
        let mut s = Stream::with_chunk_size(10);
        s.write_all(b"0123456789abcdefghij").unwrap();
        let mut three = [0u8; 3];
        s.read_exact(&mut three).unwrap();
        assert!(matches!(s.queue().chunks[0].body, Body::Opened(_)));
        assert!(matches!(s.queue().chunks[1].body, Body::Sealed(_)));
        let debug = format!("{s:?} {s:#?}");
        assert!(debug.starts_with("Stream { len: 17, chunks: 2, chunk_size: 10 }"));
        assert!(
            !debug.contains("345") && !debug.contains("Opened"),
            "{debug}"
        );
        let mut seven = [0u8; 7];
        s.read_exact(&mut seven).unwrap();
        assert_eq!(&seven, b"3456789");
        assert_eq!((s.len(), s.chunk_count()), (10, 1));
        assert!(matches!(s.queue().chunks[0].body, Body::Sealed(_)));
        // A read that takes a whole chunk decrypts it straight into the
        // caller's buffer and opens nothing.
        let mut ten = [0u8; 10];
        s.read_exact(&mut ten).unwrap();
        assert_eq!(&ten, b"abcdefghij");
        assert!(s.is_empty());
    }

    /// Alters the sealed form of the chunk at `index`, which must be sealed.
    fn tamper(s: &Stream, index: usize) {
        let mut q = s.queue();
        let Body::Sealed(sealed) = &mut q.chunks[index].body else {
            panic!("chunk {index} is opened");
        };
        let bytes = sealed.sealed_bytes_mut();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    }

    /// Four 10-byte chunks.
    const FORTY: &[u8; 40] = b"0123456789abcdefghijKLMNOPQRSTklmnopqrst";

    fn forty() -> Stream {
        let mut s = Stream::with_chunk_size(10);
        s.write_all(FORTY).unwrap();
        s
    }

    fn is_decryption_failed(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::InvalidData
            && e.get_ref()
                .and_then(|i| i.downcast_ref::<Error>())
                .is_some_and(|i| matches!(i, Error::DecryptionFailed))
    }

    #[test]
    fn a_read_returns_what_it_copied_then_reports_a_tampered_chunk_once() {
        let mut s = forty();
        tamper(&s, 1);
        let mut buf = [0u8; 15];
        assert_eq!(s.read(&mut buf).unwrap(), 10, "the chunk before it");
        assert_eq!(&buf[..10], &FORTY[..10]);
        assert_eq!((s.len(), s.chunk_count()), (30, 3), "still queued");
        let mut untouched = [0xEEu8; 15];
        let e = s.read(&mut untouched).unwrap_err();
        assert!(is_decryption_failed(&e), "{e:?}");
        assert_eq!(untouched, [0xEE; 15]);
        assert_eq!((s.len(), s.chunk_count()), (20, 2), "dropped");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &FORTY[20..]);

        // The same after a partial read opened the front chunk.
        let mut s = forty();
        tamper(&s, 1);
        let mut three = [0u8; 3];
        s.read_exact(&mut three).unwrap();
        assert_eq!(s.read(&mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], &FORTY[3..10]);
        assert!(is_decryption_failed(&s.read(&mut buf).unwrap_err()));
        assert_eq!(s.read(&mut buf).unwrap(), 15);
        assert_eq!(&buf, &FORTY[20..35]);

        // A read of part of a tampered chunk fails the same way.
        let s = forty();
        tamper(&s, 0);
        assert!(is_decryption_failed(&(&s).read(&mut three).unwrap_err()));
        assert_eq!((s.len(), s.chunk_count()), (30, 3));
        (&s).read_exact(&mut three).unwrap();
        assert_eq!(&three, b"abc");
    }

    #[test]
    fn consecutive_failing_chunks_are_dropped_by_one_failing_call() {
        // read
        let mut s = forty();
        tamper(&s, 0);
        tamper(&s, 1);
        assert!(is_decryption_failed(&s.read(&mut [0u8; 5]).unwrap_err()));
        assert_eq!((s.len(), s.chunk_count()), (20, 2));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &FORTY[20..]);

        // next_chunk: once, then the next good chunk.
        let mut s = forty();
        tamper(&s, 0);
        tamper(&s, 1);
        tamper(&s, 3);
        assert!(matches!(s.next_chunk(), Err(Error::DecryptionFailed)));
        assert_eq!((s.len(), s.chunk_count()), (20, 2));
        assert!(s.next_chunk().unwrap().unwrap().equal_to(&FORTY[20..30]));
        assert!(matches!(s.next_chunk(), Err(Error::DecryptionFailed)));
        assert!(s.is_empty());
        assert!(s.next_chunk().unwrap().is_none());

        // read_to_end: the bytes before the failing chunk, then the error;
        // the next call reads the rest.
        let mut s = forty();
        tamper(&s, 2);
        let mut all = b">".to_vec();
        let e = s.read_to_end(&mut all).unwrap_err();
        assert!(is_decryption_failed(&e));
        assert_eq!(&all[1..], &FORTY[..20]);
        assert_eq!((s.len(), s.chunk_count()), (10, 1));
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).unwrap(), 10);
        assert_eq!(rest, &FORTY[30..]);
    }

    #[test]
    fn drain_drops_every_failing_chunk_and_the_next_drain_returns_the_rest() {
        let mut s = forty();
        let mut three = [0u8; 3];
        s.read_exact(&mut three).unwrap();
        tamper(&s, 1);
        tamper(&s, 3);
        assert!(matches!(s.drain(), Err(Error::DecryptionFailed)));
        assert_eq!((s.len(), s.chunk_count()), (17, 2));
        let rest = s.drain().unwrap();
        assert!(rest.equal_to(b"3456789KLMNOPQRST"));
        assert!(s.is_empty());
        assert!(matches!(s.drain(), Err(Error::NullBuffer)));

        // Nothing left once every chunk failed.
        let mut s = forty();
        for i in 0..4 {
            tamper(&s, i);
        }
        assert!(matches!(s.drain(), Err(Error::DecryptionFailed)));
        assert_eq!((s.len(), s.chunk_count()), (0, 0));
        assert!(matches!(s.drain(), Err(Error::NullBuffer)));
    }

    #[test]
    fn next_chunk_and_drain_after_partial_reads() {
        for read_size in [1, 3, 7] {
            let mut s = forty();
            let mut buf = vec![0u8; read_size];
            s.read_exact(&mut buf).unwrap();
            assert_eq!((s.len(), s.chunk_count()), (40 - read_size, 4));
            let front = s.next_chunk().unwrap().unwrap();
            assert!(front.equal_to(&FORTY[read_size..10]));
            assert!(!front.is_mutable());
            s.read_exact(&mut buf).unwrap();
            s.read_exact(&mut buf).unwrap();
            assert_eq!(s.len(), 30 - 2 * read_size);
            let all = s.drain().unwrap();
            assert!(all.equal_to(&FORTY[10 + 2 * read_size..]));
            assert!(!all.is_mutable());
            assert!((s.is_empty(), s.chunk_count()) == (true, 0));
        }
    }

    #[test]
    fn drain_and_empty() {
        let mut s = Stream::with_chunk_size(3);
        assert!(matches!(s.drain(), Err(Error::NullBuffer)));
        let mut empty = [0u8; 4];
        assert_eq!(s.read(&mut empty).unwrap(), 0);
        assert!(s.next_chunk().unwrap().is_none());
        s.write_all(b"abcdefg").unwrap();
        let all = s.drain().unwrap();
        assert!(all.equal_to(b"abcdefg"));
        assert!(s.is_empty());
        assert_eq!(
            format!("{s:?}"),
            "Stream { len: 0, chunks: 0, chunk_size: 3 }"
        );
    }

    #[test]
    fn move_from_wipes_and_write_does_not() {
        let mut s = Stream::new();
        let mut a = *b"secret";
        s.move_from(&mut a).unwrap();
        assert_eq!(a, [0u8; 6]);
        let b = *b"public";
        s.write_all(&b).unwrap();
        assert_eq!(&b, b"public");
        assert!(s.drain().unwrap().equal_to(b"secretpublic"));
    }

    #[test]
    fn zero_chunk_size_means_one() {
        let mut s = Stream::with_chunk_size(0);
        assert_eq!(s.chunk_size(), 1);
        s.write_all(b"ab").unwrap();
        assert_eq!(s.chunk_count(), 2);
    }
}
