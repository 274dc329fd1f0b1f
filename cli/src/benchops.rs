//! Every operation the benchmarks measure, defined once: memguard's side
//! and its raw floor, their set-up, the body that is timed and what is
//! left out of the timing. Both benchmark systems build their rows from
//! these constructors and time them with [`Body::time`]:
//!
//! - `memguard bench` (`cli/src/bench.rs`): its table of cases pairs one
//!   memguard operation with its floor;
//! - the criterion benchmarks (`benches/*.rs`, which include this file by
//!   `#[path]`): their tables of rows name one operation each, timed through
//!   `Bencher::iter_custom` (`benches/support/ops.rs`).
//!
//! A [`Body`] is timed as criterion times its routines: when it has no
//! per-iteration set-up, `iters` runs back to back between two readings of
//! the clock (as `Bencher::iter`); otherwise each run alone, its set-up
//! before and its clean-up after the reading (as `Bencher::iter_batched`
//! with `BatchSize::PerIteration`). Set-up done once (a sealed enclave, a
//! raw mapping) happens in the constructor, outside every timing.
//!
//! The raw floors themselves (system calls written out, the cipher called
//! directly) are in [`floors`].

use std::cell::RefCell;
use std::hint::black_box;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use memguard::{Enclave, LockedBuffer, Stream};

#[path = "floors.rs"]
pub mod floors;

use floors::{RawCipher, RawGuarded, RawSpare};

/// What a timed step returns: nothing, or why the operation failed.
pub type Outcome = Result<(), String>;

/// A step of an operation.
type Step = Box<dyn FnMut() -> Outcome>;

/// An untimed step that cannot fail.
type Hook = Box<dyn FnMut()>;

/// A clock the time of a [`Body`] is read from: the wall clock
/// ([`WallClock`]) or, in `benches/stream.rs`, the thread's CPU time.
pub trait Clock {
    /// A reading.
    type Mark;
    /// Reads the clock.
    fn start(&self) -> Self::Mark;
    /// The time since `mark`.
    fn elapsed(&self, mark: Self::Mark) -> Duration;
}

/// Wall-clock time (`Instant`), as criterion measures by default.
pub struct WallClock;

impl Clock for WallClock {
    type Mark = Instant;

    #[inline(always)]
    fn start(&self) -> Instant {
        Instant::now()
    }

    #[inline(always)]
    fn elapsed(&self, mark: Instant) -> Duration {
        mark.elapsed()
    }
}

/// One operation, built and ready to be timed.
pub struct Body {
    /// Untimed, before each timed run.
    before: Option<Step>,
    /// The timed run.
    run: Step,
    /// Untimed, after each timed run.
    after: Option<Hook>,
    /// Untimed, around each call of [`Body::time`]: a setting made for the
    /// measurement (`enter`) and undone after it (`leave`).
    setting: Option<(Hook, Hook)>,
}

impl Body {
    /// An operation timed whole: `run` and nothing else.
    pub fn new(run: impl FnMut() -> Outcome + 'static) -> Body {
        Body {
            before: None,
            run: Box::new(run),
            after: None,
            setting: None,
        }
    }

    /// An operation with set-up and clean-up per run: `before`, then `run`
    /// (the only part timed), then `after`.
    pub fn per_run(
        before: impl FnMut() -> Outcome + 'static,
        run: impl FnMut() -> Outcome + 'static,
        after: impl FnMut() + 'static,
    ) -> Body {
        Body {
            before: Some(Box::new(before)),
            run: Box::new(run),
            after: Some(Box::new(after)),
            setting: None,
        }
    }

    /// The same, measured under a setting: `enter` before each measurement
    /// and `leave` after it, both untimed.
    pub fn within(mut self, enter: impl FnMut() + 'static, leave: impl FnMut() + 'static) -> Body {
        self.setting = Some((Box::new(enter), Box::new(leave)));
        self
    }

