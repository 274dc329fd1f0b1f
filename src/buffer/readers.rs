//! Constructors that read a secret from a `Read` straight into guarded
//! memory: no heap or stack buffer of this crate ever holds it.
//!
//! A buffered source keeps its own copy: `std::io::stdin().lock()` and any
//! `BufReader` read ahead into a heap buffer that is never wiped. Read from
//! an unbuffered handle instead (a `File` on a duplicate of the file
//! descriptor, a `TcpStream`), as `examples/stdin.rs` does.

use std::io::{self, Read};

use super::LockedBuffer;
use crate::error::{Error, Result};

/// The outcome of one `read` call into guarded memory.
enum Step {
    Read(usize),
    End,
}

/// Calls `r.read(dst)` once, retrying on `Interrupted`.
fn read_once<R: Read>(r: &mut R, dst: &mut [u8], so_far: usize) -> Result<Step> {
    loop {
        match r.read(dst) {
            Ok(0) => return Ok(Step::End),
            Ok(n) if n <= dst.len() => return Ok(Step::Read(n)),
            Ok(n) => {
                return Err(Error::Io {
                    read: so_far,
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the reader claimed {n} bytes for a {}-byte buffer",
                            dst.len()
                        ),
                    ),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    read: so_far,
                    source: e,
                })
            }
        }
    }
}

impl LockedBuffer {
    /// An immutable buffer holding exactly `size` bytes read from `r`.
    ///
    /// The bytes go straight into guarded memory. Use an unbuffered source:
    /// `std::io::stdin().lock()` and any `BufReader` read ahead into a heap
    /// buffer of their own that is never wiped; a `File` on a duplicate of
    /// the descriptor (`File::from(stdin().as_fd().try_clone_to_owned()?)`)
    /// or a `TcpStream` read straight into the destination.
    ///
    /// If the reader fails or ends early, the partial data is wiped and [`Error::Io`] says how many
    /// bytes were read (`UnexpectedEof` for an early end). A size of zero
    /// gives [`Error::NullBuffer`].
    ///
    /// ```
    /// let buf = memguard::LockedBuffer::from_reader(&b"0123456789"[..], 4)?;
    /// assert!(buf.equal_to(b"0123"));
    ///
    /// let short = memguard::LockedBuffer::from_reader(&b"01"[..], 4);
    /// assert!(matches!(short, Err(memguard::Error::Io { read: 2, .. })));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_reader<R: Read>(mut r: R, size: usize) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(size)?;
        {
            let mut data = buf.bytes_mut()?;
            let mut filled = 0;
            while filled < size {
                match read_once(&mut r, &mut data[filled..], filled)? {
                    Step::Read(n) => filled += n,
                    Step::End => {
                        return Err(Error::Io {
                            read: filled,
                            source: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("the source ended after {filled} of {size} bytes"),
                            ),
                        })
                    }
                }
            }
        }
        buf.freeze()?;
        Ok(buf)
    }

    /// An immutable buffer holding everything `r` yields until it ends.
    ///
    /// Reads straight into guarded memory (use an unbuffered source, see
    /// [`LockedBuffer::from_reader`]); when that fills up, a guarded
    /// buffer twice the size takes over (copied guarded to guarded, the old
    /// one destroyed), so growing briefly needs three times the data's size
    /// of lockable memory. A reader error wipes the partial data and gives
    /// [`Error::Io`]; a reader with nothing in it gives [`Error::NullBuffer`].
    ///
    /// ```
    /// let buf = memguard::LockedBuffer::from_entire_reader(&b"all of it"[..])?;
    /// assert!(buf.equal_to(b"all of it"));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_entire_reader<R: Read>(mut r: R) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(crate::mem::page_size())?;
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                buf = buf.grown(filled)?;
            }
            let step = {
                let mut data = buf.bytes_mut()?;
                read_once(&mut r, &mut data[filled..], filled)?
            };
            match step {
                Step::Read(n) => filled += n,
                Step::End => break,
            }
        }
        buf.finish(filled)
    }

    /// An immutable buffer holding what `r` yields up to, not including, the
    /// first `delim`.
    ///
    /// Reads one byte at a time straight into guarded memory, so nothing past
    /// the delimiter is consumed from `r` (use an unbuffered source, see
    /// [`LockedBuffer::from_reader`]). If `r` ends before a delimiter,
    /// what was read is returned, as `BufRead::read_until` does. Nothing
    /// before the delimiter (or an empty reader) gives
    /// [`Error::NullBuffer`]; a reader error wipes the partial data and gives
    /// [`Error::Io`].
    ///
    /// ```
    /// let mut input = &b"hunter2\nnext line"[..];
    /// let line = memguard::LockedBuffer::from_reader_until(&mut input, b'\n')?;
    /// assert!(line.equal_to(b"hunter2"));
    /// assert_eq!(input, b"next line");
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn from_reader_until<R: Read>(mut r: R, delim: u8) -> Result<LockedBuffer> {
        let mut buf = LockedBuffer::new(crate::mem::page_size())?;
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                buf = buf.grown(filled)?;
            }
            let found = {
                let mut data = buf.bytes_mut()?;
                match read_once(&mut r, &mut data[filled..=filled], filled)? {
                    Step::End => None,
                    Step::Read(_) => Some(data[filled] == delim),
                }
            };
            match found {
                None | Some(true) => break,
                Some(false) => filled += 1,
            }
        }
        buf.finish(filled)
    }

    /// A buffer twice as large holding the first `filled` bytes of this one,
    /// which is destroyed.
    ///
    /// A purge on another thread may destroy this buffer at any moment: the
    /// data is read through one guard, and an empty or short view means
    /// [`Error::Destroyed`].
    pub(crate) fn grown(self, filled: usize) -> Result<LockedBuffer> {
        let data = self.bytes();
        if !self.is_alive() || data.is_empty() || data.len() < filled {
            return Err(Error::Destroyed);
        }
        let size = data
            .len()
            .checked_mul(2)
            .ok_or(Error::TooLarge { size: usize::MAX })?;
        let mut bigger = LockedBuffer::new(size)?;
        bigger.copy(&data[..filled])?;
        Ok(bigger)
    }

    /// Keeps the first `filled` bytes, right-aligned against the guard page,
    /// and freezes the buffer.
    pub(crate) fn finish(mut self, filled: usize) -> Result<LockedBuffer> {
        if filled == 0 {
            return Err(Error::NullBuffer);
        }
        self.region.shrink_to_prefix(filled)?;
        self.freeze()?;
        Ok(self)
    }
}
