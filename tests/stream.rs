//! Integration tests for `Stream`, the encrypted in-memory queue.
//!
//! `purge` is process-wide (it destroys the session key every stream's
//! chunks are sealed under), so every test here takes [`SERIAL`] first.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use memguard::{Error, Stream, DEFAULT_CHUNK_SIZE};

mod support;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// Stream can be shared between threads and moved to another one.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Stream>();
    send_sync::<&Stream>();
};

/// A small deterministic pseudo-random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `range` (which must not be empty).
    fn below(&mut self, range: std::ops::Range<usize>) -> usize {
        range.start + (self.next() % (range.end - range.start) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// The bytes at `position..position + n` of a fixed pattern.
fn pattern(position: usize, n: usize) -> Vec<u8> {
    (position..position + n)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The `memguard::Error` inside an `io::Error` from a Stream.
fn inner(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>())
}

#[test]
fn default_debug_and_basics() {
    let _serial = serial();
    let mut s = Stream::default();
    assert_eq!(s.chunk_size(), DEFAULT_CHUNK_SIZE);
    assert_eq!(DEFAULT_CHUNK_SIZE, 16 * 1024);
    assert!(s.is_empty());
    assert_eq!(s.len(), 0);
    assert_eq!(s.chunk_count(), 0);
    assert_eq!(
        format!("{s:?}"),
        "Stream { len: 0, chunks: 0, chunk_size: 16384 }"
    );
    assert_eq!(
        format!("{:?}", Stream::new()),
        format!("{:?}", Stream::default())
    );

    s.write_all(b"top secret value").unwrap();
    let debug = format!("{s:?}");
    assert_eq!(debug, "Stream { len: 16, chunks: 1, chunk_size: 16384 }");
    let pretty = format!("{s:#?}");
    for shown in [&debug, &pretty] {
        assert!(
            !shown.contains("secret") && !shown.contains("top"),
            "{shown}"
        );
    }
    // An empty write queues nothing.
    assert_eq!(s.write(&[]).unwrap(), 0);
    assert_eq!(s.chunk_count(), 1);
    assert!(s.drain().unwrap().equal_to(b"top secret value"));
    assert!(matches!(s.drain(), Err(Error::NullBuffer)));
    assert!(s.next_chunk().unwrap().is_none());
}

/// What a stream should hold: the bytes, and the unread size of each chunk.
#[derive(Default)]
struct Model {
    bytes: VecDeque<u8>,
    chunks: VecDeque<usize>,
}

impl Model {
    fn write(&mut self, data: &[u8], chunk_size: usize) {
        self.bytes.extend(data);
        self.chunks.extend(data.chunks(chunk_size).map(<[u8]>::len));
    }

    /// Takes `n` bytes from the front.
    fn take(&mut self, mut n: usize) -> Vec<u8> {
        let out: Vec<u8> = self.bytes.drain(..n).collect();
        while n > 0 {
            let front = self.chunks.front_mut().expect("model chunk");
            let k = n.min(*front);
            *front -= k;
            n -= k;
            if *front == 0 {
                self.chunks.pop_front();
            }
        }
        out
    }
}

fn check_against(s: &Stream, m: &Model, step: usize) {
    assert_eq!(s.len(), m.bytes.len(), "len at step {step}");
    assert_eq!(s.is_empty(), m.bytes.is_empty(), "is_empty at step {step}");
    assert_eq!(
        s.chunk_count(),
        m.chunks.len(),
        "chunk_count at step {step}"
    );
}

/// Runs `steps` random operations on a stream with chunks of `chunk_size`
/// and on the model, comparing them after each one, then drains both.
/// Reads take 1 to `max_read` bytes.
fn random_operations(
    chunk_size: usize,
    steps: usize,
    max_write: usize,
    max_read: usize,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let mut s = Stream::with_chunk_size(chunk_size);
    assert_eq!(s.chunk_size(), chunk_size);
    let mut m = Model::default();
    let mut read_buf = vec![0u8; max_read];
    for step in 0..steps {
        match rng.below(0..10) {
            // write_all, sometimes through &Stream
            0..=3 => {
                let len = rng.below(0..max_write);
                let data = rng.bytes(len);
                if rng.below(0..2) == 0 {
                    s.write_all(&data).unwrap();
                } else {
                    (&s).write_all(&data).unwrap();
                }
                m.write(&data, chunk_size);
            }
            // move_from: the source is wiped
            4 => {
                let len = rng.below(0..max_write);
                let data = rng.bytes(len);
                let mut src = data.clone();
                s.move_from(&mut src).unwrap();
                assert!(src.iter().all(|&b| b == 0), "move_from wiped, step {step}");
                m.write(&data, chunk_size);
            }
            // read with a buffer of 1..=max_read bytes
            5..=7 => {
                let want = rng.below(1..max_read + 1);
                let buf = &mut read_buf[..want];
                let n = s.read(buf).unwrap();
                assert_eq!(n, want.min(m.bytes.len()), "read size at step {step}");
                let expected = m.take(n);
                assert!(buf[..n] == expected[..], "read bytes at step {step}");
            }
            // next_chunk: exactly the front chunk's unread part
            8 => match s.next_chunk().unwrap() {
                None => assert!(m.bytes.is_empty(), "None at step {step}"),
                Some(chunk) => {
                    let n = m.chunks.front().copied().expect("model has a chunk");
                    assert_eq!(chunk.len(), n, "chunk length at step {step}");
                    assert!(chunk.len() <= chunk_size);
                    assert!(!chunk.is_mutable());
                    assert!(chunk.equal_to(&m.take(n)), "chunk bytes at step {step}");
                }
            },
            // an empty read takes nothing
            _ => {
                assert_eq!(s.read(&mut []).unwrap(), 0);
            }
        }
        check_against(&s, &m, step);
    }
    let rest: Vec<u8> = m.bytes.iter().copied().collect();
    match s.drain() {
        Ok(all) => assert!(all.equal_to(&rest), "drain"),
        Err(Error::NullBuffer) => assert!(rest.is_empty(), "drain of a non-empty stream"),
        Err(e) => panic!("drain: {e}"),
    }
    assert!(s.is_empty());
    assert_eq!(s.chunk_count(), 0);
}

#[test]
fn random_operations_match_a_vec_model_with_one_byte_chunks() {
    let _serial = serial();
    // One seal per byte: fewer and smaller writes keep this quick.
    random_operations(1, 400, 300, 20_000, 0x1234_5678_9ABC_DEF1);
}

#[test]
fn random_operations_match_a_vec_model_with_seven_byte_chunks() {
    let _serial = serial();
    random_operations(7, 600, 5000, 20_000, 0x0F0F_1234_AAAA_5555);
}

#[test]
fn random_operations_match_a_vec_model_with_4096_byte_chunks() {
    let _serial = serial();
    random_operations(4096, 3000, 5000, 20_000, 0xDEAD_BEEF_0000_0001);
}

#[test]
fn random_operations_match_a_vec_model_with_default_chunks() {
    let _serial = serial();
    random_operations(
        DEFAULT_CHUNK_SIZE,
        3000,
        5000,
        20_000,
        0x5EED_0000_0000_0042,
    );
}

/// Small reads leave the front chunk partly read most of the time, so that
/// `next_chunk`, `drain` and writes meet it.
#[test]
fn random_small_reads_match_a_vec_model_with_1000_byte_chunks() {
    let _serial = serial();
    random_operations(1000, 3000, 3000, 40, 0xA5A5_0000_1111_2222);
}

#[test]
fn random_small_reads_match_a_vec_model_with_default_chunks() {
    let _serial = serial();
    random_operations(DEFAULT_CHUNK_SIZE, 1500, 20_000, 700, 0x0BAD_CAFE_0000_0007);
}

#[test]
fn with_chunk_size_really_applies() {
    let _serial = serial();
    for chunk_size in [1usize, 3, 1000, 4096, DEFAULT_CHUNK_SIZE, 100_000] {
        let mut s = Stream::with_chunk_size(chunk_size);
        assert_eq!(s.chunk_size(), chunk_size);
        let total = 2 * chunk_size + chunk_size / 2 + 1;
        let total = total.min(50_000);
        let data = pattern(0, total);
        s.write_all(&data).unwrap();
        assert_eq!(
            s.chunk_count(),
            total.div_ceil(chunk_size),
            "size {chunk_size}"
        );
        let mut at = 0;
        while let Some(chunk) = s.next_chunk().unwrap() {
            assert!(chunk.len() <= chunk_size, "size {chunk_size}");
            assert!(chunk.len() == chunk_size || at + chunk.len() == total);
            assert!(chunk.equal_to(&data[at..at + chunk.len()]));
            at += chunk.len();
        }
        assert_eq!(at, total);
    }

    // Each write is cut into chunks of its own: small writes are not merged.
    let mut s = Stream::with_chunk_size(8);
    for piece in [&b"abc"[..], b"defghijklm", b"n"] {
        s.write_all(piece).unwrap();
    }
    assert_eq!(s.chunk_count(), 4);
    let sizes: Vec<usize> = std::iter::from_fn(|| s.next_chunk().unwrap())
        .map(|c| c.len())
        .collect();
    assert_eq!(sizes, [3, 8, 2, 1]);

    // 0 is taken as 1.
    let mut s = Stream::with_chunk_size(0);
    assert_eq!(s.chunk_size(), 1);
    s.write_all(b"xyz").unwrap();
    assert_eq!(s.chunk_count(), 3);
}

#[test]
fn a_writer_thread_and_a_reader_thread_share_a_stream() {
    let _serial = serial();
    const TOTAL: usize = 1 << 20;
    let s = Stream::with_chunk_size(4096);
    let done = AtomicBool::new(false);

    /// Sets `done` when dropped, even if the writer panics, so that the
    /// reader cannot wait forever.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }

    let received = std::thread::scope(|scope| {
        scope.spawn(|| {
            let _done = Done(&done);
            let mut rng = Rng(77);
            let mut w: &Stream = &s;
            let mut at = 0;
            while at < TOTAL {
                let n = rng.below(1..9000).min(TOTAL - at);
                w.write_all(&pattern(at, n)).unwrap();
                at += n;
                if rng.below(0..4) == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let reader = scope.spawn(|| {
            let mut r: &Stream = &s;
            let mut got = Vec::with_capacity(TOTAL);
            let mut buf = vec![0u8; 3000];
            let mut empty_reads = 0usize;
            while got.len() < TOTAL {
                // Loaded before the read: if the writer had finished then,
                // an empty read means there is nothing more to come.
                let finished = done.load(Ordering::Acquire);
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    if finished {
                        break;
                    }
                    empty_reads += 1;
                    std::thread::yield_now();
                    continue;
                }
                got.extend_from_slice(&buf[..n]);
            }
            (got, empty_reads)
        });
        reader.join().expect("reader thread")
    });
    let (got, empty_reads) = received;
    assert_eq!(got.len(), TOTAL, "the reader got everything");
    assert!(got == pattern(0, TOTAL), "in order");
    assert!(s.is_empty());
    assert_eq!(s.chunk_count(), 0);
    // Not asserted (scheduling decides), only shown with --nocapture.
    println!("reader found the stream empty {empty_reads} times");
}

/// Whether `e` is `InvalidData` wrapping `Error::DecryptionFailed`.
fn is_decryption_failed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData && matches!(inner(e), Some(Error::DecryptionFailed))
}

/// The bytes written after the purge in [`purged_stream`]: 2.5 chunks.
fn after_purge() -> Vec<u8> {
    pattern(7_000, 250)
}

/// A stream of 100-byte chunks: 1000 bytes written, the first 150 read (so
/// the front chunk is partly read), then a purge, then [`after_purge`]
/// written.
fn purged_stream() -> Stream {
    let mut s = Stream::with_chunk_size(100);
    let data = pattern(0, 1000);
    s.write_all(&data).unwrap();
    let mut first = [0u8; 150];
    s.read_exact(&mut first).unwrap();
    assert_eq!(&first[..], &data[..150]);
    assert_eq!((s.len(), s.chunk_count()), (850, 9));

    memguard::purge();

    // New writes are sealed under the new key, behind the old chunks.
    s.write_all(&after_purge()).unwrap();
    assert_eq!((s.len(), s.chunk_count()), (1100, 12));
    s
}

#[test]
fn after_purge_the_first_read_fails_once_then_later_writes_are_read() {
    let _serial = serial();
    let s = purged_stream();
    let mut buf = [0u8; 64];
    let e = (&s).read(&mut buf).unwrap_err();
    assert!(is_decryption_failed(&e), "{e:?}, inner {:?}", inner(&e));
    assert_eq!(buf, [0u8; 64], "nothing was written into the buffer");
    assert_eq!(
        (s.len(), s.chunk_count()),
        (250, 3),
        "every old chunk was dropped at once"
    );
    // Then the later data, in full and in order, len right throughout.
    let mut got = Vec::new();
    loop {
        let n = (&s).read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        assert_eq!(s.len(), 250 - got.len());
    }
    assert_eq!(got, after_purge());
    assert_eq!(s.chunk_count(), 0);

    // read_exact and read_to_end report it the same way.
    let mut s = purged_stream();
    assert!(is_decryption_failed(&s.read_exact(&mut buf).unwrap_err()));
    assert_eq!(s.len(), 250);
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &after_purge()[..64]);

    let mut s = purged_stream();
    let mut all = b"kept".to_vec();
    assert!(is_decryption_failed(&s.read_to_end(&mut all).unwrap_err()));
    assert_eq!(all, b"kept", "nothing appended");
    assert_eq!(s.len(), 250);
    assert_eq!(s.read_to_end(&mut all).unwrap(), 250);
    assert_eq!(all[4..], after_purge()[..]);
    assert!(s.is_empty());

    // An empty read takes nothing and fails nothing, even before the
    // failing chunks are dropped.
    let s = purged_stream();
    assert_eq!((&s).read(&mut []).unwrap(), 0);
    assert_eq!(s.len(), 1100);
}

#[test]
fn after_purge_next_chunk_fails_once_then_returns_the_later_chunks() {
    let _serial = serial();
    let mut s = purged_stream();
    assert!(matches!(s.next_chunk(), Err(Error::DecryptionFailed)));
    assert_eq!((s.len(), s.chunk_count()), (250, 3));
    let expected = after_purge();
    let mut at = 0;
    while let Some(chunk) = s.next_chunk().unwrap() {
        assert!(chunk.equal_to(&expected[at..at + chunk.len()]), "at {at}");
        at += chunk.len();
        assert_eq!(s.len(), 250 - at);
    }
    assert_eq!(at, 250);
}

#[test]
fn after_purge_drain_fails_once_then_returns_the_later_data() {
    let _serial = serial();
    let mut s = purged_stream();
    assert!(matches!(s.drain(), Err(Error::DecryptionFailed)));
    assert_eq!((s.len(), s.chunk_count()), (250, 3));
    assert!(s.drain().unwrap().equal_to(&after_purge()));
    assert!(matches!(s.drain(), Err(Error::NullBuffer)));

    // With nothing written after the purge, the stream ends up empty.
    let mut s = Stream::with_chunk_size(100);
    s.write_all(&pattern(0, 1000)).unwrap();
    memguard::purge();
    assert!(matches!(s.drain(), Err(Error::DecryptionFailed)));
    assert!(s.is_empty());
    assert_eq!(s.chunk_count(), 0);
    assert!(matches!(s.drain(), Err(Error::NullBuffer)));
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    assert!(s.next_chunk().unwrap().is_none());

    // A stream holding only post-purge writes works as usual.
    let data = pattern(0, 1000);
    let mut fresh = Stream::with_chunk_size(100);
    fresh.write_all(&data).unwrap();
    let mut back = Vec::new();
    fresh.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
}

/// Small reads open the front chunk into a guarded buffer; a purge
/// destroys it with its bytes, and the stream goes on past it.
#[test]
fn a_purge_in_the_middle_of_a_partly_read_chunk() {
    let _serial = serial();
    let before = pattern(0, 40_000);
    let after = pattern(40_000, 20_000);
    let setup = || {
        let s = Stream::new();
        (&s).write_all(&before).unwrap();
        let mut one = [0u8; 1];
        for &expected in &before[..100] {
            (&s).read_exact(&mut one).unwrap();
            assert_eq!(one[0], expected);
        }
        assert_eq!((s.len(), s.chunk_count()), (39_900, 3));
        memguard::purge();
        (&s).write_all(&after).unwrap();
        assert_eq!((s.len(), s.chunk_count()), (59_900, 5));
        s
    };

    // Small reads: one failure, then every later byte in order.
    for read_size in [1usize, 3, 7, 64, 4096, DEFAULT_CHUNK_SIZE - 1] {
        let s = setup();
        let mut buf = vec![0u8; read_size];
        let e = (&s).read(&mut buf).unwrap_err();
        assert!(is_decryption_failed(&e), "read size {read_size}: {e:?}");
        assert_eq!((s.len(), s.chunk_count()), (20_000, 2));
        let mut got = Vec::new();
        loop {
            let n = (&s).read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            assert_eq!(s.len(), 20_000 - got.len());
        }
        assert!(got == after, "read size {read_size}");
    }

    let mut s = setup();
    assert!(matches!(s.next_chunk(), Err(Error::DecryptionFailed)));
    assert_eq!((s.len(), s.chunk_count()), (20_000, 2));
    assert!(s
        .next_chunk()
        .unwrap()
        .unwrap()
        .equal_to(&after[..DEFAULT_CHUNK_SIZE]));

    let mut s = setup();
    assert!(matches!(s.drain(), Err(Error::DecryptionFailed)));
    assert_eq!((s.len(), s.chunk_count()), (20_000, 2));
    assert!(s.drain().unwrap().equal_to(&after));
}

/// The opened front chunk is a guarded buffer of its own: made by the
/// first small read; wiped when used up and kept for the next chunk while
/// there is one; dropped (wiped) when the last chunk is used up, when taken
/// by `next_chunk` or `drain`, and with the stream.
#[test]
fn the_opened_front_chunk_lives_only_while_it_is_needed() {
    let _serial = serial();
    let mut s = Stream::with_chunk_size(1000);
    s.write_all(&pattern(0, 5000)).unwrap();
    let live = memguard::live_buffers();
    let mut small = [0u8; 10];
    s.read_exact(&mut small).unwrap();
    assert_eq!(memguard::live_buffers(), live + 1, "opened");
    for _ in 0..98 {
        s.read_exact(&mut small).unwrap();
    }
    assert_eq!(memguard::live_buffers(), live + 1, "still the same one");
    s.read_exact(&mut small[..10]).unwrap();
    assert_eq!(s.len(), 4000);
    assert_eq!(
        memguard::live_buffers(),
        live + 1,
        "used up: kept, wiped, for the next chunk"
    );
    assert_eq!(&small, &pattern(990, 10)[..]);

    s.read_exact(&mut small).unwrap();
    assert_eq!(memguard::live_buffers(), live + 1);
    let front = s.next_chunk().unwrap().unwrap();
    assert!(front.equal_to(&pattern(1010, 990)));
    assert_eq!(memguard::live_buffers(), live + 1, "only the one returned");
    drop(front);

    s.read_exact(&mut small).unwrap();
    assert_eq!(memguard::live_buffers(), live + 1);
    let rest = s.drain().unwrap();
    assert!(rest.equal_to(&pattern(2010, 2990)));
    assert_eq!(memguard::live_buffers(), live + 1, "only the one returned");
    drop(rest);

    s.write_all(&pattern(0, 5000)).unwrap();
    s.read_exact(&mut small).unwrap();
    assert_eq!(memguard::live_buffers(), live + 1);
    drop(s);
    assert_eq!(memguard::live_buffers(), live, "dropped with the stream");

    // Read to the end in small pieces: one buffer serves every chunk, and
    // it goes with the last one.
    let mut s = Stream::with_chunk_size(1000);
    s.write_all(&pattern(0, 5000)).unwrap();
    for at in (0..5000).step_by(10) {
        s.read_exact(&mut small).unwrap();
        assert_eq!(&small, &pattern(at, 10)[..]);
        if at < 4990 {
            assert_eq!(memguard::live_buffers(), live + 1, "at {at}");
        }
    }
    assert_eq!(memguard::live_buffers(), live, "gone with the last chunk");
}

/// Two readers reading 4 bytes at a time while a writer writes 4-byte
/// counters: every read gets one whole counter (chunks and writes are
/// multiples of 4), so each reader sees increasing counters, and together
/// they see every counter once.
#[test]
fn two_small_readers_and_a_writer_share_a_stream() {
    let _serial = serial();
    const COUNT: u32 = 100_000;
    let s = Stream::with_chunk_size(4 * 1000);
    let done = AtomicBool::new(false);
    let read = || {
        let mut r: &Stream = &s;
        let mut got = Vec::new();
        let mut word = [0u8; 4];
        loop {
            let finished = done.load(Ordering::Acquire);
            match r.read(&mut word).unwrap() {
                4 => got.push(u32::from_le_bytes(word)),
                0 if finished => return got,
                0 => std::thread::yield_now(),
                n => panic!("a read of {n} bytes"),
            }
        }
    };
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(read);
        let b = scope.spawn(read);
        let mut rng = Rng(5);
        let mut next = 0u32;
        while next < COUNT {
            let n = (rng.below(1..3000) as u32).min(COUNT - next);
            let bytes: Vec<u8> = (next..next + n).flat_map(u32::to_le_bytes).collect();
            (&s).write_all(&bytes).unwrap();
            next += n;
        }
        done.store(true, Ordering::Release);
        (a.join().expect("reader a"), b.join().expect("reader b"))
    });
    for got in [&a, &b] {
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    }
    let mut all: Vec<u32> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert!(all == (0..COUNT).collect::<Vec<_>>(), "every counter once");
    assert!(s.is_empty());
    println!("reader a: {} counters, reader b: {}", a.len(), b.len());
}