    /// Runs the operation `iters` times and returns the time its timed part
    /// took, read from `clock`.
    pub fn time<C: Clock>(&mut self, iters: u64, clock: &C) -> Result<Duration, String> {
        if let Some((enter, _)) = &mut self.setting {
            enter();
        }
        let t = self.time_runs(iters, clock);
        if let Some((_, leave)) = &mut self.setting {
            leave();
        }
        t
    }

    fn time_runs<C: Clock>(&mut self, iters: u64, clock: &C) -> Result<Duration, String> {
        let run = &mut self.run;
        let Some(before) = &mut self.before else {
            let mark = clock.start();
            for _ in 0..iters {
                run()?;
            }
            return Ok(clock.elapsed(mark));
        };
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            before()?;
            let mark = clock.start();
            let ran = run();
            total += clock.elapsed(mark);
            if let Some(after) = &mut self.after {
                after();
            }
            ran?;
        }
        Ok(total)
    }
}

/// A value made before a run and taken by it, or dropped after it: the
/// state a [`Body::per_run`] passes between its steps (shared by clones).
pub struct Slot<T>(Rc<RefCell<Option<T>>>);

impl<T> Slot<T> {
    pub fn new() -> Slot<T> {
        Slot(Rc::new(RefCell::new(None)))
    }

    pub fn put(&self, value: T) {
        *self.0.borrow_mut() = Some(value);
    }

    pub fn take(&self) -> Result<T, String> {
        self.0
            .borrow_mut()
            .take()
            .ok_or_else(|| "nothing was set up for this run".to_string())
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Slot<T> {
        Slot::new()
    }
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Slot<T> {
        Slot(Rc::clone(&self.0))
    }
}

/// A raw mapping owned by a floor's body, released (by `release`) when the
/// body goes.
struct Owned<T> {
    value: Option<T>,
    release: fn(T),
}

impl<T> Owned<T> {
    fn new(value: T, release: fn(T)) -> Owned<T> {
        Owned {
            value: Some(value),
            release,
        }
    }

    fn get(&mut self) -> &mut T {
        self.value.as_mut().expect("released only on drop")
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            (self.release)(v);
        }
    }
}

/// Turns a memguard error into the text of a failed measurement.
fn mg(what: &'static str) -> impl Fn(memguard::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Turns an I/O error (the raw floors' system calls) into text.
fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// The bytes every operation seals, copies or writes: `1..=251` repeating.
pub fn template(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 + 1).collect()
}

/// Whether a `LockedBuffer` lifecycle may reuse a spare mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spares {
    /// As by default: a buffer of up to a page reuses a kept mapping.
    Default,
    /// `set_spare_limit(0)` for the measurement: a new mapping every time.
    Off,
}

impl Spares {
    /// `body`, measured with this spare setting.
    fn apply(self, body: Body) -> Body {
        match self {
            Spares::Default => body,
            Spares::Off => {
                let kept = Rc::new(RefCell::new(0));
                let restore = Rc::clone(&kept);
                body.within(
                    move || {
                        *kept.borrow_mut() = memguard::spare_limit();
                        memguard::set_spare_limit(0);
                    },
                    move || memguard::set_spare_limit(*restore.borrow()),
                )
            }
        }
    }
}

/// How many system calls a raw floor makes for the same protections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Every protection as a call of its own ([`RawGuarded::new`] /
    /// [`RawGuarded::destroy`]): the lifecycle floor.
    Full,
    /// The fewest calls ([`RawGuarded::new_min`] /
    /// [`RawGuarded::destroy_min`]): what `LockedBuffer` itself makes.
    Min,
}

impl Calls {
    fn make(self, n: usize, page: usize) -> std::io::Result<RawGuarded> {
        match self {
            Calls::Full => RawGuarded::new(n, page),
            Calls::Min => RawGuarded::new_min(n, page),
        }
    }

    fn release(self, g: RawGuarded, n: usize) {
        match self {
            Calls::Full => g.destroy(n),
            Calls::Min => g.destroy_min(n),
        }
    }
}

// ---- LockedBuffer ----------------------------------------------------------

