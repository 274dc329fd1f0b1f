//! Integration tests for `Enclave`: round trips at many sizes, tampering,
//! argument errors, purge invalidating old enclaves, rekeying, and the
//! `Send`/`Sync`/`Debug` surface.
//!
//! `memguard::purge()` is process-wide, so every test takes `SERIAL` first:
//! no two tests of this file ever run at the same time, which also makes
//! `live_buffers()` comparisons exact.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod support;

use memguard::{live_buffers, purge, set_rekey_interval, Enclave, Error, LockedBuffer};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Header of the sealed form: nonce (24) and tag (16).
const NONCE: usize = 24;
const TAG: usize = 16;
const HEADER: usize = NONCE + TAG;

/// The sizes every round trip runs at in this process. 16 MiB runs too, in
/// child processes of its own (see `sixteen_mib_*`), because the unoptimised
/// cipher of a debug build takes seconds per pass over it.
const SIZES: [usize; 10] = [1, 2, 31, 32, 33, 1023, 4096, 4097, 65536, 1 << 20];
const HUGE: usize = 16 << 20;

/// A recognisable, never-zero pattern that differs with `seed`.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(31) + seed.wrapping_mul(17) + i / 251) % 255) as u8 + 1)
        .collect()
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Asserts that an operation failed with `DecryptionFailed`.
fn assert_decryption_failed<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::DecryptionFailed) => {}
        other => panic!("{what}: expected Err(DecryptionFailed), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

/// Enclave::new, open, open_into (and, when `thorough`, a second open and
/// an open of a clone) at `len` bytes.
fn round_trip_new(len: usize, seed: usize, thorough: bool) {
    let started = Instant::now();
    let msg = pattern(len, seed);
    let mut src = msg.clone();
    let sealed = Enclave::new(&mut src).unwrap_or_else(|e| panic!("seal {len}: {e}"));
    assert!(
        is_zero(&src),
        "len {len}: Enclave::new did not wipe its source"
    );
    drop(src);
    assert_eq!(sealed.len(), len);
    assert!(!sealed.is_empty());
    assert_eq!(sealed.sealed_bytes().len(), len + HEADER, "len {len}");
    if len >= 16 {
        assert!(
            sealed.sealed_bytes()[HEADER..] != msg[..],
            "len {len}: the ciphertext is the plaintext"
        );
    }

    let opened = sealed.open().unwrap_or_else(|e| panic!("open {len}: {e}"));
    assert!(opened.is_alive());
    assert!(
        !opened.is_mutable(),
        "len {len}: an opened buffer must be frozen"
    );
    assert_eq!(opened.len(), len);
    assert!(
        opened.bytes()[..] == msg[..],
        "len {len}: open() gave other bytes"
    );
    if thorough {
        assert!(opened.equal_to(&msg));
    }
    drop(opened);

    if thorough {
        // Opening consumes nothing: a second open gives the same.
        let again = sealed.open().unwrap();
        assert!(again.equal_to(&msg), "len {len}: second open differs");
    }

    // open_into overwrites whatever the destination held.
    let mut dst = LockedBuffer::new(len).unwrap();
    dst.bytes_mut().unwrap().fill(0xC3);
    sealed
        .open_into(&mut dst)
        .unwrap_or_else(|e| panic!("open_into {len}: {e}"));
    assert!(
        dst.bytes()[..] == msg[..],
        "len {len}: open_into gave other bytes"
    );
    assert!(
        dst.is_mutable(),
        "open_into must not freeze the destination"
    );
    drop(dst);

    if thorough {
        // A clone is an independent copy of the sealed form that opens too.
        let copy = sealed.clone();
        drop(sealed);
        assert!(copy.open().unwrap().equal_to(&msg), "len {len}: clone");
    }
    println!("new/open/open_into {len:>9} bytes: {:?}", started.elapsed());
}

/// LockedBuffer::seal of a frozen buffer (and, when `thorough`, of a mutable
/// one), then open, at `len` bytes.
fn round_trip_seal(len: usize, seed: usize, thorough: bool) {
    let started = Instant::now();
    let msg = pattern(len, seed);
    let frozen = LockedBuffer::from_bytes(&mut msg.clone()).unwrap();
    assert!(!frozen.is_mutable());
    let sealed = frozen
        .seal()
        .unwrap_or_else(|e| panic!("seal frozen {len}: {e}"));
    assert_eq!(sealed.len(), len);
    let opened = sealed.open().unwrap();
    assert!(!opened.is_mutable());
    assert!(
        opened.bytes()[..] == msg[..],
        "len {len}: seal/open of a frozen buffer"
    );
    drop(opened);

    if thorough {
        let mut mutable = LockedBuffer::new(len).unwrap();
        mutable.copy(&msg).unwrap();
        let sealed = mutable.seal().unwrap();
        assert!(
            sealed.open().unwrap().bytes()[..] == msg[..],
            "len {len}: seal/open of a mutable buffer"
        );
    }
    println!(
        "LockedBuffer::seal  {len:>9} bytes: {:?}",
        started.elapsed()
    );
}

/// Enclave::random and open (and, when `thorough`, a second open, open_into
/// and a second random enclave) at `len` bytes.
fn round_trip_random(len: usize, thorough: bool) {
    let started = Instant::now();
    let sealed = Enclave::random(len).unwrap_or_else(|e| panic!("random {len}: {e}"));
    assert_eq!(sealed.len(), len);
    assert_eq!(sealed.sealed_bytes().len(), len + HEADER);
    let a = sealed
        .open()
        .unwrap_or_else(|e| panic!("open random {len}: {e}"));
    assert!(!a.is_mutable());
    assert_eq!(a.len(), len);
    if len >= 32 {
        assert!(
            !is_zero(&a.bytes()),
            "len {len}: random enclave opened to zeros"
        );
    }
    if thorough {
        // Opening is deterministic: every open reveals the same bytes.
        let b = sealed.open().unwrap();
        assert!(a.equal_to(&b.bytes()), "len {len}: two opens differ");
        let mut c = LockedBuffer::new(len).unwrap();
        sealed.open_into(&mut c).unwrap();
        assert!(
            a.equal_to(&c.bytes()),
            "len {len}: open_into differs from open"
        );
        if len >= 32 {
            let other = Enclave::random(len).unwrap().open().unwrap();
            assert!(
                !a.equal_to(&other.bytes()),
                "len {len}: two random enclaves agree"
            );
        }
    }
    println!(
        "Enclave::random     {len:>9} bytes: {:?}",
        started.elapsed()
    );
}

#[test]
fn new_open_and_open_into_round_trip_at_every_size() {
    let _serial = serial();
    for (n, &len) in SIZES.iter().enumerate() {
        round_trip_new(len, n, true);
    }
}

#[test]
fn locked_buffer_seal_round_trips_at_every_size() {
    let _serial = serial();
    for (n, &len) in SIZES.iter().enumerate() {
        round_trip_seal(len, n + 100, true);
    }
}

#[test]
fn random_enclaves_round_trip_at_every_size() {
    let _serial = serial();
    for &len in &SIZES {
        round_trip_random(len, true);
    }
}

/// Runs `scenario` of `test` in a child process (which needs no lock: a
/// purge there cannot touch this process) and checks that it passed.
fn expect_child_passes(test: &str, scenario: &str, marker: &str) {
    let started = Instant::now();
    let out = support::run_child_timeout(test, scenario, Duration::from_secs(600));
    let text = format!("{}{}", support::stdout(&out), support::stderr(&out));
    println!("{test}: child took {:?}", started.elapsed());
    assert!(
        out.status.code() == Some(0) && text.contains(marker) && !text.contains("panicked"),
        "{}",
        support::describe(&out)
    );
    // Show the child's timings in the parent's output.
    for line in text.lines().filter(|l| l.contains(" bytes: ")) {
        println!("  {line}");
    }
}

/// 16 MiB: Enclave::new, open and open_into, in a child process so that it
/// runs alongside the rest of this file instead of after it.
#[test]
fn sixteen_mib_new_open_and_open_into_round_trip() {
    if support::child_scenario().as_deref() == Some("huge-new") {
        round_trip_new(HUGE, 16, false);
        println!("HUGE NEW OK");
        return;
    }
    expect_child_passes(
        "sixteen_mib_new_open_and_open_into_round_trip",
        "huge-new",
        "HUGE NEW OK",
    );
}

/// 16 MiB: LockedBuffer::seal, Enclave::random and open, in a child process.
#[test]
fn sixteen_mib_seal_and_random_round_trip() {
    if support::child_scenario().as_deref() == Some("huge-seal") {
        round_trip_seal(HUGE, 17, false);
        round_trip_random(HUGE, false);
        println!("HUGE SEAL OK");
        return;
    }
    expect_child_passes(
        "sixteen_mib_seal_and_random_round_trip",
        "huge-seal",
        "HUGE SEAL OK",
    );
}

#[test]
fn locked_buffer_seal_destroys_the_buffer() {
    let _serial = serial();
    // Make sure the session key exists, so that sealing allocates nothing.
    drop(Enclave::random(1).unwrap());
    let before = live_buffers();
    let buf = LockedBuffer::from_bytes(&mut b"to be sealed".to_vec()).unwrap();
    assert_eq!(live_buffers(), before + 1);
    let sealed = buf.seal().unwrap();
    assert_eq!(
        live_buffers(),
        before,
        "seal() must destroy the buffer it consumed"
    );
    assert!(sealed.open().unwrap().equal_to(b"to be sealed"));
}

#[test]
fn sealing_the_same_secret_twice_gives_different_sealed_forms() {
    let _serial = serial();
    let msg = pattern(64, 7);
    let a = Enclave::new(&mut msg.clone()).unwrap();
    let b = Enclave::new(&mut msg.clone()).unwrap();
    assert_ne!(
        a.sealed_bytes()[..NONCE],
        b.sealed_bytes()[..NONCE],
        "nonce reused"
    );
    assert_ne!(a.sealed_bytes()[HEADER..], b.sealed_bytes()[HEADER..]);
    assert!(a.open().unwrap().equal_to(&msg));
    assert!(b.open().unwrap().equal_to(&msg));
    // The plaintext appears nowhere in the sealed form.
    assert!(!a.sealed_bytes().windows(16).any(|w| w == &msg[..16]));
}

// ---------------------------------------------------------------------------
// Tampering
// ---------------------------------------------------------------------------

/// Flips one bit at `pos` in a clone of `sealed` and checks that `open` and
/// `open_into` both refuse it, allocate nothing that survives, and leave the
/// destination as it was.
fn check_tampered(sealed: &Enclave, pos: usize, bit: u8, what: &str) {
    let len = sealed.len();
    let mut bad = sealed.clone();
    bad.sealed_bytes_mut()[pos] ^= 1 << bit;
    assert_ne!(bad.sealed_bytes(), sealed.sealed_bytes());

    let before = live_buffers();
    assert_decryption_failed(bad.open(), &format!("open, {what} (byte {pos} bit {bit})"));
    assert_eq!(
        live_buffers(),
        before,
        "{what}: a failed open() left a buffer behind"
    );

    let fill = vec![0x5Au8; len];
    let mut dst = LockedBuffer::new(len).unwrap();
    dst.copy(&fill).unwrap();
    let before = live_buffers();
    assert_decryption_failed(
        bad.open_into(&mut dst),
        &format!("open_into, {what} (byte {pos} bit {bit})"),
    );
    assert_eq!(live_buffers(), before);
    assert!(
        dst.bytes()[..] == fill[..],
        "{what}: a failed open_into wrote into the destination"
    );
    assert!(dst.is_mutable());
}

#[test]
fn tampered_nonce_tag_or_body_fails_and_changes_nothing() {
    let _serial = serial();
    for len in [1usize, 33, 4097] {
        let msg = pattern(len, len);
        let sealed = Enclave::new(&mut msg.clone()).unwrap();
        let total = sealed.sealed_bytes().len();
        let places = [
            (0, "nonce, first byte"),
            (NONCE / 2, "nonce, middle"),
            (NONCE - 1, "nonce, last byte"),
            (NONCE, "tag, first byte"),
            (NONCE + TAG / 2, "tag, middle"),
            (HEADER - 1, "tag, last byte"),
            (HEADER, "body, first byte"),
            (HEADER + len / 2, "body, middle"),
            (total - 1, "body, last byte"),
        ];
        for (pos, what) in places {
            for bit in [0u8, 3, 7] {
                check_tampered(&sealed, pos, bit, &format!("len {len}, {what}"));
            }
        }
        // The untampered original still opens.
        assert!(sealed.open().unwrap().equal_to(&msg));
    }
}

#[test]
fn tampered_random_enclave_fails() {
    let _serial = serial();
    let sealed = Enclave::random(100).unwrap();
    let total = sealed.sealed_bytes().len();
    for pos in [0, NONCE - 1, NONCE, HEADER - 1, HEADER, total - 1] {
        check_tampered(&sealed, pos, 0, "random enclave");
    }
    assert!(sealed.open().is_ok());
}

#[test]
fn tags_and_bodies_swapped_between_enclaves_fail() {
    let _serial = serial();
    let a = Enclave::new(&mut pattern(48, 1)).unwrap();
    let b = Enclave::new(&mut pattern(48, 2)).unwrap();
    // a's nonce and tag with b's body.
    let mut mixed = a.clone();
    mixed.sealed_bytes_mut()[HEADER..].copy_from_slice(&b.sealed_bytes()[HEADER..]);
    assert_decryption_failed(mixed.open(), "a's header with b's body");
    // a's nonce with b's tag and body.
    let mut mixed = b.clone();
    mixed.sealed_bytes_mut()[..NONCE].copy_from_slice(&a.sealed_bytes()[..NONCE]);
    assert_decryption_failed(mixed.open(), "a's nonce with b's tag and body");
    // All zeros.
    let mut zeros = a.clone();
    zeros.sealed_bytes_mut().fill(0);
    assert_decryption_failed(zeros.open(), "an all-zero sealed form");
}

// ---------------------------------------------------------------------------
// Argument errors
// ---------------------------------------------------------------------------

#[test]
fn open_into_a_buffer_of_the_wrong_size_is_a_size_mismatch() {
    let _serial = serial();
    let sealed = Enclave::new(&mut pattern(32, 3)).unwrap();
    for actual in [1usize, 31, 33, 4096] {
        let mut dst = LockedBuffer::new(actual).unwrap();
        dst.bytes_mut().unwrap().fill(0x77);
        match sealed.open_into(&mut dst) {
            Err(Error::SizeMismatch {
                expected: 32,
                actual: a,
            }) if a == actual => {}
            other => panic!("dst of {actual}: expected SizeMismatch, got {other:?}"),
        }
        assert!(
            dst.bytes().iter().all(|&b| b == 0x77),
            "dst of {actual} was written"
        );
    }
}

#[test]
fn open_into_a_frozen_buffer_is_immutable() {
    let _serial = serial();
    let msg = pattern(32, 4);
    let sealed = Enclave::new(&mut msg.clone()).unwrap();
    let mut frozen = LockedBuffer::from_bytes(&mut [0x11u8; 32]).unwrap();
    assert!(!frozen.is_mutable());
    match sealed.open_into(&mut frozen) {
        Err(Error::Immutable) => {}
        other => panic!("expected Err(Immutable), got {other:?}"),
    }
    assert!(
        frozen.equal_to(&[0x11u8; 32]),
        "a frozen destination was written"
    );

    // An opened buffer is frozen too.
    let mut opened = sealed.open().unwrap();
    assert!(matches!(
        sealed.open_into(&mut opened),
        Err(Error::Immutable)
    ));
    assert!(opened.equal_to(&msg));

    // Melting it makes it usable again.
    opened.melt().unwrap();
    opened.wipe().unwrap();
    sealed.open_into(&mut opened).unwrap();
    assert!(opened.equal_to(&msg));
}

#[test]
fn empty_inputs_are_null_buffers() {
    let _serial = serial();
    assert!(matches!(Enclave::new(&mut []), Err(Error::NullBuffer)));
    assert!(matches!(
        Enclave::new(&mut Vec::new()),
        Err(Error::NullBuffer)
    ));
    assert!(matches!(Enclave::random(0), Err(Error::NullBuffer)));
}

#[test]
fn sealing_or_opening_into_a_purged_buffer_is_destroyed() {
    let _serial = serial();
    let sealed = Enclave::new(&mut pattern(16, 5)).unwrap();
    let frozen = LockedBuffer::from_bytes(&mut pattern(16, 6)).unwrap();
    let mut mutable = LockedBuffer::new(16).unwrap();
    mutable.copy(&pattern(16, 7)).unwrap();
    let mut dst = LockedBuffer::new(16).unwrap();
    purge();
    assert!(!frozen.is_alive() && !mutable.is_alive() && !dst.is_alive());
    assert!(matches!(frozen.seal(), Err(Error::Destroyed)));
    assert!(matches!(mutable.seal(), Err(Error::Destroyed)));
    // A fresh enclave, under the new key, into a purged destination.
    let fresh = Enclave::new(&mut pattern(16, 8)).unwrap();
    match fresh.open_into(&mut dst) {
        Err(Error::Destroyed) => {}
        other => panic!("open_into a purged buffer: expected Destroyed, got {other:?}"),
    }
    // The old enclave cannot be opened at all any more.
    assert_decryption_failed(sealed.open(), "enclave sealed before purge");
}

// ---------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------

#[test]
fn purge_invalidates_old_enclaves_and_new_ones_work() {
    let _serial = serial();
    let old_msg = pattern(100, 9);
    let old = Enclave::new(&mut old_msg.clone()).unwrap();
    let old_random = Enclave::random(64).unwrap();
    let old_clone = old.clone();
    assert!(old.open().unwrap().equal_to(&old_msg));
    let live = LockedBuffer::from_bytes(&mut pattern(10, 1)).unwrap();

    purge();
    assert!(!live.is_alive(), "purge must destroy live buffers");
    assert_eq!(
        live_buffers(),
        0,
        "nothing is borrowed, so nothing may survive purge"
    );

    // Old enclaves: open fails, and nothing is left allocated by the attempt
    // (not even a new session key: a failed open must not make one).
    for (what, e) in [
        ("old", &old),
        ("old clone", &old_clone),
        ("old random", &old_random),
    ] {
        let before = live_buffers();
        assert_decryption_failed(e.open(), what);
        assert_eq!(
            live_buffers(),
            before,
            "{what}: failed open left a buffer behind"
        );

        let mut dst = LockedBuffer::new(e.len()).unwrap();
        dst.bytes_mut().unwrap().fill(0x99);
        let before = live_buffers();
        assert_decryption_failed(e.open_into(&mut dst), what);
        assert_eq!(live_buffers(), before);
        assert!(
            dst.bytes().iter().all(|&b| b == 0x99),
            "{what}: dst written"
        );
    }

    // Enclaves sealed after the purge work, under the new key.
    let new_msg = pattern(100, 10);
    let new = Enclave::new(&mut new_msg.clone()).unwrap();
    assert!(new.open().unwrap().equal_to(&new_msg));
    let new_random = Enclave::random(64).unwrap();
    assert_eq!(new_random.open().unwrap().len(), 64);
    let resealed = LockedBuffer::from_bytes(&mut new_msg.clone())
        .unwrap()
        .seal()
        .unwrap();
    assert!(resealed.open().unwrap().equal_to(&new_msg));

    // Now that a new key exists, the old enclaves still fail.
    assert_decryption_failed(old.open(), "old, after a new key was made");
    let mut dst = LockedBuffer::new(old.len()).unwrap();
    assert_decryption_failed(old.open_into(&mut dst), "old open_into, new key");
    assert!(is_zero(&dst.bytes()));

    // And a second purge invalidates the second generation too.
    purge();
    assert_decryption_failed(new.open(), "second generation after a second purge");
    assert_decryption_failed(old.open(), "first generation after a second purge");
}

// ---------------------------------------------------------------------------
// Rekeying
// ---------------------------------------------------------------------------

/// Puts the default rekey interval back, even when the test fails.
struct RestoreRekeyInterval;

impl Drop for RestoreRekeyInterval {
    fn drop(&mut self) {
        set_rekey_interval(Some(Duration::from_millis(500)));
    }
}

#[test]
fn enclaves_open_across_many_rekeys() {
    let _serial = serial();
    let _restore = RestoreRekeyInterval;

    set_rekey_interval(Some(Duration::from_millis(5)));
    let msg = pattern(200, 11);
    let sealed = Enclave::new(&mut msg.clone()).unwrap();
    let random = Enclave::random(48).unwrap();
    let random_bytes = random.open().unwrap();
    std::thread::sleep(Duration::from_millis(100)); // ~20 rekeys
    assert!(sealed.open().unwrap().equal_to(&msg), "after fast rekeying");
    assert!(random.open().unwrap().equal_to(&random_bytes.bytes()));
    // Seal and open back to back while the rekeyer runs.
    for i in 0..50 {
        let m = pattern(64, i);
        let e = Enclave::new(&mut m.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        assert!(e.open().unwrap().equal_to(&m), "iteration {i}");
    }

    // A new key after purge is rekeyed as well.
    purge();
    let after = Enclave::new(&mut msg.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        after.open().unwrap().equal_to(&msg),
        "new key, fast rekeying"
    );
    assert_decryption_failed(sealed.open(), "sealed before purge");

    // Off.
    set_rekey_interval(None);
    std::thread::sleep(Duration::from_millis(20));
    assert!(after.open().unwrap().equal_to(&msg), "rekeying off");
    let while_off = Enclave::new(&mut msg.clone()).unwrap();
    assert!(while_off.open().unwrap().equal_to(&msg));

    // Sub-millisecond and zero intervals are clamped, not a busy loop of
    // failures.
    set_rekey_interval(Some(Duration::ZERO));
    std::thread::sleep(Duration::from_millis(20));
    assert!(while_off.open().unwrap().equal_to(&msg), "zero interval");
    set_rekey_interval(Some(Duration::from_nanos(10)));
    std::thread::sleep(Duration::from_millis(20));
    assert!(while_off.open().unwrap().equal_to(&msg), "10 ns interval");

    // Back to the default.
    set_rekey_interval(Some(Duration::from_millis(500)));
    assert!(after.open().unwrap().equal_to(&msg), "default interval");
    assert!(while_off.open().unwrap().equal_to(&msg));
    let fresh = Enclave::new(&mut msg.clone()).unwrap();
    assert!(fresh.open().unwrap().equal_to(&msg));
}

// ---------------------------------------------------------------------------
// Traits and Debug
// ---------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn enclave_is_send_sync_clone_and_debug_shows_only_the_length() {
    let _serial = serial();
    assert_send_sync::<Enclave>();
    fn assert_clone<T: Clone>() {}
    assert_clone::<Enclave>();

    let secret = b"correct horse battery staple".to_vec();
    let sealed = Enclave::new(&mut secret.clone()).unwrap();
    let len = secret.len();
    let plain = format!("{sealed:?}");
    assert_eq!(plain, format!("Enclave {{ len: {len}, .. }}"));
    let pretty = format!("{sealed:#?}");
    assert_eq!(pretty, format!("Enclave {{\n    len: {len},\n    ..\n}}"));
    for text in [&plain, &pretty] {
        // No byte of the secret or of the sealed form in any notation: the
        // only digits are those of the length.
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(digits, len.to_string(), "{text}");
        assert!(!text.contains("horse"), "{text}");
    }
    // Moving an enclave to another thread and opening it there works.
    let opened_elsewhere = std::thread::spawn(move || sealed.open().map(|b| b.equal_to(&secret)))
        .join()
        .unwrap()
        .unwrap();
    assert!(opened_elsewhere);
}

#[test]
fn errors_have_messages_and_no_secret() {
    let _serial = serial();
    let text = Error::DecryptionFailed.to_string();
    assert!(text.contains("decryption failed"), "{text}");
    let e = Error::SizeMismatch {
        expected: 32,
        actual: 31,
    };
    let text = e.to_string();
    assert!(text.contains("32") && text.contains("31"), "{text}");
}