#[test]
fn move_from_wipes_the_source_and_write_does_not() {
    let _serial = serial();
    let mut s = Stream::with_chunk_size(4);
    let mut secret = *b"move me";
    s.move_from(&mut secret).unwrap();
    assert_eq!(secret, [0u8; 7]);
    assert_eq!((s.len(), s.chunk_count()), (7, 2));

    let public = *b" copy me";
    s.write_all(&public).unwrap();
    assert_eq!(&public, b" copy me");
    (&s).write_all(&public).unwrap();
    assert_eq!(&public, b" copy me");

    // An empty move queues nothing and fails nothing.
    s.move_from(&mut []).unwrap();
    assert_eq!(s.len(), 23);
    assert!(s.drain().unwrap().equal_to(b"move me copy me copy me"));
}

#[test]
fn a_partial_read_keeps_the_rest_at_the_front() {
    let _serial = serial();
    let mut s = Stream::with_chunk_size(10);
    s.write_all(b"0123456789abcdefghijKLMNO").unwrap();
    assert_eq!(s.chunk_count(), 3);

    let mut four = [0u8; 4];
    assert_eq!(s.read(&mut four).unwrap(), 4);
    assert_eq!(&four, b"0123");
    assert_eq!((s.len(), s.chunk_count()), (21, 3));

    // A read across a chunk boundary: the rest of the first chunk, then part
    // of the second.
    let mut eight = [0u8; 8];
    assert_eq!(s.read(&mut eight).unwrap(), 8);
    assert_eq!(&eight, b"456789ab");
    assert_eq!((s.len(), s.chunk_count()), (13, 2));

    let front = s
        .next_chunk()
        .unwrap()
        .expect("the rest of the second chunk");
    assert!(front.equal_to(b"cdefghij"));
    assert!(!front.is_mutable(), "next_chunk gives a frozen buffer");
    assert_eq!((s.len(), s.chunk_count()), (5, 1));
    let last = s.next_chunk().unwrap().unwrap();
    assert!(last.equal_to(b"KLMNO"));
    assert!(s.next_chunk().unwrap().is_none());
}