/// `LockedBuffer::new(n)` + drop.
pub fn new_drop(n: usize, spares: Spares) -> Result<Body, String> {
    Ok(spares.apply(Body::new(move || {
        let b = LockedBuffer::new(black_box(n)).map_err(mg("LockedBuffer::new"))?;
        drop(black_box(b));
        Ok(())
    })))
}

/// `LockedBuffer::new(n)`, `freeze`, drop (melted back to writable for the
/// wipe): what `Enclave::open` does besides decrypting.
pub fn new_freeze_drop(n: usize, spares: Spares) -> Result<Body, String> {
    Ok(spares.apply(Body::new(move || {
        let mut b = LockedBuffer::new(black_box(n)).map_err(mg("LockedBuffer::new"))?;
        b.freeze().map_err(mg("freeze"))?;
        drop(black_box(b));
        Ok(())
    })))
}

/// The floor under [`new_drop`] with spares: one kept guarded mapping,
/// each use an mprotect read-write, a wipe of `n` bytes, an mprotect
/// `PROT_NONE`.
pub fn raw_spare_cycle(n: usize, page: usize) -> Result<Body, String> {
    let mut spare = Owned::new(RawSpare::new(page).map_err(io)?, RawSpare::destroy);
    Ok(Body::new(move || {
        spare.get().cycle(black_box(n)).map_err(io)
    }))
}

/// The floor under [`new_drop`] without spares: a raw guarded mapping made
/// and destroyed with `calls`.
pub fn raw_new_drop(n: usize, page: usize, calls: Calls) -> Result<Body, String> {
    Ok(Body::new(move || {
        let g = calls.make(black_box(n), page).map_err(io)?;
        calls.release(black_box(g), n);
        Ok(())
    }))
}

/// `freeze` + `melt` of a 32-byte buffer.
pub fn freeze_melt() -> Result<Body, String> {
    let mut buf = LockedBuffer::new(32).map_err(mg("LockedBuffer::new"))?;
    Ok(Body::new(move || {
        buf.freeze().map_err(mg("freeze"))?;
        buf.melt().map_err(mg("melt"))
    }))
}

/// Its floor: two mprotects of one guarded, locked page.
pub fn raw_freeze_melt(page: usize) -> Result<Body, String> {
    let mut raw = Owned::new(RawGuarded::new(32, page).map_err(io)?, |g| g.destroy(32));
    Ok(Body::new(move || raw.get().freeze_melt().map_err(io)))
}

/// `purge()` with `count` live 32-byte buffers, made before each run (not
/// timed) and dropped after it.
pub fn purge(count: usize) -> Result<Body, String> {
    let held = Slot::<Vec<LockedBuffer>>::new();
    let made = held.clone();
    Ok(Body::per_run(
        move || {
            let buffers = (0..count)
                .map(|_| LockedBuffer::new(32))
                .collect::<Result<Vec<_>, _>>()
                .map_err(mg("LockedBuffer::new"))?;
            made.put(buffers);
            Ok(())
        },
        || {
            memguard::purge();
            Ok(())
        },
        move || drop(black_box(held.take())),
    ))
}

/// Its floor: as many raw 32-byte guarded mappings, made before each run
/// with `calls` and released (the timed part) with the same.
pub fn raw_purge(count: usize, page: usize, calls: Calls) -> Result<Body, String> {
    let held = Slot::<Vec<RawGuarded>>::new();
    let made = held.clone();
    Ok(Body::per_run(
        move || {
            let mut raws = Vec::with_capacity(count);
            for _ in 0..count {
                match calls.make(32, page) {
                    Ok(g) => raws.push(g),
                    Err(e) => {
                        raws.into_iter().for_each(|g| calls.release(g, 32));
                        return Err(e.to_string());
                    }
                }
            }
            made.put(raws);
            Ok(())
        },
        move || {
            held.take()?.into_iter().for_each(|g| calls.release(g, 32));
            Ok(())
        },
        || {},
    ))
}

// ---- Enclave ---------------------------------------------------------------

