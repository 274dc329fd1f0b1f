//! [`Stream`]: an encrypted in-memory queue of sealed chunks.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::buffer::LockedBuffer;
use crate::enclave::Enclave;
use crate::error::Result;
use crate::mem::wipe_bytes;

/// The default chunk size: 16 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 16 * 1024;

/// An in-memory FIFO of secret bytes, kept sealed in chunks, for data too
/// large to hold in one guarded buffer.
///
/// Writing seals the data as it comes, in chunks of at most
/// [`chunk_size`](Stream::chunk_size) bytes (each `write` call is cut into
/// chunks of its own; nothing is buffered in plaintext). Reading opens the
/// oldest chunks straight into the reader's buffer, with no guarded
/// allocation. If the buffer is smaller than a chunk, only the part that fits
/// is decrypted (after the whole chunk is authenticated) and the remainder
/// stays sealed at the front.
///
/// `Stream` is `Send + Sync`, and `Read`/`Write` are implemented for
/// `&Stream` too, so one thread can write while another reads.
///
/// After [`purge`](crate::purge) the queued chunks cannot be opened: reads
/// fail with `ErrorKind::InvalidData` wrapping [`Error::DecryptionFailed`](crate::Error::DecryptionFailed),
/// and the chunks stay queued.
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
    chunks: VecDeque<Chunk>,
    len: usize,
}

/// One sealed chunk, of which the first `consumed` bytes were read already.
struct Chunk {
    sealed: Enclave,
    consumed: usize,
}

impl Chunk {
    /// Bytes not read yet.
    fn remaining(&self) -> usize {
        self.sealed.len() - self.consumed
    }

    /// Decrypts the next `dst.len()` unread bytes into `dst`.
    fn open_next(&self, dst: &mut [u8]) -> Result<()> {
        self.sealed.open_range_to_slice(self.consumed, dst)
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
                chunks: VecDeque::new(),
                len: 0,
            }),
        }
    }

    /// The largest number of bytes in one chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The number of bytes queued.
    pub fn len(&self) -> usize {
        self.queue().len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of sealed chunks queued.
    pub fn chunk_count(&self) -> usize {
        self.queue().chunks.len()
    }

    /// Takes the oldest chunk out, opened into a frozen [`LockedBuffer`];
    /// `None` when the stream is empty.
    ///
    /// On failure (the key was purged: [`Error::DecryptionFailed`](crate::Error::DecryptionFailed)) the
    /// chunk stays queued.
    pub fn next_chunk(&mut self) -> Result<Option<LockedBuffer>> {
        let mut q = self.queue();
        let Some(front) = q.chunks.front() else {
            return Ok(None);
        };
        let mut opened = LockedBuffer::new(front.remaining())?;
        front.open_next(&mut opened.bytes_mut()?)?;
        opened.freeze()?;
        q.len -= opened.len();
        q.chunks.pop_front();
        Ok(Some(opened))
    }

    /// Takes everything queued out, opened into one frozen [`LockedBuffer`].
    ///
    /// An empty stream gives [`Error::NullBuffer`](crate::Error::NullBuffer). On failure nothing is
    /// taken out.
    pub fn drain(&mut self) -> Result<LockedBuffer> {
        let mut q = self.queue();
        let mut all = LockedBuffer::new(q.len)?;
        {
            let mut out = all.bytes_mut()?;
            let mut at = 0;
            for chunk in &q.chunks {
                let n = chunk.remaining();
                chunk.open_next(&mut out[at..at + n])?;
                at += n;
            }
        }
        all.freeze()?;
        q.chunks.clear();
        q.len = 0;
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
            .map(|part| {
                Enclave::seal_bytes(part).map(|sealed| Chunk {
                    sealed,
                    consumed: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut q = self.queue();
        q.len += data.len();
        q.chunks.extend(sealed);
        Ok(())
    }

    /// Reads into `buf`: whole chunks while they fit, then part of the next.
    fn pull(&self, buf: &mut [u8]) -> Result<usize> {
        let mut q = self.queue();
        let mut done = 0;
        while done < buf.len() {
            let Some(front) = q.chunks.front_mut() else {
                break;
            };
            let n = front.remaining().min(buf.len() - done);
            if let Err(e) = front.open_next(&mut buf[done..done + n]) {
                // What was already read is returned; the error comes back on
                // the next read, with the failing chunk still queued.
                if done > 0 {
                    break;
                }
                return Err(e);
            }
            done += n;
            front.consumed += n;
            if front.remaining() == 0 {
                q.chunks.pop_front();
            }
            q.len -= n;
        }
        Ok(done)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Stream {
    fn default() -> Stream {
        Stream::new()
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = self.queue();
        f.debug_struct("Stream")
            .field("len", &q.len)
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

/// Opens the oldest chunks into the caller's buffer; `Ok(0)` at the end.
/// After a purge, `ErrorKind::InvalidData` wrapping
/// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed), with nothing taken out.
impl io::Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.pull(buf)?)
    }
}

/// Opens the oldest chunks into the caller's buffer; see the impl for
/// `&Stream`.
impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::io::{Read, Write};

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
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

    #[test]
    fn reads_in_any_buffer_size_give_back_the_bytes_in_order() {
        let cases = [
            (3_000, 1_000, 1),
            (3_000, 1_000, 7),
            (50_000, DEFAULT_CHUNK_SIZE, 4096),
            (50_000, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE),
            (50_000, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1),
            (50_000, DEFAULT_CHUNK_SIZE, 60_000),
        ];
        for (total, chunk, read_size) in cases {
            let data = pattern(total);
            let mut s = Stream::with_chunk_size(chunk);
            s.write_all(&data[..total / 3]).unwrap();
            s.write_all(&data[total / 3..]).unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; read_size];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                assert_eq!(s.len(), data.len() - out.len());
            }
            assert_eq!(out, data, "read size {read_size}");
        }
    }

    #[test]
    fn partial_read_keeps_the_rest_sealed_at_the_front() {
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
