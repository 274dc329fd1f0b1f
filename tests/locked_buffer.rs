//! Unit-style tests of every public method of `LockedBuffer`, its guards and
//! its errors, through the public API only.
//!
//! Tests in this file run in parallel threads of one process, so none of them
//! calls `memguard::purge()` in the test process itself. The few tests that
//! need a destroyed-but-still-reachable buffer (only `purge` makes one) run
//! their body in a child process (the test binary re-run for exactly that
//! test, see `tests/support`), where purging harms nobody else.

mod support;

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use memguard::{Error, LockedBuffer, Ref, RefMut};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A deterministic byte pattern that is never all-zero and has no short
/// period, so misplaced or partial data shows.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A pattern that never contains `avoid`.
fn pattern_without(len: usize, seed: u32, avoid: u8) -> Vec<u8> {
    pattern(len, seed)
        .into_iter()
        .map(|b| if b == avoid { avoid.wrapping_add(1) } else { b })
        .collect()
}

fn page() -> usize {
    LockedBuffer::new(1).expect("a buffer").page_size()
}

/// A mutable buffer holding `data`.
fn mutable_with(data: &[u8]) -> LockedBuffer {
    let mut buf = LockedBuffer::new(data.len()).expect("new");
    buf.copy(data).expect("copy");
    buf
}

/// A snapshot of a buffer's bytes.
fn contents(buf: &LockedBuffer) -> Vec<u8> {
    buf.bytes().to_vec()
}

/// Marker a child prints once its body has run to the end.
const CHILD_DONE: &str = "memguard-child-done:";

/// Runs `body` in a child process playing exactly the test `test_name`, where
/// calling `memguard::purge()` cannot disturb the other tests. In the parent,
/// asserts that the child ran the body to the end and succeeded.
fn in_child_process(test_name: &str, body: impl FnOnce()) {
    match support::child_scenario() {
        Some(scenario) if scenario == test_name => {
            body();
            println!("{CHILD_DONE}{test_name}");
        }
        Some(_) => {}
        None => {
            let out = support::run_child(test_name, test_name);
            assert!(
                out.status.success(),
                "child for {test_name} failed: {}",
                support::describe(&out)
            );
            assert!(
                support::stdout(&out).contains(&format!("{CHILD_DONE}{test_name}")),
                "child for {test_name} did not run its body: {}",
                support::describe(&out)
            );
        }
    }
}

/// A reader handing out `data` in chunks of pseudo-random sizes in
/// `1..=max_chunk`.
struct ChunkReader {
    data: Vec<u8>,
    pos: usize,
    max_chunk: usize,
    state: u64,
    calls: usize,
}

impl ChunkReader {
    fn new(data: Vec<u8>, max_chunk: usize) -> ChunkReader {
        ChunkReader {
            data,
            pos: 0,
            max_chunk,
            state: 0x2545_f491_4f6c_dd1d,
            calls: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        self.state ^= self.state << 7;
        self.state ^= self.state >> 9;
        let want = 1 + (self.state as usize) % self.max_chunk;
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that yields `data` in chunks of at most `chunk` bytes, then fails
/// with an error of kind `kind`.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    kind: io::ErrorKind,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.data.len() {
            return Err(io::Error::new(self.kind, "the test reader broke"));
        }
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that returns `Ok(0)` forever and counts the calls.
struct Silent {
    calls: usize,
}

impl Read for Silent {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        assert!(self.calls < 1_000, "the reader was called in a loop");
        Ok(0)
    }
}

/// A reader that fails with `Interrupted` `interrupts` times, then serves
/// `data`.
struct Interrupting {
    interrupts: usize,
    data: io::Cursor<Vec<u8>>,
}

impl Read for Interrupting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupts > 0 {
            self.interrupts -= 1;
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        self.data.read(buf)
    }
}

/// A reader that serves `honest` bytes properly, then claims to have read
/// `extra` more bytes than fit in the buffer it is given.
struct Liar {
    honest: usize,
    served: usize,
    extra: usize,
}

impl Read for Liar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.served < self.honest {
            let n = buf.len().min(self.honest - self.served);
            buf[..n].fill(b'x');
            self.served += n;
            return Ok(n);
        }
        Ok(buf.len().saturating_add(self.extra))
    }
}

/// A reader that must never be read from.
struct Untouchable;

impl Read for Untouchable {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        panic!("the reader was read although the call should have failed first");
    }
}

/// A reader that counts how many bytes were taken from `inner`.
struct Counting<R> {
    inner: R,
    taken: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n;
        Ok(n)
    }
}

fn assert_send_sync<T: Send + Sync + ?Sized>() {}

// ---------------------------------------------------------------------------
// new
// ---------------------------------------------------------------------------

#[test]
fn new_is_zeroed_mutable_alive_and_sized() {
    for size in [1, 2, 31, 32, 4095, 4096, 4097, 3 * 4096 + 5] {
        let buf = LockedBuffer::new(size).expect("new");
        assert_eq!(buf.len(), size);
        assert!(!buf.is_empty());
        assert!(buf.is_alive());
        assert!(buf.is_mutable());
        let bytes = buf.bytes();
        assert_eq!(bytes.len(), size);
        assert!(bytes.iter().all(|&b| b == 0), "size {size} not zeroed");
    }
}

#[test]
fn new_of_zero_is_null_buffer() {
    assert!(matches!(LockedBuffer::new(0), Err(Error::NullBuffer)));
}