/// A source of `n` bytes refilled from the template and sealed
/// (`Enclave::new`), the enclave then handed to `then`: the body of every
/// operation that seals.
fn refill_seal(n: usize, mut then: impl FnMut(Enclave) -> Outcome) -> impl FnMut() -> Outcome {
    let tmpl = template(n);
    let mut src = vec![0u8; n];
    move || {
        src.copy_from_slice(black_box(&tmpl));
        let e = Enclave::new(black_box(&mut src)).map_err(mg("Enclave::new"))?;
        then(e)
    }
}

/// A source of `n` bytes refilled from the template, then
/// `Enclave::new` + drop.
pub fn enclave_new(n: usize) -> Result<Body, String> {
    Ok(Body::new(refill_seal(n, |e| {
        drop(black_box(e));
        Ok(())
    })))
}

/// Its floor: the same refill, then XSalsa20Poly1305 encryption in place.
pub fn raw_seal(n: usize) -> Result<Body, String> {
    let tmpl = template(n);
    let mut buf = vec![0u8; n];
    let cipher = RawCipher::new();
    Ok(Body::new(move || {
        buf.copy_from_slice(black_box(&tmpl));
        black_box(cipher.seal(black_box(&mut buf)));
        Ok(())
    }))
}

/// An enclave of the template's `n` bytes, sealed once.
fn sealed(n: usize) -> Result<Enclave, String> {
    Enclave::new(&mut template(n)).map_err(mg("Enclave::new"))
}

/// `open` of an `n`-byte enclave (a new frozen `LockedBuffer`) and its drop.
pub fn enclave_open(n: usize, spares: Spares) -> Result<Body, String> {
    let sealed = sealed(n)?;
    Ok(spares.apply(Body::new(move || {
        let b = sealed.open().map_err(mg("Enclave::open"))?;
        drop(black_box(b));
        Ok(())
    })))
}

/// `open` + drop with `CompactMode::Always` set for the measurement.
pub fn enclave_open_compact(n: usize) -> Result<Body, String> {
    let kept = Rc::new(RefCell::new(memguard::compact_mode()));
    let restore = Rc::clone(&kept);
    Ok(enclave_open(n, Spares::Default)?.within(
        move || {
            *kept.borrow_mut() = memguard::compact_mode();
            memguard::set_compact_mode(memguard::CompactMode::Always);
        },
        move || memguard::set_compact_mode(*restore.borrow()),
    ))
}

/// The floor under [`enclave_open`]: the ciphertext copied into guarded
/// memory and decrypted there, then read-only, writable again and wiped.
/// Up to a page in a kept mapping ([`RawSpare::open`]), larger in a new
/// one each time ([`floors::guarded_open`]).
pub fn raw_open(n: usize, page: usize) -> Result<Body, String> {
    let cipher = RawCipher::new();
    let mut ct = template(n);
    let tag = cipher.seal(&mut ct);
    if n <= page {
        let mut spare = Owned::new(RawSpare::new(page).map_err(io)?, RawSpare::destroy);
        Ok(Body::new(move || {
            spare.get().open(&cipher, black_box(&ct), &tag).map_err(io)
        }))
    } else {
        Ok(Body::new(move || {
            floors::guarded_open(&cipher, black_box(&ct), &tag, page).map_err(io)
        }))
    }
}

/// `open_into` a kept mutable `n`-byte `LockedBuffer`. Checked once, before
/// the timing, to give the bytes back.
pub fn enclave_open_into(n: usize) -> Result<Body, String> {
    let sealed = sealed(n)?;
    let mut dst = LockedBuffer::new(n).map_err(mg("LockedBuffer::new"))?;
    sealed
        .open_into(&mut dst)
        .map_err(mg("Enclave::open_into"))?;
    if !dst.equal_to(&template(n)) {
        return Err("open_into gave other bytes back".into());
    }
    Ok(Body::new(move || {
        sealed
            .open_into(black_box(&mut dst))
            .map_err(mg("Enclave::open_into"))
    }))
}