#[test]
fn reading_into_an_empty_buffer_takes_nothing() {
    let _serial = serial();
    let mut s = Stream::with_chunk_size(5);
    assert_eq!(s.read(&mut []).unwrap(), 0, "empty stream");
    s.write_all(b"keep all of this").unwrap();
    let before = (s.len(), s.chunk_count());
    for _ in 0..3 {
        assert_eq!(s.read(&mut []).unwrap(), 0);
        assert_eq!((&s).read(&mut []).unwrap(), 0);
        assert_eq!((s.len(), s.chunk_count()), before);
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"keep all of this");
    // At the end, a read gives Ok(0).
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
}

/// A read that spans several chunks opens them one by one. When a purge
/// lands in the middle of it, the chunks already read must be returned
/// (`Ok(n)`), as the `Read` contract wants ("if an error is returned then no
/// bytes were read"); the rest can never be opened, and the next read
/// reports that once and drops them. It once returned `Err` after taking
/// chunks out.
#[test]
fn a_purge_during_a_read_loses_nothing() {
    let _serial = serial();
    const TOTAL: usize = 4 << 20;
    // Small chunks, so that one read opens many of them one after another.
    let s = Stream::with_chunk_size(1024);
    let mut at = 0;
    while at < TOTAL {
        (&s).write_all(&pattern(at, 64 * 1024)).unwrap();
        at += 64 * 1024;
    }
    let started = AtomicBool::new(false);
    let (outcome, len_after) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut buf = vec![0u8; TOTAL];
            started.store(true, Ordering::Release);
            let outcome = (&s).read(&mut buf);
            (outcome, s.len())
        });
        while !started.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // Opening 4 MiB takes far longer than this (hundreds of ms in a
        // debug build), so the purge lands while the read is going on.
        std::thread::sleep(std::time::Duration::from_millis(20));
        memguard::purge();
        reader.join().expect("reader thread")
    });
    match outcome {
        // The purge came before the first chunk was opened: every chunk
        // fails, and all of them are dropped.
        Err(e) => {
            assert!(is_decryption_failed(&e), "{e:?}");
            assert_eq!(len_after, 0);
        }
        // A short read of what could be opened; the rest is still counted,
        // and the next read drops it.
        Ok(n) => {
            assert_eq!(n + len_after, TOTAL);
            if len_after > 0 {
                let mut buf = [0u8; 16];
                assert!(is_decryption_failed(&(&s).read(&mut buf).unwrap_err()));
            }
        }
    }
    assert_eq!((&s).read(&mut [0u8; 16]).unwrap(), 0);
    assert!(s.is_empty());
}

