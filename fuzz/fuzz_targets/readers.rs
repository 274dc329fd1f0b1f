//! `LockedBuffer::{from_reader, from_entire_reader, from_reader_until}`
//! against a scripted reader: data in arbitrary pieces, `Ok(0)`, errors of
//! any kind, `Interrupted`, and a reader that claims more bytes than fit.
//!
//! Each outcome is compared with a model that only looks at the bytes the
//! script yields before it ends (or fails): the result must not depend on
//! how the bytes are cut into `read` calls.

#![no_main]

use std::collections::VecDeque;
use std::io::{self, Read};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memguard::{Error, LockedBuffer};

/// The most data one script yields, to keep each run fast.
const MAX_DATA: usize = 64 * 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    constructor: Constructor,
    script: Vec<Action>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Constructor {
    /// `from_reader(r, size)`.
    Exact(u16),
    /// `from_entire_reader(r)`.
    Entire,
    /// `from_reader_until(r, delim)`.
    Until(u8),
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// These bytes, as many per call as fit in the caller's buffer.
    Data(Vec<u8>),
    /// `len` copies of `byte` (large inputs from small fuzz inputs).
    Repeat { byte: u8, len: u16 },
    /// `Ok(0)`.
    Eof,
    /// An error of this kind.
    Fail(Kind),
    /// `Err(Interrupted)`: to be retried by the caller.
    Interrupted,
    /// `Ok(buf.len() + 1 + extra)`: a broken reader.
    Overclaim(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Other,
    NotFound,
    PermissionDenied,
    ConnectionReset,
    BrokenPipe,
    WouldBlock,
    InvalidInput,
    InvalidData,
    TimedOut,
    UnexpectedEof,
    OutOfMemory,
}

impl Kind {
    fn io(self) -> io::ErrorKind {
        match self {
            Kind::Other => io::ErrorKind::Other,
            Kind::NotFound => io::ErrorKind::NotFound,
            Kind::PermissionDenied => io::ErrorKind::PermissionDenied,
            Kind::ConnectionReset => io::ErrorKind::ConnectionReset,
            Kind::BrokenPipe => io::ErrorKind::BrokenPipe,
            Kind::WouldBlock => io::ErrorKind::WouldBlock,
            Kind::InvalidInput => io::ErrorKind::InvalidInput,
            Kind::InvalidData => io::ErrorKind::InvalidData,
            Kind::TimedOut => io::ErrorKind::TimedOut,
            Kind::UnexpectedEof => io::ErrorKind::UnexpectedEof,
            Kind::OutOfMemory => io::ErrorKind::OutOfMemory,
        }
    }
}

/// The message of every scripted error, to tell it from the library's own.
const SCRIPTED: &str = "scripted failure";

/// One step of the reader, with empty data and oversized data removed.
#[derive(Debug)]
enum Step {
    Data(VecDeque<u8>),
    Eof,
    Fail(io::ErrorKind),
    Interrupted,
    Overclaim(usize),
}

fn steps(script: Vec<Action>) -> VecDeque<Step> {
    let mut budget = MAX_DATA;
    let mut out = VecDeque::new();
    for action in script {
        let step = match action {
            Action::Data(mut bytes) => {
                bytes.truncate(budget);
                budget -= bytes.len();
                if bytes.is_empty() {
                    continue;
                }
                Step::Data(bytes.into())
            }
            Action::Repeat { byte, len } => {
                let len = usize::from(len).min(budget);
                budget -= len;
                if len == 0 {
                    continue;
                }
                Step::Data(std::iter::repeat_n(byte, len).collect())
            }
            Action::Eof => Step::Eof,
            Action::Fail(kind) => Step::Fail(kind.io()),
            Action::Interrupted => Step::Interrupted,
            Action::Overclaim(extra) => Step::Overclaim(usize::from(extra)),
        };
        out.push_back(step);
    }
    out
}

/// How the script ends, as the caller sees it.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `Ok(0)`, or the script ran out.
    Eof,
    Fail(io::ErrorKind),
    Overclaim,
}

/// The bytes the script yields before it ends, and how it ends.
fn model(steps: &VecDeque<Step>) -> (Vec<u8>, End) {
    let mut data = Vec::new();
    for step in steps {
        match step {
            Step::Data(d) => data.extend(d.iter().copied()),
            Step::Interrupted => {}
            Step::Eof => return (data, End::Eof),
            Step::Fail(kind) => return (data, End::Fail(*kind)),
            Step::Overclaim(_) => return (data, End::Overclaim),
        }
    }
    (data, End::Eof)
}