/// Its floor: the ciphertext copied into a kept `Vec` and decrypted there.
pub fn raw_open_into(n: usize) -> Result<Body, String> {
    let cipher = RawCipher::new();
    let mut ct = template(n);
    let tag = cipher.seal(&mut ct);
    let mut buf = vec![0u8; n];
    Ok(Body::new(move || {
        cipher.open_copy(black_box(&mut buf), &ct, &tag).map_err(io)
    }))
}

/// A source refilled from the template, `Enclave::new`, then `open_into`
/// a kept `LockedBuffer` (or `dst` when given: a guarded destination the
/// caller could already lock) and the enclave dropped: one seal and one
/// open. Checked once, before the timing.
pub fn enclave_new_open_into(n: usize, dst: Option<LockedBuffer>) -> Result<Body, String> {
    let mut dst = match dst {
        Some(d) => d,
        None => LockedBuffer::new(n).map_err(mg("LockedBuffer::new"))?,
    };
    let mut once = refill_seal(n, move |e| {
        e.open_into(&mut dst).map_err(mg("Enclave::open_into"))?;
        drop(black_box(e));
        Ok(())
    });
    once()?;
    Ok(Body::new(once))
}

/// A source refilled from the template, `Enclave::new`, then `open` (a new
/// buffer each time), both dropped.
pub fn enclave_new_open(n: usize) -> Result<Body, String> {
    Ok(Body::new(refill_seal(n, |e| {
        drop(black_box(e.open().map_err(mg("Enclave::open"))?));
        Ok(())
    })))
}

/// The floor under a seal plus an open: the same refill, then
/// XSalsa20Poly1305 encryption and decryption in place. Checked once.
pub fn raw_seal_open(n: usize) -> Result<Body, String> {
    let tmpl = template(n);
    let mut buf = vec![0u8; n];
    let cipher = RawCipher::new();
    let mut once = move || -> Outcome {
        buf.copy_from_slice(&tmpl);
        let tag = cipher.seal(black_box(&mut buf));
        if !cipher.open(&mut buf, &tag) {
            return Err("the raw cipher refused its own ciphertext".into());
        }
        Ok(())
    };
    once()?;
    Ok(Body::new(once))
}

// ---- Stream ----------------------------------------------------------------

/// A new `Stream` (made before each run, not timed), then `write_all` of
/// `total` template bytes in `piece`-byte pieces; the full stream is
/// dropped after the run, so its chunks are freed outside the timing.
pub fn stream_write(total: usize, piece: usize) -> Result<Body, String> {
    let src = template(total);
    let fresh = Slot::<Stream>::new();
    let made = fresh.clone();
    let full = Slot::<Stream>::new();
    let written = full.clone();
    Ok(Body::per_run(
        move || {
            made.put(Stream::new());
            Ok(())
        },
        move || {
            let mut s = fresh.take()?;
            for part in black_box(&src).chunks(piece) {
                s.write_all(part)
                    .map_err(|e| format!("Stream write: {e}"))?;
            }
            written.put(s);
            Ok(())
        },
        move || drop(black_box(full.take())),
    ))
}

/// Where a nonce of a raw chunk floor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonces {
    /// A 64-bit counter: no system call.
    Counter,
    /// `getrandom`, as `Stream` (through `Enclave`) draws one per chunk.
    Random,
}

/// The floor under [`stream_write`]: `total` template bytes sealed in
/// `chunk`-byte chunks, each into a new `Vec`; the chunks are dropped
/// after the run.
pub fn raw_seal_chunks(total: usize, chunk: usize, nonces: Nonces) -> Result<Body, String> {
    let src = template(total);
    let cipher = floors::chunk_cipher();
    let mut counter = 0u64;
    let sealed = Slot::<Vec<floors::SealedChunk>>::new();
    let made = sealed.clone();
    Ok(Body::per_run(
        || Ok(()),
        move || {
            let out = match nonces {
                Nonces::Counter => floors::seal_chunks(&cipher, black_box(&src), chunk, || {
                    floors::counter_nonce(&mut counter)
                }),
                Nonces::Random => {
                    floors::seal_chunks(&cipher, black_box(&src), chunk, floors::random_nonce)
                }
            };
            made.put(out);
            Ok(())
        },
        move || drop(black_box(sealed.take())),
    ))
}