// ---------------------------------------------------------------------------
// From outside: a purge wipes the chunk a small reader holds open
// ---------------------------------------------------------------------------

/// The chunk size of [`a_purge_wipes_the_opened_chunk_seen_from_outside`].
#[cfg(target_os = "linux")]
const OUTSIDE_CHUNK: usize = 256;

/// The child of [`a_purge_wipes_the_opened_chunk_seen_from_outside`]: a
/// random secret made in guarded memory, written to a stream of three
/// chunks; two 1-byte reads (the first opens the front chunk into a guarded
/// buffer, the second reads it under the owner's lease); then a purge. It
/// prints the positive control (the secret XOR 0x5a, in hex) and stops
/// after each stage until the parent, which scans it, sends a byte.
#[cfg(target_os = "linux")]
fn outside_child() {
    use memguard::LockedBuffer;
    use memguard_testkit::child::mark;
    use memguard_testkit::scan::hex;

    let wait = |stage: &str| {
        mark(&format!("STAGE {stage}"));
        let mut go = [0u8; 1];
        std::io::stdin()
            .read_exact(&mut go)
            .expect("the parent's go");
    };
    let mut secret = LockedBuffer::random(3 * OUTSIDE_CHUNK).expect("a random secret");
    let control = support::control_copy(&mut secret);
    let mut s = Stream::with_chunk_size(OUTSIDE_CHUNK);
    s.write_all(&secret.bytes()).expect("write");
    drop(secret);
    let mut one = [0u8; 1];
    s.read_exact(&mut one).expect("the first byte");
    s.read_exact(&mut one)
        .expect("the second byte, under the lease");
    mark(&format!("CONTROL {}", hex(&control)));
    wait("opened");
    memguard::purge();
    wait("purged");
    std::hint::black_box((&s, &control));
}

