//! `LockedBuffer::{copy_at, move_at, copy, move_from}` at arbitrary offsets
//! (near the end, near `usize::MAX`, anything) with arbitrary source
//! lengths, mixed with `freeze`, `melt`, `wipe`, `zeroize` and `scramble`,
//! compared with a `Vec<u8>` model.
//!
//! A write succeeds exactly when the buffer is mutable and
//! `offset + len <= size` (without overflow); otherwise it fails with
//! `Immutable` (checked first) or `OutOfRange { offset, len, size }`, and
//! writes nothing. `move_*` wipes its source exactly on success.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memguard::{Error, LockedBuffer};
use zeroize::Zeroize;

const MAX_SIZE: usize = 8192;
/// Source lengths go a little past the largest buffer.
const MAX_SRC: usize = MAX_SIZE + 16;

#[derive(Arbitrary, Debug)]
struct Input {
    /// 1..=8192.
    size: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Offset {
    /// 0..=65535.
    Small(u16),
    /// `size + delta`, saturating at 0.
    NearEnd(i16),
    /// `size - len + delta` (where the source would just fit).
    Fit(i8),
    /// `usize::MAX - x`.
    NearMax(u16),
    /// Anything.
    Raw(u64),
}

impl Offset {
    fn resolve(self, size: usize, len: usize) -> usize {
        let shift = |base: usize, delta: isize| base.saturating_add_signed(delta);
        match self {
            Offset::Small(x) => usize::from(x),
            Offset::NearEnd(d) => shift(size, isize::from(d)),
            Offset::Fit(d) => shift(size.saturating_sub(len), isize::from(d)),
            Offset::NearMax(x) => usize::MAX - usize::from(x),
            Offset::Raw(x) => x as usize,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    CopyAt { offset: Offset, len: u16, seed: u8 },
    MoveAt { offset: Offset, len: u16, seed: u8 },
    Copy { len: u16, seed: u8 },
    MoveFrom { len: u16, seed: u8 },
    Freeze,
    Melt,
    Wipe,
    Zeroize,
    Scramble,
}

/// Source bytes, never zero, so that a wipe shows.
fn source(len: u16, seed: u8) -> Vec<u8> {
    let len = usize::from(len) % (MAX_SRC + 1);
    (0..len)
        .map(|i| ((usize::from(seed) + i * 31) % 255) as u8 + 1)
        .collect()
}

struct Model {
    data: Vec<u8>,
    frozen: bool,
}

impl Model {
    /// What a write of `len` bytes at `offset` must return.
    fn expect_write(&self, offset: usize, len: usize) -> Result<(), Expected> {
        let size = self.data.len();
        if self.frozen {
            return Err(Expected::Immutable);
        }
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Expected::OutOfRange { offset, len, size }),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Expected {
    Immutable,
    OutOfRange {
        offset: usize,
        len: usize,
        size: usize,
    },
}

fn same_error(got: &Error, want: &Expected) -> bool {
    match (got, want) {
        (Error::Immutable, Expected::Immutable) => true,
        (
            Error::OutOfRange { offset, len, size },
            Expected::OutOfRange {
                offset: o,
                len: l,
                size: s,
            },
        ) => (offset, len, size) == (o, l, s),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    CopyAt,
    MoveAt,
    Copy,
    MoveFrom,
}

/// Runs one write and checks its result and its effect on the source.
fn write(buf: &mut LockedBuffer, m: &mut Model, call: Call, offset: usize, src: Vec<u8>) {
    let want = m.expect_write(offset, src.len());
    let mut moved = src.clone();
    let got = match call {
        Call::CopyAt => buf.copy_at(offset, &src),
        Call::MoveAt => buf.move_at(offset, &mut moved),
        Call::Copy => buf.copy(&src),
        Call::MoveFrom => buf.move_from(&mut moved),
    };
    let moving = matches!(call, Call::MoveAt | Call::MoveFrom);
    match (&got, &want) {
        (Ok(()), Ok(())) => {
            m.data[offset..offset + src.len()].copy_from_slice(&src);
            if moving {
                assert!(moved.iter().all(|&b| b == 0), "a move must wipe its source");
            }
        }
        (Err(e), Err(w)) if same_error(e, w) => {
            assert_eq!(moved, src, "a failed move must leave its source alone");
        }
        _ => panic!(
            "{call:?} of {} bytes at {offset}: got {got:?}, expected {want:?}",
            src.len()
        ),
    }
}

fn check(buf: &LockedBuffer, m: &Model) {
    assert!(buf.is_alive());
    assert_eq!(buf.len(), m.data.len());
    assert_eq!(buf.is_mutable(), !m.frozen, "frozen state");
    assert_eq!(&*buf.bytes(), &m.data[..], "contents");
    assert!(buf.equal_to(&m.data));
    assert!(!buf.equal_to(&m.data[1..]));
}

fuzz_target!(|input: Input| {
    let size = usize::from(input.size) % MAX_SIZE + 1;
    let before = memguard::live_buffers();
    let mut buf = LockedBuffer::new(size).expect("LockedBuffer::new");
    let mut m = Model {
        data: vec![0; size],
        frozen: false,
    };
    check(&buf, &m);

    for op in input.ops {
        match op {
            Op::CopyAt { offset, len, seed } => {
                let src = source(len, seed);
                let offset = offset.resolve(size, src.len());
                write(&mut buf, &mut m, Call::CopyAt, offset, src);
            }
            Op::MoveAt { offset, len, seed } => {
                let src = source(len, seed);
                let offset = offset.resolve(size, src.len());
                write(&mut buf, &mut m, Call::MoveAt, offset, src);
            }
            Op::Copy { len, seed } => write(&mut buf, &mut m, Call::Copy, 0, source(len, seed)),
            Op::MoveFrom { len, seed } => {
                write(&mut buf, &mut m, Call::MoveFrom, 0, source(len, seed));
            }
            Op::Freeze => {
                buf.freeze().expect("freeze");
                m.frozen = true;
            }
            Op::Melt => {
                buf.melt().expect("melt");
                m.frozen = false;
            }
            Op::Wipe => match buf.wipe() {
                Ok(()) if !m.frozen => m.data.fill(0),
                Err(Error::Immutable) if m.frozen => {}
                got => panic!("wipe (frozen: {}): {got:?}", m.frozen),
            },
            Op::Zeroize => {
                buf.zeroize();
                m.data.fill(0);
            }
            Op::Scramble => match buf.scramble() {
                Ok(()) if !m.frozen => m.data.copy_from_slice(&buf.bytes()),
                Err(Error::Immutable) if m.frozen => {}
                got => panic!("scramble (frozen: {}): {got:?}", m.frozen),
            },
        }
        check(&buf, &m);
    }

    drop(buf);
    assert_eq!(memguard::live_buffers(), before, "a buffer leaked");
});
