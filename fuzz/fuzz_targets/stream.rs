//! `Stream` with an arbitrary chunk size and arbitrary writes, reads,
//! `next_chunk`s and `drain`s, compared with a model: a queue of plaintext
//! chunks (each `write` cut into chunks of `chunk_size`, the front one
//! possibly partly read).
//!
//! `purge` is left out: it is process-wide, and `tests/stream.rs` covers it.

#![no_main]

use std::collections::VecDeque;
use std::io::{Read, Write};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memguard::{Error, Stream};

/// The most bytes one run writes, to keep each run fast.
const MAX_WRITTEN: usize = 64 * 1024;
const MAX_WRITE: usize = 8 * 1024;
const MAX_READ: usize = 10_000;
/// What a read buffer holds before the read, to see what was written to it.
const SENTINEL: u8 = 0xA5;

#[derive(Arbitrary, Debug)]
struct Input {
    /// 1..=4096.
    chunk_size: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// `Write for Stream` with that many (at most 8192) fresh pattern bytes.
    Write(Size),
    /// `Write for &Stream`.
    WriteShared(Size),
    /// `move_from` (the source must be wiped).
    MoveFrom(Size),
    /// `Read for Stream` into a buffer of that many (at most 10000) bytes.
    Read(Size),
    /// `Read for &Stream`.
    ReadShared(Size),
    NextChunk,
    Drain,
    /// `len`, `is_empty`, `chunk_count`, `Debug`.
    Check,
}

/// A length for a write or a read buffer, cut down to the largest allowed.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Bytes(u16),
    /// `chunks * chunk_size + delta`: on or next to a chunk boundary.
    Chunks {
        chunks: u8,
        delta: i8,
    },
    /// `len() + delta`: all that is queued, give or take.
    Queued(i8),
}

impl Size {
    fn resolve(self, m: &Model, max: usize) -> usize {
        let shift = |base: usize, delta: i8| base.saturating_add_signed(isize::from(delta));
        let n = match self {
            Size::Bytes(n) => usize::from(n) % (max + 1),
            Size::Chunks { chunks, delta } => shift(usize::from(chunks) * m.chunk_size, delta),
            Size::Queued(delta) => shift(m.len(), delta),
        };
        n.min(max)
    }
}

/// Distinct-looking bytes: the n-th byte ever written is `pattern(n)`.
fn pattern(n: usize) -> u8 {
    ((n as u32).wrapping_mul(2_654_435_761) >> 24) as u8
}

struct Model {
    chunk_size: usize,
    /// The unread bytes of each queued chunk, oldest first; never empty.
    chunks: VecDeque<Vec<u8>>,
    written: usize,
}

impl Model {
    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// The next pattern bytes, within the budget.
    fn fresh(&mut self, size: Size) -> Vec<u8> {
        let len = size
            .resolve(self, MAX_WRITE)
            .min(MAX_WRITTEN - self.written);
        let bytes: Vec<u8> = (self.written..self.written + len).map(pattern).collect();
        self.written += len;
        bytes
    }

    fn push(&mut self, data: &[u8]) {
        self.chunks
            .extend(data.chunks(self.chunk_size).map(<[u8]>::to_vec));
    }

    fn pull(&mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(max - out.len());
            out.extend(front.drain(..n));
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        out
    }

    fn all(&self) -> Vec<u8> {
        self.chunks.iter().flatten().copied().collect()
    }
}

fn check(s: &Stream, m: &Model) {
    assert_eq!(s.len(), m.len(), "len");
    assert_eq!(s.is_empty(), m.chunks.is_empty(), "is_empty");
    assert_eq!(s.chunk_count(), m.chunks.len(), "chunk_count");
    assert_eq!(s.chunk_size(), m.chunk_size, "chunk_size");
    assert_eq!(
        format!("{s:?}"),
        format!(
            "Stream {{ len: {}, chunks: {}, chunk_size: {} }}",
            m.len(),
            m.chunks.len(),
            m.chunk_size
        )
    );
}

fn read(mut r: impl Read, size: Size, m: &mut Model) {
    let size = size.resolve(m, MAX_READ);
    let mut buf = vec![SENTINEL; size];
    let n = r.read(&mut buf).expect("read");
    let want = m.pull(size);
    assert_eq!(n, want.len(), "bytes read");
    assert_eq!(&buf[..n], &want[..], "data read");
    assert!(
        buf[n..].iter().all(|&b| b == SENTINEL),
        "read wrote past what it returned"
    );
}

fn run(input: Input) {
    let chunk_size = usize::from(input.chunk_size) % 4096 + 1;
    let mut s = Stream::with_chunk_size(chunk_size);
    let mut m = Model {
        chunk_size,
        chunks: VecDeque::new(),
        written: 0,
    };
    let before = memguard::live_buffers();

    for op in input.ops {
        match op {
            Op::Write(len) => {
                let data = m.fresh(len);
                assert_eq!(s.write(&data).expect("write"), data.len());
                m.push(&data);
            }
            Op::WriteShared(len) => {
                let data = m.fresh(len);
                assert_eq!((&s).write(&data).expect("write"), data.len());
                m.push(&data);
            }
            Op::MoveFrom(len) => {
                let data = m.fresh(len);
                let mut src = data.clone();
                s.move_from(&mut src).expect("move_from");
                assert!(src.iter().all(|&b| b == 0), "move_from must wipe");
                m.push(&data);
            }
            Op::Read(size) => read(&mut s, size, &mut m),
            Op::ReadShared(size) => read(&s, size, &mut m),
            Op::NextChunk => match (s.next_chunk().expect("next_chunk"), m.chunks.pop_front()) {
                (None, None) => {}
                (Some(buf), Some(want)) => {
                    assert!(!buf.is_mutable(), "chunks come out frozen");
                    assert_eq!(&*buf.bytes(), &want[..], "next_chunk");
                }
                (got, want) => panic!("next_chunk gave {got:?}, expected {want:?}"),
            },
            Op::Drain => {
                let want = m.all();
                match s.drain() {
                    Ok(buf) => {
                        assert!(!buf.is_mutable(), "drain gives a frozen buffer");
                        assert_eq!(&*buf.bytes(), &want[..], "drain");
                    }
                    Err(Error::NullBuffer) => assert!(want.is_empty(), "drain failed"),
                    Err(e) => panic!("drain: {e}"),
                }
                m.chunks.clear();
            }
            Op::Check => {}
        }
        check(&s, &m);
    }

    // Everything left comes out, in order.
    let want = m.all();
    match s.drain() {
        Ok(buf) => assert_eq!(&*buf.bytes(), &want[..], "final drain"),
        Err(Error::NullBuffer) => assert!(want.is_empty(), "final drain failed"),
        Err(e) => panic!("final drain: {e}"),
    }
    m.chunks.clear();
    check(&s, &m);
    let mut buf = [SENTINEL; 16];
    assert_eq!(s.read(&mut buf).expect("read"), 0);
    assert!(s.next_chunk().expect("next_chunk").is_none());
    assert_eq!(memguard::live_buffers(), before, "a buffer leaked");
}

fuzz_target!(
    init: {
        // Rekeying changes no key; its thread only makes coverage noisy.
        memguard::set_rekey_interval(None);
        // Make the session key now, so that it is not counted as a leak.
        drop(memguard::Enclave::random(1));
    },
    |input: Input| run(input)
);