#[test]
fn new_of_huge_sizes_errors_without_panicking() {
    // Only sizes that cannot be mapped at all: a size that maps but exceeds
    // RAM would be mlocked page by page by root (CAP_IPC_LOCK) and invite
    // the OOM killer.
    let huge = [
        usize::MAX,
        usize::MAX - 1,
        usize::MAX - 4095,
        usize::MAX / 2,
        usize::MAX / 2 + 1,
        isize::MAX as usize - 4096,
        usize::MAX / 4,
        1 << 62,
    ];
    for size in huge {
        match LockedBuffer::new(size) {
            Ok(_) => panic!("a buffer of {size} bytes was allocated"),
            Err(Error::TooLarge { size: s }) => assert_eq!(s, size),
            Err(Error::Os { .. } | Error::MemoryLock { .. }) => {}
            Err(other) => panic!("size {size}: unexpected error {other:?}"),
        }
    }
    for size in [usize::MAX, usize::MAX / 2] {
        assert!(
            matches!(LockedBuffer::new(size), Err(Error::TooLarge { .. })),
            "size {size}"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "the simulated backend gives no protection")]
fn page_size_and_protections_are_reported() {
    use memguard::Protections;
    let buf = LockedBuffer::new(8).unwrap();
    assert_eq!(buf.page_size(), page());
    assert!(buf.page_size().is_power_of_two());
    let got = buf.protections();
    let everywhere = Protections::GUARD_PAGES
        | Protections::LOCKED
        | Protections::CANARY
        | Protections::WIPE_BEFORE_CRASH;
    assert!(got.contains(everywhere), "{got}");
    // A buffer of whole pages has no slack, so no canary.
    let whole = LockedBuffer::new(page()).unwrap();
    assert!(!whole.protections().contains(Protections::CANARY));
    // Linux >= 4.14 has MADV_WIPEONFORK; this machine runs a far newer one.
    // Secret memory (a shared mapping, which MADV_WIPEONFORK refuses) is
    // kept out of children with MADV_DONTFORK instead.
    #[cfg(target_os = "linux")]
    if memguard::memory_backend() == memguard::MemoryBackend::SecretMemory {
        let secret =
            Protections::OUT_OF_DUMPS | Protections::ABSENT_IN_FORKS | Protections::SECRET_MEMORY;
        assert!(got.contains(secret), "{got}");
        assert!(!buf.wipes_on_fork());
    } else {
        assert!(got.contains(Protections::OUT_OF_DUMPS | Protections::ZEROED_IN_FORKS));
        assert!(!got.contains(Protections::SECRET_MEMORY), "{got}");
        assert!(buf.wipes_on_fork());
    }
    // No fork on Windows, so nothing is hidden from one.
    #[cfg(windows)]
    assert!(!got.hidden_from_forks() && !buf.wipes_on_fork(), "{got}");
}

#[test]
#[cfg(unix)] // on Windows a step needs a function wine lacks
fn hardening_is_applied_on_first_allocation_and_then_locked_in() {
    let _buf = LockedBuffer::new(8).unwrap();
    assert!(memguard::is_process_hardened());
    assert!(matches!(
        memguard::disable_process_hardening(),
        Err(Error::HardeningAlreadyApplied)
    ));
    assert!(memguard::is_process_hardened());
}

// ---------------------------------------------------------------------------
// random
// ---------------------------------------------------------------------------

#[test]
fn random_is_frozen_nonzero_and_fresh_each_time() {
    let a = LockedBuffer::random(32).unwrap();
    let b = LockedBuffer::random(32).unwrap();
    assert_eq!(a.len(), 32);
    assert!(a.is_alive());
    assert!(!a.is_mutable());
    assert!(!a.equal_to(&[0u8; 32]));
    assert!(a.bytes().iter().any(|&x| x != 0));
    assert_ne!(contents(&a), contents(&b));
    assert!(!bool::from(a.ct_eq(&b)));
    assert!(matches!(LockedBuffer::random(0), Err(Error::NullBuffer)));
    assert!(matches!(
        LockedBuffer::random(usize::MAX),
        Err(Error::TooLarge { .. })
    ));
    let big = LockedBuffer::random(3 * 4096 + 1).unwrap();
    assert_eq!(big.len(), 3 * 4096 + 1);
    // 12 KiB of zeros from a CSPRNG would be astonishing.
    assert!(big.bytes().iter().filter(|&&x| x == 0).count() < 300);
}

// ---------------------------------------------------------------------------
// from_bytes
// ---------------------------------------------------------------------------

#[test]
fn from_bytes_copies_wipes_source_and_freezes() {
    let original = pattern(100, 1);
    let mut src = original.clone();
    let buf = LockedBuffer::from_bytes(&mut src).unwrap();
    assert_eq!(src, vec![0u8; 100], "the source was not wiped");
    assert!(buf.equal_to(&original));
    assert_eq!(&*buf.bytes(), &original[..]);
    assert_eq!(buf.len(), 100);
    assert!(!buf.is_mutable());
    assert!(buf.is_alive());
}

#[test]
fn from_bytes_of_empty_is_null_buffer() {
    let mut src: [u8; 0] = [];
    assert!(matches!(
        LockedBuffer::from_bytes(&mut src),
        Err(Error::NullBuffer)
    ));
    assert_eq!(src.len(), 0);
}

// ---------------------------------------------------------------------------
// from_reader
// ---------------------------------------------------------------------------

#[test]
fn from_reader_reads_exactly_size_and_freezes() {
    let data = pattern(10_000, 2);
    let mut src = &data[..];
    let buf = LockedBuffer::from_reader(&mut src, 6_000).unwrap();
    assert!(buf.equal_to(&data[..6_000]));
    assert!(!buf.is_mutable());
    assert_eq!(src, &data[6_000..], "read past the requested size");

    let exact = LockedBuffer::from_reader(&data[..], data.len()).unwrap();
    assert!(exact.equal_to(&data));

    let chunked = LockedBuffer::from_reader(ChunkReader::new(data.clone(), 7), 9_999).unwrap();
    assert!(chunked.equal_to(&data[..9_999]));
}

#[test]
fn from_reader_of_short_source_is_unexpected_eof_with_count() {
    let data = pattern(10, 3);
    match LockedBuffer::from_reader(&data[..], 20) {
        Err(Error::Io { read, source }) => {
            assert_eq!(read, 10);
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    match LockedBuffer::from_reader(ChunkReader::new(data, 3), 11) {
        Err(Error::Io { read, source }) => {
            assert_eq!(read, 10);
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn from_reader_passes_on_the_readers_error_with_count() {
    let reader = FailingReader {
        data: pattern(10, 4),
        pos: 0,
        chunk: 3,
        kind: io::ErrorKind::PermissionDenied,
    };
    match LockedBuffer::from_reader(reader, 20) {
        Err(Error::Io { read, source }) => {
            assert_eq!(read, 10);
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            assert!(source.to_string().contains("the test reader broke"));
        }
        other => panic!("expected Io, got {other:?}"),
    }
    let at_once = FailingReader {
        data: Vec::new(),
        pos: 0,
        chunk: 1,
        kind: io::ErrorKind::BrokenPipe,
    };
    assert!(matches!(
        LockedBuffer::from_reader(at_once, 5),
        Err(Error::Io { read: 0, ref source }) if source.kind() == io::ErrorKind::BrokenPipe
    ));
}

#[test]
fn from_reader_of_a_reader_that_always_returns_zero_errors_not_hangs() {
    let mut silent = Silent { calls: 0 };
    match LockedBuffer::from_reader(&mut silent, 16) {
        Err(Error::Io { read: 0, source }) => {
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof)
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(silent.calls, 1);
}

#[test]
fn from_reader_retries_interrupted_reads() {
    let data = pattern(64, 5);
    let reader = Interrupting {
        interrupts: 5,
        data: io::Cursor::new(data.clone()),
    };
    let buf = LockedBuffer::from_reader(reader, 64).unwrap();
    assert!(buf.equal_to(&data));
    assert!(!buf.is_mutable());
}

#[test]
fn from_reader_of_size_zero_is_null_buffer_and_reads_nothing() {
    assert!(matches!(
        LockedBuffer::from_reader(Untouchable, 0),
        Err(Error::NullBuffer)
    ));
    assert!(matches!(
        LockedBuffer::from_reader(Untouchable, usize::MAX),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn from_reader_of_a_reader_claiming_too_many_bytes_errors_not_panics() {
    for (honest, extra) in [(0, 1), (5, 1), (5, usize::MAX), (0, 1_000_000)] {
        let liar = Liar {
            honest,
            served: 0,
            extra,
        };
        match LockedBuffer::from_reader(liar, 16) {
            Err(Error::Io { read, source }) => {
                assert_eq!(read, honest);
                assert_eq!(source.kind(), io::ErrorKind::InvalidData);
            }
            other => panic!("honest {honest} extra {extra}: expected Io, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// from_entire_reader
// ---------------------------------------------------------------------------

#[test]
fn from_entire_reader_small_and_page_boundaries() {
    let p = page();
    // Includes lengths whose grown buffer ends up with more than a page of
    // slack (2 * p, 2 * p + 1, 4 * p), which once panicked.
    for (i, len) in [
        1,
        7,
        100,
        p - 1,
        p,
        p + 1,
        2 * p - 1,
        2 * p,
        2 * p + 1,
        3 * p,
        4 * p - 5,
        4 * p,
    ]
    .into_iter()
    .enumerate()
    {
        let data = pattern(len, 10 + i as u32);
        let buf = LockedBuffer::from_entire_reader(&data[..]).unwrap();
        assert_eq!(buf.len(), len);
        assert!(buf.equal_to(&data), "len {len}");
        assert!(!buf.is_mutable(), "len {len}");
        assert!(buf.is_alive());
    }
}

#[test]
fn from_entire_reader_almost_one_mib_in_odd_chunks() {
    // 1 MiB - 1: the buffer grows page, 2 pages, ... 1 MiB and ends with one
    // byte of slack. Exactly 1 MiB is in
    // reading_constructors_handle_more_than_a_page_left_over.
    let data = pattern((1 << 20) - 1, 20);
    let mut reader = ChunkReader::new(data.clone(), 7_000);
    let buf = LockedBuffer::from_entire_reader(&mut reader).unwrap();
    assert_eq!(buf.len(), data.len());
    assert!(buf.equal_to(&data));
    assert_eq!(&*buf.bytes(), &data[..]);
    assert!(!buf.is_mutable());
    assert!(reader.calls > 100, "the chunking reader was not exercised");
}

/// BUG: `Region::shrink_to_prefix` (src/mem/region.rs, the
/// `canary::write(&mut all[..new_start], self.canary)` line) fills the whole
/// slack in front of the shortened data with canary, but the canary pattern
/// is only one page long, and `canary::write` (src/mem/canary.rs:27,
/// `&pattern[pattern.len() - n..]`) underflows when the slack is longer than
/// a page. The reading constructors double their buffer when it fills up,
/// so any input that leaves more than a page unused after the last doubling
/// panics instead of returning a buffer: `from_entire_reader` of exactly
/// 2, 4, 8, ... pages (it doubles once more before seeing the end) or of
/// 2 pages + 1 byte, and `from_reader_until` of 2 pages or more before the
/// delimiter in the same way. (With overflow checks off, the slice index
/// panics instead.)
#[test]
fn reading_constructors_handle_more_than_a_page_left_over() {
    let p = page();
    let mut failures = Vec::new();
    for len in [2 * p, 2 * p + 1, 5 * p, 1 << 20] {
        let data = pattern_without(len, 24, b'\n');
        let entire = std::panic::catch_unwind(|| {
            let buf =
                LockedBuffer::from_entire_reader(ChunkReader::new(data.clone(), 7_000)).unwrap();
            assert!(buf.equal_to(&data));
            assert!(!buf.is_mutable());
        });
        if entire.is_err() {
            failures.push(format!("from_entire_reader of {len} bytes panicked"));
        }
        let until = std::panic::catch_unwind(|| {
            let mut input = data.clone();
            input.extend_from_slice(b"\nrest");
            let mut src = &input[..];
            let buf = LockedBuffer::from_reader_until(&mut src, b'\n').unwrap();
            assert!(buf.equal_to(&data));
            assert_eq!(src, b"rest");
        });
        if until.is_err() {
            failures.push(format!("from_reader_until of {len} bytes panicked"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn from_entire_reader_result_is_aligned_like_any_buffer() {
    let data = pattern(4096 + 8, 21);
    let buf = LockedBuffer::from_entire_reader(ChunkReader::new(data.clone(), 100)).unwrap();
    let words = buf.u64_slice().unwrap();
    for (w, chunk) in words.iter().zip(data.chunks_exact(8)) {
        assert_eq!(*w, u64::from_ne_bytes(chunk.try_into().unwrap()));
    }
}

#[test]
fn from_entire_reader_of_empty_source_is_null_buffer() {
    assert!(matches!(
        LockedBuffer::from_entire_reader(&b""[..]),
        Err(Error::NullBuffer)
    ));
    assert!(matches!(
        LockedBuffer::from_entire_reader(Silent { calls: 0 }),
        Err(Error::NullBuffer)
    ));
}

#[test]
fn from_entire_reader_error_midway_is_io_with_count() {
    for len in [10, 4096, 5000] {
        let reader = FailingReader {
            data: pattern(len, 22),
            pos: 0,
            chunk: 777,
            kind: io::ErrorKind::ConnectionReset,
        };
        match LockedBuffer::from_entire_reader(reader) {
            Err(Error::Io { read, source }) => {
                assert_eq!(read, len);
                assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
            }
            other => panic!("len {len}: expected Io, got {other:?}"),
        }
    }
}

#[test]
fn from_entire_reader_retries_interrupted_and_rejects_liars() {
    let data = pattern(5000, 23);
    let reader = Interrupting {
        interrupts: 3,
        data: io::Cursor::new(data.clone()),
    };
    assert!(LockedBuffer::from_entire_reader(reader)
        .unwrap()
        .equal_to(&data));

    for honest in [0, 10, 4096] {
        let liar = Liar {
            honest,
            served: 0,
            extra: 1,
        };
        match LockedBuffer::from_entire_reader(liar) {
            Err(Error::Io { read, source }) => {
                assert_eq!(read, honest);
                assert_eq!(source.kind(), io::ErrorKind::InvalidData);
            }
            other => panic!("honest {honest}: expected Io, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// from_reader_until
// ---------------------------------------------------------------------------

#[test]
fn from_reader_until_excludes_the_delimiter_and_consumes_nothing_past_it() {
    let mut input = &b"hunter2\nsecond line\n"[..];
    let first = LockedBuffer::from_reader_until(&mut input, b'\n').unwrap();
    assert!(first.equal_to(b"hunter2"));
    assert_eq!(first.len(), 7);
    assert!(!first.is_mutable());
    assert_eq!(input, b"second line\n");
    let second = LockedBuffer::from_reader_until(&mut input, b'\n').unwrap();
    assert!(second.equal_to(b"second line"));
    assert_eq!(input, b"");

    // Through a reader that would hand out everything in one call if asked.
    let mut cursor = io::Cursor::new(b"key=value;rest".to_vec());
    let key = LockedBuffer::from_reader_until(&mut cursor, b'=').unwrap();
    assert!(key.equal_to(b"key"));
    assert_eq!(cursor.position(), 4);
    let mut rest = Vec::new();
    cursor.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"value;rest");
}

#[test]
fn from_reader_until_eof_without_delimiter_returns_what_was_read() {
    let buf = LockedBuffer::from_reader_until(&b"no newline"[..], b'\n').unwrap();
    assert!(buf.equal_to(b"no newline"));
    assert!(!buf.is_mutable());
}

#[test]
fn from_reader_until_delimiter_first_or_empty_is_null_buffer() {
    let mut input = &b"\nafter"[..];
    assert!(matches!(
        LockedBuffer::from_reader_until(&mut input, b'\n'),
        Err(Error::NullBuffer)
    ));
    // Like BufRead::read_until, the delimiter itself is consumed.
    assert_eq!(input, b"after");
    assert!(matches!(
        LockedBuffer::from_reader_until(&b""[..], b'\n'),
        Err(Error::NullBuffer)
    ));
    assert!(matches!(
        LockedBuffer::from_reader_until(Silent { calls: 0 }, 0),
        Err(Error::NullBuffer)
    ));
}

#[test]
fn from_reader_until_long_input_over_two_pages() {
    let p = page();
    // 2 * p up to 3 * p leave more than a page of slack, which once panicked.
    for len in [
        p - 1,
        p,
        p + 1,
        2 * p - 1,
        2 * p,
        2 * p + 7,
        3 * p,
        3 * p + 123,
    ] {
        let line = pattern_without(len, 30, b'\n');
        let mut input = line.clone();
        input.push(b'\n');
        input.extend_from_slice(b"tail");
        let mut src = Counting {
            inner: &input[..],
            taken: 0,
        };
        let buf = LockedBuffer::from_reader_until(&mut src, b'\n').unwrap();
        assert_eq!(buf.len(), len);
        assert!(buf.equal_to(&line), "len {len}");
        assert_eq!(src.taken, len + 1, "consumed past the delimiter");
        assert_eq!(src.inner, b"tail");
    }
}

#[test]
fn from_reader_until_passes_on_reader_errors_with_count() {
    for len in [0, 5, 5000] {
        let reader = FailingReader {
            data: pattern_without(len, 31, b';'),
            pos: 0,
            chunk: 3,
            kind: io::ErrorKind::TimedOut,
        };
        match LockedBuffer::from_reader_until(reader, b';') {
            Err(Error::Io { read, source }) => {
                assert_eq!(read, len);
                assert_eq!(source.kind(), io::ErrorKind::TimedOut);
            }
            other => panic!("len {len}: expected Io, got {other:?}"),
        }
    }
    let liar = Liar {
        honest: 3,
        served: 0,
        extra: 1,
    };
    assert!(matches!(
        LockedBuffer::from_reader_until(liar, b'\n'),
        Err(Error::Io { read: 3, .. })
    ));
    let interrupted = Interrupting {
        interrupts: 4,
        data: io::Cursor::new(b"pin\n".to_vec()),
    };
    assert!(LockedBuffer::from_reader_until(interrupted, b'\n')
        .unwrap()
        .equal_to(b"pin"));
}

// ---------------------------------------------------------------------------
// State, bytes, bytes_mut, freeze, melt
// ---------------------------------------------------------------------------

#[test]
fn bytes_mut_writes_through_and_is_refused_when_frozen() {
    let mut buf = LockedBuffer::new(16).unwrap();
    buf.bytes_mut().unwrap().copy_from_slice(&pattern(16, 40));
    assert!(buf.equal_to(&pattern(16, 40)));
    buf.freeze().unwrap();
    assert!(matches!(buf.bytes_mut(), Err(Error::Immutable)));
    assert!(buf.equal_to(&pattern(16, 40)));
    buf.melt().unwrap();
    buf.bytes_mut().unwrap()[0] ^= 0xff;
    assert!(!buf.equal_to(&pattern(16, 40)));
}

#[test]
fn freeze_and_melt_are_idempotent() {
    let data = pattern(50, 41);
    let mut buf = mutable_with(&data);
    assert!(buf.is_mutable());
    buf.melt().unwrap();
    assert!(buf.is_mutable());
    buf.freeze().unwrap();
    assert!(!buf.is_mutable());
    buf.freeze().unwrap();
    assert!(!buf.is_mutable());
    assert!(buf.is_alive());
    assert!(buf.equal_to(&data));
    buf.melt().unwrap();
    buf.melt().unwrap();
    assert!(buf.is_mutable());
    assert!(buf.equal_to(&data));
    buf.wipe().unwrap();
}

#[test]
fn many_readers_at_once() {
    let data = pattern(100, 42);
    let buf = mutable_with(&data);
    let a = buf.bytes();
    let b = buf.bytes();
    let mut r = buf.reader();
    let c = buf.byte_array8().unwrap();
    let d = buf.slice_of::<u8>().unwrap();
    let mut first = [0u8; 4];
    r.read_exact(&mut first).unwrap();
    assert_eq!(&*a, &data[..]);
    assert_eq!(&*b, &data[..]);
    assert_eq!(&first, &data[..4]);
    assert_eq!(&c[..], &data[..8]);
    assert_eq!(&*d, &data[..]);
}

#[test]
fn state_and_access_after_destroy() {
    in_child_process("state_and_access_after_destroy", || {
        let data = pattern(40, 43);
        let mut buf = mutable_with(&data);
        let mut frozen = LockedBuffer::random(40).unwrap();
        memguard::purge();
        for b in [&buf, &frozen] {
            assert!(!b.is_alive());
            assert_eq!(b.len(), 0);
            assert!(b.is_empty());
            assert!(!b.is_mutable());
            assert!(b.bytes().is_empty());
            let mut all = Vec::new();
            b.reader().read_to_end(&mut all).unwrap();
            assert!(all.is_empty());
            assert!(!b.equal_to(&data));
            assert!(!b.equal_to(&[]));
            let dbg = format!("{b:?}");
            assert!(
                dbg.contains("len: 0") && dbg.contains("alive: false"),
                "{dbg}"
            );
        }
        for b in [&mut buf, &mut frozen] {
            assert!(matches!(b.bytes_mut(), Err(Error::Destroyed)));
            assert!(matches!(b.freeze(), Err(Error::Destroyed)));
            assert!(matches!(b.melt(), Err(Error::Destroyed)));
            assert!(matches!(b.copy(b"x"), Err(Error::Destroyed)));
            assert!(matches!(b.copy_at(0, b""), Err(Error::Destroyed)));
            let mut src = *b"keep";
            assert!(matches!(b.move_from(&mut src), Err(Error::Destroyed)));
            assert_eq!(&src, b"keep");
            assert!(matches!(b.move_at(1, &mut src), Err(Error::Destroyed)));
            assert_eq!(&src, b"keep");
            assert!(matches!(b.scramble(), Err(Error::Destroyed)));
            assert!(matches!(b.wipe(), Err(Error::Destroyed)));
            b.zeroize();
            assert!(!b.is_alive());
        }
        // Both destroyed: unequal to each other and to themselves.
        assert!(!bool::from(buf.ct_eq(&frozen)));
        assert!(!bool::from(buf.ct_eq(&buf)));
        let live = mutable_with(&data);
        assert!(!bool::from(live.ct_eq(&buf)));
        assert!(!bool::from(buf.ct_eq(&live)));
        buf.destroy();
        frozen.destroy();
        // New buffers after a purge work normally.
        assert!(live.equal_to(&data));
    });
}

#[test]
fn views_on_a_destroyed_buffer_are_destroyed() {
    in_child_process("views_on_a_destroyed_buffer_are_destroyed", || {
        let mut buf = LockedBuffer::new(64).unwrap();
        memguard::purge();
        assert!(matches!(buf.byte_array8(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array16(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array32(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array64(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array::<3>(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array8_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array16_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array32_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array64_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.byte_array_mut::<3>(), Err(Error::Destroyed)));
        assert!(matches!(buf.u16_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.u32_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.u64_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.i8_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.i16_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.i32_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.i64_slice(), Err(Error::Destroyed)));
        assert!(matches!(buf.u16_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.u32_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.u64_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.i8_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.i16_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.i32_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.i64_slice_mut(), Err(Error::Destroyed)));
        assert!(matches!(buf.slice_of::<u8>(), Err(Error::Destroyed)));
        assert!(matches!(buf.slice_of_mut::<u32>(), Err(Error::Destroyed)));
        assert!(matches!(buf.as_pod::<[u8; 64]>(), Err(Error::Destroyed)));
        assert!(matches!(
            buf.as_pod_mut::<[u64; 8]>(),
            Err(Error::Destroyed)
        ));
        assert!(matches!(buf.as_pod::<Header>(), Err(Error::Destroyed)));
    });
}

// ---------------------------------------------------------------------------
// copy, copy_at, move_from, move_at
// ---------------------------------------------------------------------------

#[test]
fn copy_partial_and_exact() {
    let mut buf = LockedBuffer::new(10).unwrap();
    buf.bytes_mut().unwrap().fill(0xee);
    buf.copy(b"abc").unwrap();
    assert!(buf.equal_to(b"abc\xee\xee\xee\xee\xee\xee\xee"));
    buf.copy(b"0123456789").unwrap();
    assert!(buf.equal_to(b"0123456789"));
    buf.copy(b"").unwrap();
    assert!(buf.equal_to(b"0123456789"));
}

#[test]
fn copy_too_long_is_out_of_range_and_writes_nothing() {
    let data = pattern(10, 50);
    let mut buf = mutable_with(&data);
    match buf.copy(&[1u8; 11]) {
        Err(Error::OutOfRange { offset, len, size }) => {
            assert_eq!((offset, len, size), (0, 11, 10))
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert!(buf.equal_to(&data));
}

#[test]
fn copy_at_offsets() {
    let mut buf = LockedBuffer::new(8).unwrap();
    buf.copy_at(2, b"hi").unwrap();
    assert!(buf.equal_to(b"\0\0hi\0\0\0\0"));
    buf.copy_at(6, b"yo").unwrap();
    assert!(buf.equal_to(b"\0\0hi\0\0yo"));
    buf.copy_at(8, b"").unwrap();
    buf.copy_at(0, b"ABCDEFGH").unwrap();
    assert!(buf.equal_to(b"ABCDEFGH"));

    let before = contents(&buf);
    for (offset, src) in [
        (7usize, &b"xy"[..]),
        (8, b"x"),
        (9, b""),
        (100, b"xyz"),
        (usize::MAX, b"x"),
        (usize::MAX, b""),
        (usize::MAX - 1, b"xyz"),
        (1, b"123456789"),
    ] {
        match buf.copy_at(offset, src) {
            Err(Error::OutOfRange {
                offset: o,
                len,
                size,
            }) => {
                assert_eq!((o, len, size), (offset, src.len(), 8))
            }
            other => panic!("offset {offset}: expected OutOfRange, got {other:?}"),
        }
        assert_eq!(contents(&buf), before, "offset {offset} wrote something");
    }
}

#[test]
fn copy_into_frozen_is_immutable_and_writes_nothing() {
    let data = pattern(8, 51);
    let mut buf = LockedBuffer::from_bytes(&mut data.clone()).unwrap();
    assert!(matches!(buf.copy(b"x"), Err(Error::Immutable)));
    assert!(matches!(buf.copy_at(4, b"yz"), Err(Error::Immutable)));
    assert!(buf.equal_to(&data));
}

#[test]
fn move_from_and_move_at_wipe_the_source_on_success() {
    let mut buf = LockedBuffer::new(8).unwrap();
    let mut src = *b"1234";
    buf.move_from(&mut src).unwrap();
    assert_eq!(src, [0u8; 4]);
    assert!(buf.equal_to(b"1234\0\0\0\0"));
    let mut tail = *b"wxyz";
    buf.move_at(4, &mut tail).unwrap();
    assert_eq!(tail, [0u8; 4]);
    assert!(buf.equal_to(b"1234wxyz"));
    let mut empty: [u8; 0] = [];
    buf.move_at(8, &mut empty).unwrap();
}

#[test]
fn move_failures_leave_source_and_buffer_untouched() {
    let data = pattern(8, 52);
    let mut buf = mutable_with(&data);
    let mut too_long = *b"123456789";
    assert!(matches!(
        buf.move_from(&mut too_long),
        Err(Error::OutOfRange {
            offset: 0,
            len: 9,
            size: 8
        })
    ));
    assert_eq!(&too_long, b"123456789");
    let mut src = *b"abc";
    assert!(matches!(
        buf.move_at(6, &mut src),
        Err(Error::OutOfRange {
            offset: 6,
            len: 3,
            size: 8
        })
    ));
    assert!(matches!(
        buf.move_at(usize::MAX, &mut src),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(&src, b"abc");
    assert!(buf.equal_to(&data));
    buf.freeze().unwrap();
    assert!(matches!(buf.move_from(&mut src), Err(Error::Immutable)));
    assert!(matches!(buf.move_at(1, &mut src), Err(Error::Immutable)));
    assert_eq!(&src, b"abc");
    assert!(buf.equal_to(&data));
}

// ---------------------------------------------------------------------------
// equal_to, ConstantTimeEq
// ---------------------------------------------------------------------------

#[test]
fn equal_to_compares_contents_and_length() {
    let buf = mutable_with(b"secret");
    assert!(buf.equal_to(b"secret"));
    assert!(!buf.equal_to(b"secreT"));
    assert!(!buf.equal_to(b"Secret"));
    assert!(!buf.equal_to(b"secre"));
    assert!(!buf.equal_to(b"secrets"));
    assert!(!buf.equal_to(b""));
    let one_bit_off: Vec<u8> = b"secret".iter().map(|&b| b ^ 0x01).collect();
    assert!(!buf.equal_to(&one_bit_off));
}

#[test]
fn constant_time_eq_between_buffers() {
    let a = mutable_with(b"same bytes");
    let b = LockedBuffer::from_bytes(&mut b"same bytes".to_vec()).unwrap();
    let c = mutable_with(b"same bytez");
    let d = mutable_with(b"same byte");
    assert!(bool::from(a.ct_eq(&b)));
    assert!(bool::from(b.ct_eq(&a)));
    assert!(bool::from(a.ct_eq(&a)));
    assert!(!bool::from(a.ct_eq(&c)));
    assert!(!bool::from(a.ct_eq(&d)));
    assert!(!bool::from(d.ct_eq(&a)));
}

// ---------------------------------------------------------------------------
// scramble, wipe, Zeroize
// ---------------------------------------------------------------------------

#[test]
fn scramble_and_wipe() {
    let mut buf = LockedBuffer::new(64).unwrap();
    buf.scramble().unwrap();
    let first = contents(&buf);
    assert_ne!(first, vec![0u8; 64]);
    buf.scramble().unwrap();
    assert_ne!(contents(&buf), first);
    assert!(buf.is_mutable());
    buf.wipe().unwrap();
    assert!(buf.equal_to(&[0u8; 64]));
    assert!(buf.is_alive() && buf.is_mutable());
    assert_eq!(buf.len(), 64);
}

#[test]
fn scramble_and_wipe_of_frozen_are_immutable() {
    let mut buf = LockedBuffer::random(32).unwrap();
    let before = contents(&buf);
    assert!(matches!(buf.scramble(), Err(Error::Immutable)));
    assert!(matches!(buf.wipe(), Err(Error::Immutable)));
    assert_eq!(contents(&buf), before);
    assert!(!buf.is_mutable());
}

#[test]
fn zeroize_wipes_even_a_frozen_buffer_and_keeps_it_frozen() {
    let mut frozen = LockedBuffer::from_bytes(&mut pattern(100, 60)).unwrap();
    frozen.zeroize();
    assert!(frozen.equal_to(&[0u8; 100]));
    assert!(!frozen.is_mutable());
    assert!(frozen.is_alive());
    assert!(matches!(frozen.wipe(), Err(Error::Immutable)));

    let mut mutable = mutable_with(&pattern(100, 61));
    mutable.zeroize();
    assert!(mutable.equal_to(&[0u8; 100]));
    assert!(mutable.is_mutable());
}

#[test]
fn scramble_bytes_and_wipe_bytes_free_functions() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    memguard::scramble_bytes(&mut a).unwrap();
    memguard::scramble_bytes(&mut b).unwrap();
    assert_ne!(a, [0u8; 32]);
    assert_ne!(a, b);
    memguard::scramble_bytes(&mut []).unwrap();
    let mut big = vec![0u8; 100_000];
    memguard::scramble_bytes(&mut big).unwrap();
    assert!(big.iter().filter(|&&x| x == 0).count() < 1_000);

    memguard::wipe_bytes(&mut a);
    assert_eq!(a, [0u8; 32]);
    memguard::wipe_bytes(&mut big);
    assert!(big.iter().all(|&x| x == 0));
    memguard::wipe_bytes(&mut []);
}

// ---------------------------------------------------------------------------
// reader
// ---------------------------------------------------------------------------

#[test]
fn reader_reads_all_bytes_and_seeks() {
    let data = pattern(10_000, 70);
    let buf = LockedBuffer::from_bytes(&mut data.clone()).unwrap();
    let mut all = Vec::new();
    buf.reader().read_to_end(&mut all).unwrap();
    assert_eq!(all, data);

    let mut r = buf.reader();
    r.seek(SeekFrom::Start(9_990)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[9_990..]);
    r.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(r.fill_buf().unwrap(), &data[..]);
    r.consume(10);
    let mut ten = [0u8; 10];
    r.read_exact(&mut ten).unwrap();
    assert_eq!(&ten, &data[10..20]);
    assert_eq!(r.get_ref().len(), data.len());
}

// ---------------------------------------------------------------------------
// Typed views
// ---------------------------------------------------------------------------

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, memguard::bytemuck::Zeroable, memguard::bytemuck::Pod,
)]
#[bytemuck(crate = "memguard::bytemuck")]
#[repr(C)]
struct Header {
    id: u32,
    flags: u16,
    kind: u16,
    nonce: [u8; 8],
}

fn header_from(bytes: &[u8]) -> Header {
    Header {
        id: u32::from_ne_bytes(bytes[0..4].try_into().unwrap()),
        flags: u16::from_ne_bytes(bytes[4..6].try_into().unwrap()),
        kind: u16::from_ne_bytes(bytes[6..8].try_into().unwrap()),
        nonce: bytes[8..16].try_into().unwrap(),
    }
}

#[test]
fn byte_arrays_view_the_first_n_bytes() {
    let data = pattern(64, 80);
    let buf = LockedBuffer::from_bytes(&mut data.clone()).unwrap();
    assert_eq!(&*buf.byte_array8().unwrap(), &data[..8]);
    assert_eq!(&*buf.byte_array16().unwrap(), &data[..16]);
    assert_eq!(&*buf.byte_array32().unwrap(), &data[..32]);
    assert_eq!(&*buf.byte_array64().unwrap(), &data[..64]);
    assert_eq!(&*buf.byte_array::<3>().unwrap(), &data[..3]);
    assert_eq!(&*buf.byte_array::<64>().unwrap(), &data[..]);
    assert_eq!(buf.byte_array::<0>().unwrap().len(), 0);
    match buf.byte_array::<65>() {
        Err(Error::OutOfRange { offset, len, size }) => {
            assert_eq!((offset, len, size), (0, 65, 64))
        }
        other => panic!("expected OutOfRange, got {other:?}"),
    };
}

#[test]
fn byte_arrays_on_a_short_buffer_are_out_of_range() {
    let mut buf = LockedBuffer::new(20).unwrap();
    assert!(buf.byte_array8().is_ok());
    assert!(buf.byte_array16().is_ok());
    assert!(matches!(
        buf.byte_array32(),
        Err(Error::OutOfRange {
            offset: 0,
            len: 32,
            size: 20
        })
    ));
    assert!(matches!(
        buf.byte_array64(),
        Err(Error::OutOfRange {
            offset: 0,
            len: 64,
            size: 20
        })
    ));
    assert!(matches!(
        buf.byte_array32_mut(),
        Err(Error::OutOfRange {
            offset: 0,
            len: 32,
            size: 20
        })
    ));
    assert!(matches!(
        buf.byte_array64_mut(),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        buf.byte_array_mut::<21>(),
        Err(Error::OutOfRange { .. })
    ));
    // The failed mutable views released their borrow.
    buf.copy(b"still writable").unwrap();
    buf.freeze().unwrap();
}

#[test]
fn byte_array_mut_views_write_through() {
    let mut buf = LockedBuffer::new(70).unwrap();
    buf.byte_array64_mut().unwrap().fill(4);
    buf.byte_array32_mut().unwrap().fill(3);
    buf.byte_array16_mut().unwrap().fill(2);
    buf.byte_array8_mut().unwrap().fill(1);
    buf.byte_array_mut::<3>().unwrap().copy_from_slice(b"abc");
    let mut expected = vec![0u8; 70];
    expected[..64].fill(4);
    expected[..32].fill(3);
    expected[..16].fill(2);
    expected[..8].fill(1);
    expected[..3].copy_from_slice(b"abc");
    assert!(buf.equal_to(&expected));
    buf.freeze().unwrap();
    assert!(matches!(buf.byte_array8_mut(), Err(Error::Immutable)));
    assert!(matches!(buf.byte_array16_mut(), Err(Error::Immutable)));
    assert!(matches!(buf.byte_array32_mut(), Err(Error::Immutable)));
    assert!(matches!(buf.byte_array64_mut(), Err(Error::Immutable)));
    assert!(matches!(buf.byte_array_mut::<1>(), Err(Error::Immutable)));
    assert!(buf.equal_to(&expected));
}

macro_rules! check_int_slices {
    ($($ty:ty => $get:ident, $get_mut:ident;)*) => {$(
        {
            const W: usize = std::mem::size_of::<$ty>();
            let data = pattern(64, W as u32 + 90);
            let mut buf = mutable_with(&data);
            let expected: Vec<$ty> = data
                .chunks_exact(W)
                .map(|c| <$ty>::from_ne_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(&*buf.$get().unwrap(), &expected[..], stringify!($get));
            assert_eq!(&*buf.slice_of::<$ty>().unwrap(), &expected[..]);
            {
                let mut view = buf.$get_mut().unwrap();
                assert_eq!(view.len(), 64 / W);
                for (i, v) in view.iter_mut().enumerate() {
                    *v = (i as $ty).wrapping_mul(3).wrapping_sub(7);
                }
            }
            let written: Vec<u8> = (0..64 / W)
                .flat_map(|i| (i as $ty).wrapping_mul(3).wrapping_sub(7).to_ne_bytes())
                .collect();
            assert!(buf.equal_to(&written), stringify!($get_mut));
            {
                let mut view = buf.slice_of_mut::<$ty>().unwrap();
                view[0] = <$ty>::MAX;
            }
            assert_eq!(buf.$get().unwrap()[0], <$ty>::MAX);
            buf.freeze().unwrap();
            assert!(matches!(buf.$get_mut(), Err(Error::Immutable)));
            assert!(matches!(buf.slice_of_mut::<$ty>(), Err(Error::Immutable)));
            // Still readable.
            assert_eq!(buf.$get().unwrap().len(), 64 / W);

            if W > 1 {
                // Every length that is not a multiple of the element size.
                for len in (1..=3 * W).filter(|l| l % W != 0) {
                    let mut odd = LockedBuffer::new(len).unwrap();
                    match odd.$get() {
                        Err(Error::Layout { type_name, type_size, type_align, size, .. }) => {
                            assert_eq!(type_name, stringify!($ty));
                            assert_eq!(type_size, W);
                            assert_eq!(type_align, std::mem::align_of::<$ty>());
                            assert_eq!(size, len);
                        }
                        other => panic!("{} of {len} bytes: expected Layout, got {other:?}", stringify!($get)),
                    }
                    assert!(matches!(odd.$get_mut(), Err(Error::Layout { .. })), "len {len}");
                    // The failed view released its borrow.
                    odd.wipe().unwrap();
                }
            }
        }
    )*};
}

#[test]
// The macro's length checks are skipped for 1-byte elements, but clippy
// still sees the `% 1` in their expansion.
#[allow(clippy::modulo_one)]
fn integer_slices_match_native_endian_bytes() {
    check_int_slices! {
        u16 => u16_slice, u16_slice_mut;
        u32 => u32_slice, u32_slice_mut;
        u64 => u64_slice, u64_slice_mut;
        i8 => i8_slice, i8_slice_mut;
        i16 => i16_slice, i16_slice_mut;
        i32 => i32_slice, i32_slice_mut;
        i64 => i64_slice, i64_slice_mut;
    }
}

#[test]
fn i8_slice_works_for_any_length() {
    let data = pattern(13, 99);
    let buf = LockedBuffer::from_bytes(&mut data.clone()).unwrap();
    let view = buf.i8_slice().unwrap();
    let expected: Vec<i8> = data.iter().map(|&b| b as i8).collect();
    assert_eq!(&*view, &expected[..]);
}

/// The reason in a Layout error for a length that is not a multiple of the
/// element size should name the length. Every such buffer is also
/// misaligned (the data ends at a page boundary), and the library reports
/// the alignment instead, which the caller cannot do anything about.
#[test]
fn layout_reason_for_bad_length_names_the_length() {
    let buf = LockedBuffer::new(6).unwrap();
    match buf.u32_slice() {
        Err(Error::Layout { reason, .. }) => assert!(
            reason.contains("multiple") || reason.contains("length"),
            "a 6-byte buffer viewed as [u32] is refused for: {reason:?}"
        ),
        other => panic!("expected Layout, got {other:?}"),
    };
}

#[test]
fn zero_sized_slice_view_is_an_error_not_a_panic() {
    let buf = LockedBuffer::new(8).unwrap();
    assert!(matches!(buf.slice_of::<()>(), Err(Error::Layout { .. })));
}

#[test]
fn pod_views_of_a_repr_c_struct() {
    let data = pattern(16, 100);
    let mut buf = mutable_with(&data);
    let expected = header_from(&data);
    assert_eq!(*buf.as_pod::<Header>().unwrap(), expected);
    {
        let mut h = buf.as_pod_mut::<Header>().unwrap();
        h.id = 0xdead_beef;
        h.nonce = *b"noncenon";
    }
    let mut expected_bytes = data.clone();
    expected_bytes[0..4].copy_from_slice(&0xdead_beefu32.to_ne_bytes());
    expected_bytes[8..16].copy_from_slice(b"noncenon");
    assert!(buf.equal_to(&expected_bytes));
    assert_eq!(buf.as_pod::<Header>().unwrap().id, 0xdead_beef);
    buf.freeze().unwrap();
    assert!(matches!(buf.as_pod_mut::<Header>(), Err(Error::Immutable)));
    assert_eq!(buf.as_pod::<Header>().unwrap().nonce, *b"noncenon");

    // Arrays of u64 are Pod too.
    let words = LockedBuffer::new(32).unwrap();
    assert_eq!(*words.as_pod::<[u64; 4]>().unwrap(), [0u64; 4]);
}

#[test]
fn slice_of_a_repr_c_struct() {
    let data = pattern(48, 101);
    let mut buf = mutable_with(&data);
    {
        let headers = buf.slice_of::<Header>().unwrap();
        assert_eq!(headers.len(), 3);
        for (h, chunk) in headers.iter().zip(data.chunks_exact(16)) {
            assert_eq!(*h, header_from(chunk));
        }
    }
    buf.slice_of_mut::<Header>().unwrap()[2].kind = 0x0102;
    assert_eq!(buf.slice_of::<Header>().unwrap()[2].kind, 0x0102);
    assert_eq!(&buf.bytes()[38..40], &0x0102u16.to_ne_bytes());
}

#[test]
fn pod_size_mismatch_is_layout() {
    for len in [8, 15, 17, 20, 32] {
        let mut buf = LockedBuffer::new(len).unwrap();
        match buf.as_pod::<Header>() {
            Err(Error::Layout {
                type_name,
                type_size,
                type_align,
                size,
                reason,
            }) => {
                assert!(type_name.ends_with("Header"), "{type_name}");
                assert_eq!((type_size, type_align, size), (16, 4, len));
                assert!(!reason.is_empty());
            }
            other => panic!("len {len}: expected Layout, got {other:?}"),
        }
        assert!(matches!(
            buf.as_pod_mut::<Header>(),
            Err(Error::Layout { .. })
        ));
        if len % 16 != 0 {
            assert!(matches!(
                buf.slice_of::<Header>(),
                Err(Error::Layout { .. })
            ));
            assert!(matches!(
                buf.slice_of_mut::<Header>(),
                Err(Error::Layout { .. })
            ));
        }
        // The failed mutable views released their borrow.
        buf.wipe().unwrap();
    }
    let text = LockedBuffer::new(20)
        .unwrap()
        .as_pod::<Header>()
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("Header") && text.contains("20") && text.contains("16"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Debug never shows the contents
// ---------------------------------------------------------------------------

fn assert_no_secret(text: &str, secret: &[u8]) {
    let ascii = std::str::from_utf8(secret).unwrap();
    let decimal = format!("{secret:?}");
    let decimal_inner = decimal.trim_start_matches('[').trim_end_matches(']');
    let hex_lower: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let hex_upper: String = secret.iter().map(|b| format!("{b:02X}")).collect();
    let pretty = format!("{secret:#?}");
    for needle in [
        ascii,
        &ascii[..6],
        decimal_inner,
        &decimal_inner[..12],
        &hex_lower,
        &hex_lower[..12],
        &hex_upper[..12],
        pretty.lines().nth(1).unwrap().trim(),
    ] {
        assert!(
            !text.contains(needle),
            "Debug output {text:?} contains the secret as {needle:?}"
        );
    }
}

#[test]
fn debug_never_shows_the_secret() {
    const SECRET: &[u8; 16] = b"TOPSECRETxyzzy42";
    let mut buf = mutable_with(SECRET);
    for text in [format!("{buf:?}"), format!("{buf:#?}")] {
        assert_no_secret(&text, SECRET);
        assert!(text.contains("16"), "{text}");
    }
    assert_eq!(
        format!("{buf:?}"),
        "LockedBuffer { len: 16, alive: true, mutable: true, .. }"
    );
    {
        let r = buf.bytes();
        for text in [format!("{r:?}"), format!("{r:#?}")] {
            assert_no_secret(&text, SECRET);
            assert!(text.contains("16"), "{text}");
        }
        let a = buf.byte_array16().unwrap();
        assert_no_secret(&format!("{a:?}"), SECRET);
        assert!(format!("{a:?}").contains("16"));
        let w = buf.u64_slice().unwrap();
        assert_no_secret(&format!("{w:?}"), SECRET);
        let r8 = Ref::map(buf.bytes(), |b| &b[..8]);
        assert!(format!("{r8:?}").contains('8'));
        assert_no_secret(&format!("{r8:?}"), SECRET);
        let reader = buf.reader();
        assert_no_secret(&format!("{reader:?}"), SECRET);
    }
    {
        let m = buf.bytes_mut().unwrap();
        for text in [format!("{m:?}"), format!("{m:#?}")] {
            assert_no_secret(&text, SECRET);
            assert!(text.contains("16"), "{text}");
        }
    }
    {
        let m = buf.byte_array16_mut().unwrap();
        assert_no_secret(&format!("{m:?}"), SECRET);
    }
    buf.freeze().unwrap();
    let text = format!("{buf:?}");
    assert_no_secret(&text, SECRET);
    assert!(text.contains("mutable: false"), "{text}");
}

// ---------------------------------------------------------------------------
// Ref and RefMut
// ---------------------------------------------------------------------------

#[test]
fn ref_map_and_try_map() {
    let mut src = *b"user:secret";
    let mut buf = LockedBuffer::from_bytes(&mut src).unwrap();
    {
        let secret = Ref::map(buf.bytes(), |b| &b[5..]);
        assert_eq!(&*secret, b"secret");
        let narrower = Ref::map(secret, |b| &b[..3]);
        assert_eq!(&*narrower, b"sec");
        assert_eq!(narrower.as_ref(), b"sec");
        let first: Ref<'_, u8> = Ref::map(buf.bytes(), |b| &b[0]);
        assert_eq!(*first, b'u');
    }
    {
        let ok: Result<Ref<'_, [u8; 4]>, &str> =
            Ref::try_map(buf.bytes(), |b| b.first_chunk::<4>().ok_or("short"));
        assert_eq!(&*ok.unwrap(), b"user");
        let err: Result<Ref<'_, [u8; 40]>, &str> =
            Ref::try_map(buf.bytes(), |b| b.first_chunk::<40>().ok_or("short"));
        assert_eq!(err.unwrap_err(), "short");
    }
    // Every borrow was released exactly once: exclusive access works.
    buf.melt().unwrap();
    buf.bytes_mut().unwrap()[0] = b'U';
    assert!(buf.equal_to(b"User:secret"));
    buf.freeze().unwrap();
}

#[test]
fn ref_mut_map_and_try_map() {
    let mut buf = LockedBuffer::new(8).unwrap();
    {
        let mut tail = RefMut::map(buf.bytes_mut().unwrap(), |b| &mut b[4..]);
        tail.fill(7);
        let mut last = RefMut::map(tail, |b| &mut b[3]);
        *last = 9;
        assert_eq!(*last, 9);
    }
    assert!(buf.equal_to(&[0, 0, 0, 0, 7, 7, 7, 9]));
    {
        let ok: Result<RefMut<'_, [u8; 2]>, String> =
            RefMut::try_map(buf.bytes_mut().unwrap(), |b| {
                b.first_chunk_mut::<2>().ok_or_else(|| "short".to_string())
            });
        let mut two = ok.unwrap();
        two.copy_from_slice(b"ab");
        assert_eq!(two.as_ref(), b"ab");
        two.as_mut()[1] = b'B';
    }
    assert!(buf.equal_to(b"aB\0\0\x07\x07\x07\x09"));
    let err: Result<RefMut<'_, [u8; 9]>, String> = RefMut::try_map(buf.bytes_mut().unwrap(), |b| {
        b.first_chunk_mut::<9>().ok_or_else(|| "short".to_string())
    });
    assert_eq!(err.unwrap_err(), "short");
    // The failed try_map released the exclusive borrow.
    buf.wipe().unwrap();
    buf.freeze().unwrap();
    buf.melt().unwrap();
    assert!(buf.equal_to(&[0u8; 8]));
}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<LockedBuffer>();
    assert_send_sync::<Ref<'static, [u8]>>();
    assert_send_sync::<Ref<'static, [u8; 32]>>();
    assert_send_sync::<Ref<'static, [u64]>>();
    assert_send_sync::<RefMut<'static, [u8]>>();
    assert_send_sync::<Error>();
}

#[test]
fn a_buffer_can_be_shared_and_moved_across_threads() {
    let data = pattern(256, 110);
    let buf = LockedBuffer::from_bytes(&mut data.clone()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert_eq!(&*buf.bytes(), &data[..]);
                }
            });
        }
    });
    let moved = std::thread::spawn(move || {
        assert!(buf.equal_to(&data));
        buf
    })
    .join()
    .unwrap();
    assert_eq!(moved.len(), 256);
}

// ---------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------

#[test]
fn error_messages_are_informative() {
    let oor = Error::OutOfRange {
        offset: 7,
        len: 12,
        size: 16,
    }
    .to_string();
    assert!(
        oor.contains('7') && oor.contains("12") && oor.contains("16"),
        "{oor}"
    );
    assert!(oor.contains("nothing was written"), "{oor}");

    let mut buf = LockedBuffer::new(4).unwrap();
    let real = buf.copy_at(3, b"xyz").unwrap_err().to_string();
    assert!(real.contains('3') && real.contains('4'), "{real}");

    assert!(Error::NullBuffer.to_string().contains("at least one byte"));
    assert!(Error::Destroyed.to_string().contains("destroyed"));
    let immutable = Error::Immutable.to_string();
    assert!(
        immutable.contains("frozen") && immutable.contains("melt"),
        "{immutable}"
    );
    let too_large = LockedBuffer::new(usize::MAX).unwrap_err().to_string();
    assert!(too_large.contains(&usize::MAX.to_string()), "{too_large}");

    let io_err = LockedBuffer::from_reader(&b"ab"[..], 5).unwrap_err();
    let text = io_err.to_string();
    assert!(text.contains("after 2 bytes"), "{text}");
    assert!(text.contains("wiped"), "{text}");
    let source = std::error::Error::source(&io_err).expect("Io has a source");
    assert!(source.to_string().contains("2 of 5"), "{source}");

    let layout = LockedBuffer::new(3)
        .unwrap()
        .u16_slice()
        .unwrap_err()
        .to_string();
    assert!(layout.contains("u16") && layout.contains('3'), "{layout}");

    assert!(Error::HardeningAlreadyApplied
        .to_string()
        .contains("disable_process_hardening"));
}

#[test]
fn errors_convert_to_io_errors_with_sensible_kinds() {
    let cases: Vec<(Error, io::ErrorKind)> = vec![
        (Error::NullBuffer, io::ErrorKind::InvalidInput),
        (Error::Destroyed, io::ErrorKind::InvalidInput),
        (Error::Immutable, io::ErrorKind::InvalidInput),
        (
            Error::OutOfRange {
                offset: 1,
                len: 2,
                size: 2,
            },
            io::ErrorKind::InvalidInput,
        ),
        (Error::TooLarge { size: 1 }, io::ErrorKind::OutOfMemory),
        (Error::DecryptionFailed, io::ErrorKind::InvalidData),
        (Error::Busy, io::ErrorKind::Other),
    ];
    for (e, kind) in cases {
        let shown = e.to_string();
        let io_err: io::Error = e.into();
        assert_eq!(io_err.kind(), kind, "{shown}");
        assert_eq!(io_err.to_string(), shown);
    }
    let short = LockedBuffer::from_reader(&b"a"[..], 2).unwrap_err();
    let io_err: io::Error = short.into();
    assert_eq!(io_err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(matches!(
        io_err.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(Error::Io { read: 1, .. })
    ));
}
