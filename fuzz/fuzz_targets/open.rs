//! `Enclave::open` and `open_into` on genuine, tampered and forged sealed
//! data.
//!
//! (a) A genuine enclave, with fuzz-chosen bytes of its sealed form xored
//! (possibly none, possibly cancelling out), must open to the original
//! plaintext exactly when the sealed bytes are unchanged, and otherwise fail
//! with `DecryptionFailed`, leaking no buffer and leaving `open_into`'s
//! destination as it was.
//!
//! (b) An enclave whose sealed bytes are all fuzz-chosen must never open: a
//! forgery accepted without the session key would be a broken MAC.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memguard::{Enclave, Error, LockedBuffer};

/// `nonce (24) || tag (16)` before the ciphertext.
const HEADER: usize = 40;
const MAX_LEN: usize = 16 * 1024;
/// What an `open_into` destination holds before the call.
const FILL: u8 = 0x5A;

#[derive(Arbitrary, Debug)]
struct Input {
    source: Source,
    /// `(position, xor)` pairs applied to the sealed bytes, positions taken
    /// modulo their length.
    tampers: Vec<(u16, u8)>,
    /// The whole sealed form of a forged enclave (used when it holds more
    /// than the 40-byte header).
    forged: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Source {
    /// `Enclave::new` of these bytes (empty: must fail with `NullBuffer`).
    Bytes(Vec<u8>),
    /// `Enclave::random` of 1..=16384 bytes.
    Random(u16),
}

/// Opens `e` both ways and checks the outcome: the plaintext when `genuine`,
/// `DecryptionFailed` with nothing leaked or written otherwise.
fn check_open(e: &Enclave, genuine: Option<&[u8]>) {
    let before = memguard::live_buffers();
    match (e.open(), genuine) {
        (Ok(buf), Some(plain)) => {
            assert!(!buf.is_mutable(), "open gives a frozen buffer");
            assert_eq!(&*buf.bytes(), plain, "open gave other bytes");
        }
        (Err(Error::DecryptionFailed), None) => {
            assert_eq!(memguard::live_buffers(), before, "a failed open leaked");
        }
        (Ok(_), None) => panic!("altered or forged sealed data opened"),
        (Err(err), _) => panic!("open: {err:?} (genuine: {})", genuine.is_some()),
    }

    let mut dst = LockedBuffer::new(e.len()).expect("LockedBuffer::new");
    dst.bytes_mut().expect("bytes_mut").fill(FILL);
    match (e.open_into(&mut dst), genuine) {
        (Ok(()), Some(plain)) => assert_eq!(&*dst.bytes(), plain, "open_into"),
        (Err(Error::DecryptionFailed), None) => assert!(
            dst.bytes().iter().all(|&b| b == FILL),
            "a failed open_into wrote to its destination"
        ),
        (Ok(()), None) => panic!("altered or forged sealed data opened (open_into)"),
        (Err(err), _) => panic!("open_into: {err:?} (genuine: {})", genuine.is_some()),
    }
    drop(dst);
    assert_eq!(memguard::live_buffers(), before, "open leaked a buffer");
}

fn tampered(input: &Input) {
    let (enclave, plain) = match &input.source {
        Source::Bytes(bytes) => {
            let plain = &bytes[..bytes.len().min(MAX_LEN)];
            let mut src = plain.to_vec();
            if plain.is_empty() {
                assert!(matches!(Enclave::new(&mut src), Err(Error::NullBuffer)));
                return;
            }
            let e = Enclave::new(&mut src).expect("Enclave::new");
            assert!(src.iter().all(|&b| b == 0), "the source must be wiped");
            (e, plain.to_vec())
        }
        Source::Random(len) => {
            let len = usize::from(*len) % MAX_LEN + 1;
            let e = Enclave::random(len).expect("Enclave::random");
            let plain = e.open().expect("open a random enclave").bytes().to_vec();
            (e, plain)
        }
    };
    assert_eq!(enclave.len(), plain.len());
    assert_eq!(enclave.sealed_bytes().len(), plain.len() + HEADER);

    let mut altered = enclave.clone();
    let sealed = altered.sealed_bytes_mut();
    let n = sealed.len();
    for &(pos, xor) in &input.tampers {
        sealed[usize::from(pos) % n] ^= xor;
    }
    let genuine = altered.sealed_bytes() == enclave.sealed_bytes();
    check_open(&altered, genuine.then_some(&plain[..]));
    // The clone is independent: the original still opens.
    check_open(&enclave, Some(&plain));
}

fn forged(bytes: &[u8]) {
    if bytes.len() <= HEADER {
        return;
    }
    let bytes = &bytes[..bytes.len().min(HEADER + MAX_LEN)];
    let mut e = Enclave::random(bytes.len() - HEADER).expect("Enclave::random");
    if e.sealed_bytes() == bytes {
        // The fuzzer cannot know the nonce, let alone the key.
        unreachable!("the forged bytes equal a fresh random enclave");
    }
    e.sealed_bytes_mut().copy_from_slice(bytes);
    check_open(&e, None);
}

fuzz_target!(
    init: {
        // Rekeying changes no key; its thread only makes coverage noisy.
        memguard::set_rekey_interval(None);
        // Make the session key now, so that it is not counted as a leak.
        drop(Enclave::random(1));
    },
    |input: Input| {
        tampered(&input);
        forged(&input.forged);
    }
);