struct Scripted {
    steps: VecDeque<Step>,
    /// Data bytes handed out.
    consumed: usize,
    /// `read` calls, `Interrupted` ones included.
    calls: usize,
    /// Set once the reader returned `Ok(0)` or a real error.
    ended: bool,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        // An empty buffer makes `Ok(0)` ambiguous: the library must never
        // pass one. Nor should it read on after the end or an error.
        assert!(!buf.is_empty(), "read with an empty buffer");
        assert!(!self.ended, "read again after the reader ended or failed");
        let Some(step) = self.steps.front_mut() else {
            self.ended = true;
            return Ok(0);
        };
        match step {
            Step::Data(d) => {
                let n = d.len().min(buf.len());
                for (dst, src) in buf.iter_mut().zip(d.drain(..n)) {
                    *dst = src;
                }
                if d.is_empty() {
                    self.steps.pop_front();
                }
                self.consumed += n;
                Ok(n)
            }
            Step::Eof => {
                self.steps.pop_front();
                self.ended = true;
                Ok(0)
            }
            Step::Fail(kind) => {
                let kind = *kind;
                self.steps.pop_front();
                self.ended = true;
                Err(io::Error::new(kind, SCRIPTED))
            }
            Step::Interrupted => {
                self.steps.pop_front();
                Err(io::Error::new(io::ErrorKind::Interrupted, SCRIPTED))
            }
            Step::Overclaim(extra) => {
                let claim = buf.len() + 1 + *extra;
                self.steps.pop_front();
                self.ended = true;
                Ok(claim)
            }
        }
    }
}

#[derive(Debug)]
enum Expected {
    Buffer(Vec<u8>),
    NullBuffer,
    Io { read: usize, end: End },
}

/// What the constructor must return, and how many data bytes it must take.
fn expected(constructor: Constructor, data: &[u8], end: End) -> (Expected, usize) {
    let at_end = |data: &[u8]| match end {
        End::Eof if data.is_empty() => (Expected::NullBuffer, 0),
        End::Eof => (Expected::Buffer(data.to_vec()), data.len()),
        _ => (
            Expected::Io {
                read: data.len(),
                end,
            },
            data.len(),
        ),
    };
    match constructor {
        Constructor::Exact(0) => (Expected::NullBuffer, 0),
        Constructor::Exact(size) => {
            let size = usize::from(size);
            if data.len() >= size {
                (Expected::Buffer(data[..size].to_vec()), size)
            } else {
                let end = match end {
                    End::Eof => End::Fail(io::ErrorKind::UnexpectedEof),
                    other => other,
                };
                (
                    Expected::Io {
                        read: data.len(),
                        end,
                    },
                    data.len(),
                )
            }
        }
        Constructor::Entire => at_end(data),
        Constructor::Until(delim) => match data.iter().position(|&b| b == delim) {
            Some(0) => (Expected::NullBuffer, 1),
            Some(p) => (Expected::Buffer(data[..p].to_vec()), p + 1),
            None => at_end(data),
        },
    }
}

fn check_io_error(read: usize, source: &io::Error, want_read: usize, end: End) {
    assert_eq!(read, want_read, "Io.read");
    match end {
        End::Fail(kind) => {
            assert_eq!(source.kind(), kind, "{source}");
        }
        End::Overclaim => {
            assert_eq!(source.kind(), io::ErrorKind::InvalidData, "{source}");
        }
        End::Eof => unreachable!("the model turns an early end into UnexpectedEof"),
    }
}

fuzz_target!(|input: Input| {
    let steps = steps(input.script);
    let (data, end) = model(&steps);
    let (want, want_consumed) = expected(input.constructor, &data, end);
    let scripted_error = matches!(end, End::Fail(_));

    let before = memguard::live_buffers();
    let mut reader = Scripted {
        steps,
        consumed: 0,
        calls: 0,
        ended: false,
    };
    let result = match input.constructor {
        Constructor::Exact(size) => LockedBuffer::from_reader(&mut reader, usize::from(size)),
        Constructor::Entire => LockedBuffer::from_entire_reader(&mut reader),
        Constructor::Until(delim) => LockedBuffer::from_reader_until(&mut reader, delim),
    };

    match (&result, &want) {
        (Ok(buf), Expected::Buffer(bytes)) => {
            assert!(buf.is_alive());
            assert!(!buf.is_mutable(), "constructors return frozen buffers");
            assert_eq!(buf.len(), bytes.len());
            assert_eq!(&*buf.bytes(), &bytes[..]);
            assert!(buf.equal_to(bytes));
        }
        (Err(Error::NullBuffer), Expected::NullBuffer) => {}
        (
            Err(Error::Io { read, source }),
            Expected::Io {
                read: want_read,
                end,
            },
        ) => {
            check_io_error(*read, source, *want_read, *end);
            // A scripted error is handed on as it is, not rewrapped.
            if scripted_error {
                assert_eq!(source.to_string(), SCRIPTED);
            }
        }
        (got, want) => panic!("got {got:?}, expected {want:?}"),
    }
    assert_eq!(
        reader.consumed, want_consumed,
        "bytes taken from the reader"
    );
    if let Constructor::Exact(0) = input.constructor {
        assert_eq!(reader.calls, 0, "size 0 must fail before reading");
    }

    drop(result);
    assert_eq!(memguard::live_buffers(), before, "a buffer leaked");
});