/// How a stream is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Through `&mut Stream`: an owned stream, whose `read` takes no lock.
    Owned,
    /// Through `&Stream`, as threads sharing a stream read: a lock per
    /// `read`.
    Shared,
}

/// A stream filled with `total` template bytes before each run (not
/// timed), read to the end into a `buf_len`-byte buffer; freeing each
/// chunk once read is timed (it is part of reading), the empty stream is
/// dropped after the run.
pub fn stream_read(total: usize, buf_len: usize, reader: Reader) -> Result<Body, String> {
    let src = template(total);
    let filled = Slot::<Stream>::new();
    let made = filled.clone();
    let read = Slot::<Stream>::new();
    let done = read.clone();
    let mut buf = vec![0u8; buf_len];
    Ok(Body::per_run(
        move || {
            let mut s = Stream::new();
            s.write_all(&src)
                .map_err(|e| format!("Stream write: {e}"))?;
            made.put(s);
            Ok(())
        },
        move || {
            let mut s = filled.take()?;
            let n = match reader {
                Reader::Owned => read_to_end(&mut s, &mut buf),
                Reader::Shared => read_to_end(&s, &mut buf),
            }
            .map_err(|e| format!("Stream read: {e}"))?;
            done.put(s);
            if n != total {
                return Err(format!("read {n} bytes back instead of {total}"));
            }
            Ok(())
        },
        move || drop(black_box(read.take())),
    ))
}

/// The floor of any reader under [`stream_read`]'s loop: `total` template
/// bytes in a `std::io::Cursor<Vec<u8>>` (no secret, no guard, no lock),
/// read to the end through a `buf_len`-byte buffer.
#[allow(dead_code)] // criterion only
pub fn std_cursor_read(total: usize, buf_len: usize) -> Result<Body, String> {
    let mut cursor = std::io::Cursor::new(template(total));
    let mut buf = vec![0u8; buf_len];
    Ok(Body::new(move || {
        cursor.set_position(0);
        let n = read_to_end(&mut cursor, &mut buf).map_err(|e| format!("Cursor read: {e}"))?;
        if n != total {
            return Err(format!("read {n} bytes back instead of {total}"));
        }
        Ok(())
    }))
}

/// Reads `r` to the end through `buf`; the number of bytes read.
#[inline(always)]
fn read_to_end(mut r: impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let n = r.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        black_box(&buf[..n]);
        total += n;
    }
}

/// The floor under [`stream_read`]: `total` template bytes sealed once in
/// `chunk`-byte chunks (before the timing); each run copies every chunk
/// into one reused buffer and decrypts it there.
pub fn raw_open_chunks(total: usize, chunk: usize) -> Result<Body, String> {
    let src = template(total);
    let cipher = floors::chunk_cipher();
    let mut counter = 0u64;
    let sealed = floors::seal_detached_chunks(&cipher, &src, chunk, &mut counter);
    let mut out = vec![0u8; chunk];
    if floors::open_chunks(&cipher, &sealed, &mut out) != Some(total)
        || out[..] != src[total - chunk..]
    {
        return Err("the raw cipher gave other bytes back".into());
    }
    Ok(Body::new(move || {
        match floors::open_chunks(&cipher, black_box(&sealed), &mut out) {
            Some(n) if n == total => Ok(()),
            _ => Err("the raw cipher refused its own chunks".into()),
        }
    }))
}

// ---- libsodium, the baseline of the cipher ---------------------------------

/// libsodium, or why it is missing. Loaded at run time
/// (`memguard_testkit::sodium`): nothing links it, so the command and the
/// benchmarks build without it.
fn libsodium() -> Result<&'static memguard_testkit::sodium::Sodium, String> {
    memguard_testkit::sodium::load()
        .ok_or_else(|| "libsodium not found (Debian: apt-get install libsodium23)".to_string())
}