/// Issue 11, as an attacker who reads a process's memory sees it: while a
/// small reader is part-way through a chunk, that chunk (and only it) is
/// in plaintext, in locked memory left out of dumps; right after a purge,
/// with the stream still alive and the chunk's buffer leased to it, no
/// part of the secret is anywhere in the process. Runs on anonymous
/// memory, which root can read (secret memory would hide the opened chunk
/// from the scan as well, and the first check would fail).
#[test]
#[cfg(target_os = "linux")]
fn a_purge_wipes_the_opened_chunk_seen_from_outside() {
    use memguard_testkit::child::{child_command, role, Live, Role};
    use memguard_testkit::procfs::{mapping_of, read_smaps};
    use memguard_testkit::scan::{scan, Needle};
    use std::time::Duration;

    const TEST: &str = "a_purge_wipes_the_opened_chunk_seen_from_outside";
    match role(TEST) {
        Role::Bystander => return,
        Role::Child(_) => return outside_child(),
        Role::Parent => {}
    }
    let _serial = serial();
    let mut cmd = child_command(TEST, &format!("{TEST}/run"));
    cmd.env("MEMGUARD_MEMORY_BACKEND", "anonymous");
    let mut child = Live::start(&mut cmd, Duration::from_secs(60)).expect("spawn the child");
    let pid = child.id() as i32;
    // The text after `prefix` on the first line that has it (libtest's
    // "test <name> ... " may begin the child's first line).
    let wait_for = |child: &mut Live, prefix: &str| -> String {
        child
            .wait_for(|lines| {
                let at = lines.find(prefix)?;
                let rest = &lines[at + prefix.len()..];
                Some(rest.lines().next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|why| {
                panic!(
                    "no {prefix:?} from the child ({why:?}); it printed:\n{}\n{}",
                    child.stdout_text(),
                    child.stderr_text()
                )
            })
    };

    let control_hex = wait_for(&mut child, "CONTROL ");
    let control: Vec<u8> = (0..control_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&control_hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(control.len(), 3 * OUTSIDE_CHUNK, "the control's length");
    let secret: Vec<u8> = control.iter().map(|b| b ^ support::CONTROL_XOR).collect();
    let needles = [
        Needle {
            name: "the front chunk, past the two bytes read",
            bytes: &secret[2..OUTSIDE_CHUNK],
        },
        Needle {
            name: "the two chunks still sealed",
            bytes: &secret[OUTSIDE_CHUNK..],
        },
        Needle {
            name: "control (secret ^ 0x5a, in an ordinary Vec)",
            bytes: &control,
        },
    ];
    for stage in ["opened", "purged"] {
        wait_for(&mut child, &format!("STAGE {stage}"));
        let found = scan(pid, &needles).unwrap_or_else(|e| panic!("scan at {stage}: {e}"));
        let [front, sealed, ctl] = &found.found[..] else {
            panic!("three needles, three results")
        };
        assert!(
            !ctl.whole.is_empty(),
            "{stage}: the positive control was not found, so the scan cannot be trusted\n{}",
            found.summary()
        );
        assert!(
            sealed.hits.is_empty(),
            "{stage}: chunks never read are in plaintext\n{}",
            found.summary()
        );
        if stage == "opened" {
            assert_eq!(
                front.whole.len(),
                1,
                "opened: the front chunk should be open in one place\n{}",
                found.summary()
            );
            let smaps = read_smaps(pid).expect("the child's smaps");
            let m = mapping_of(&smaps, front.whole[0]).expect("the opened chunk's mapping");
            assert!(
                m.has_flag("lo") && m.has_flag("dd"),
                "opened: the chunk is not in locked, undumpable memory: {}",
                m.describe()
            );
        } else {
            assert!(
                front.hits.is_empty(),
                "purged: the opened chunk is still in memory\n{}",
                found.summary()
            );
        }
        child.send(b"c").expect("tell the child to go on");
    }
    let ended = child.finish();
    assert!(
        matches!(ended.status, Ok(Some(status)) if status.success()),
        "the child did not end cleanly: {:?}\n{}",
        ended.status,
        String::from_utf8_lossy(&ended.stderr)
    );
}