/// libsodium's `crypto_secretbox_easy` of `n` template bytes (refilled
/// first, as in [`raw_seal_open`]), then `crypto_secretbox_open_easy` of
/// the result, on buffers made once: what [`enclave_new_open_into`] is
/// compared with.
pub fn sodium_seal_open(n: usize) -> Result<Body, String> {
    let libsodium = libsodium()?;
    let tmpl = template(n);
    let (mut src, mut sealed, mut back) = (vec![0u8; n], vec![0u8; n + 16], vec![0u8; n]);
    let mut once = move || -> Outcome {
        src.copy_from_slice(&tmpl);
        libsodium.secretbox_easy(&mut sealed, black_box(&src), &floors::NONCE, &floors::KEY);
        if !libsodium.secretbox_open_easy(
            &mut back,
            black_box(&sealed),
            &floors::NONCE,
            &floors::KEY,
        ) {
            return Err("libsodium refused its own ciphertext".into());
        }
        black_box(&back);
        Ok(())
    };
    once()?;
    Ok(Body::new(once))
}

/// `total` template bytes sealed by libsodium in `chunk`-byte chunks, each
/// under a counter nonce into a new `Vec`, dropped after the run: what
/// [`stream_write`] is compared with.
pub fn sodium_seal_chunks(total: usize, chunk: usize) -> Result<Body, String> {
    let libsodium = libsodium()?;
    let src = template(total);
    let mut counter = 0u64;
    let sealed = Slot::<Vec<SodiumChunk>>::new();
    let made = sealed.clone();
    Ok(Body::per_run(
        || Ok(()),
        move || {
            made.put(sodium_seal_each(
                libsodium,
                black_box(&src),
                chunk,
                &mut counter,
            ));
            Ok(())
        },
        move || drop(black_box(sealed.take())),
    ))
}

/// A chunk sealed by libsodium: its nonce, then the tag and ciphertext.
type SodiumChunk = ([u8; 24], Vec<u8>);

/// `src` sealed by libsodium in `chunk`-byte chunks, each under the next
/// counter nonce and into a new `Vec`.
#[inline]
fn sodium_seal_each(
    libsodium: &memguard_testkit::sodium::Sodium,
    src: &[u8],
    chunk: usize,
    counter: &mut u64,
) -> Vec<SodiumChunk> {
    src.chunks(chunk)
        .map(|part| {
            let nonce: [u8; 24] = floors::counter_nonce(counter).into();
            let mut c = vec![0u8; part.len() + 16];
            libsodium.secretbox_easy(&mut c, part, &nonce, &floors::KEY);
            (nonce, c)
        })
        .collect()
}

/// `total` template bytes sealed by libsodium in `chunk`-byte chunks once
/// (before the timing); each run opens every chunk with libsodium into one
/// reused buffer: what [`stream_read`] is compared with.
pub fn sodium_open_chunks(total: usize, chunk: usize) -> Result<Body, String> {
    let libsodium = libsodium()?;
    let src = template(total);
    let sealed = sodium_seal_each(libsodium, &src, chunk, &mut 0);
    let open_all = move |out: &mut [u8]| -> Result<usize, String> {
        let mut opened = 0;
        for (nonce, c) in black_box(&sealed) {
            let out = &mut out[..c.len() - 16];
            if !libsodium.secretbox_open_easy(out, c, nonce, &floors::KEY) {
                return Err("libsodium refused its own chunks".into());
            }
            opened += out.len();
        }
        Ok(opened)
    };
    // Checked once, outside the timing: every byte comes back.
    let mut out = vec![0u8; chunk];
    let last = (total - 1) / chunk * chunk;
    if open_all(&mut out)? != total || out[..total - last] != src[last..] {
        return Err("libsodium gave other bytes back".into());
    }
    Ok(Body::new(move || match open_all(&mut out)? {
        n if n == total => Ok(()),
        n => Err(format!("libsodium opened {n} bytes instead of {total}")),
    }))
}
