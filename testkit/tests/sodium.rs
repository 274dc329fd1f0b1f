//! The libsodium wrappers against published vectors and each other.

use std::ffi::OsStr;

use memguard_testkit::sodium::{self, is_required, TAG_LEN};

/// RFC 8439, section 2.5.2: Poly1305 of "Cryptographic Forum Research
/// Group".
#[test]
fn onetimeauth_gives_the_rfc_8439_tag() {
    let Some(na) = sodium::get() else { return };
    let key: [u8; 32] = [
        0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5, 0x06,
        0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf, 0x41, 0x49,
        0xf5, 0x1b,
    ];
    let tag = [
        0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01, 0x27,
        0xa9,
    ];
    assert_eq!(
        na.onetimeauth(b"Cryptographic Forum Research Group", &key),
        tag
    );
}

/// Starting at block `ic` is the keystream from byte `64 * ic` on, and the
/// keystream is XORed into the message (so twice gives it back).
#[test]
fn stream_salsa20_xor_ic_starts_at_its_block_counter() {
    let Some(na) = sodium::get() else { return };
    let key = [7u8; 32];
    let nonce = [9u8; 8];
    let zeros = vec![0u8; 64 * 5];
    let mut from0 = vec![0u8; zeros.len()];
    na.stream_salsa20_xor_ic(&mut from0, &zeros, &nonce, 0, &key);
    assert_ne!(from0[..64], [0u8; 64]);
    let mut from3 = vec![0u8; 64 * 2];
    na.stream_salsa20_xor_ic(&mut from3, &zeros[..128], &nonce, 3, &key);
    assert_eq!(from3, from0[64 * 3..]);
    // XOR twice is the message again.
    let msg: Vec<u8> = (0..100u8).collect();
    let mut once = vec![0u8; msg.len()];
    na.stream_salsa20_xor_ic(&mut once, &msg, &nonce, 1, &key);
    assert_eq!(
        once.iter()
            .zip(&msg)
            .map(|(a, b)| a ^ b)
            .collect::<Vec<_>>(),
        from0[64..164]
    );
    let mut twice = vec![0u8; msg.len()];
    na.stream_salsa20_xor_ic(&mut twice, &once, &nonce, 1, &key);
    assert_eq!(twice, msg);
}

#[test]
fn secretbox_opens_what_it_sealed_and_refuses_a_changed_byte() {
    let Some(na) = sodium::get() else { return };
    let key = [1u8; 32];
    let nonce = [2u8; 24];
    for len in [0, 1, 32, 1000] {
        let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut sealed = vec![0u8; len + TAG_LEN];
        na.secretbox_easy(&mut sealed, &msg, &nonce, &key);
        if len > 0 {
            assert_ne!(sealed[TAG_LEN..], msg[..], "len {len}: not encrypted");
        }
        let mut back = vec![0u8; len];
        assert!(na.secretbox_open_easy(&mut back, &sealed, &nonce, &key));
        assert_eq!(back, msg, "len {len}");
        for i in [0, sealed.len() - 1] {
            let mut forged = sealed.clone();
            forged[i] ^= 1;
            assert!(
                !na.secretbox_open_easy(&mut back, &forged, &nonce, &key),
                "len {len}: a changed byte {i} opened"
            );
        }
        assert!(!na.secretbox_open_easy(&mut back, &sealed, &[3u8; 24], &key));
    }
}

#[test]
#[should_panic(expected = "output length")]
fn a_wrong_output_length_panics_before_libsodium_is_called() {
    let Some(na) = sodium::get() else {
        panic!("output length (libsodium not found: nothing to call)")
    };
    let mut short = [0u8; 15];
    na.secretbox_easy(&mut short, b"", &[0; 24], &[0; 32]);
}

#[test]
fn only_exactly_1_requires_libsodium() {
    assert!(is_required(Some(OsStr::new("1"))));
    for other in ["", "0", "true", "yes", " 1", "11"] {
        assert!(!is_required(Some(OsStr::new(other))), "{other:?}");
    }
    assert!(!is_required(None));
}

/// On the machines that run `.ci/run` libsodium is installed and required:
/// there it must load.
#[test]
fn loads_where_it_is_required() {
    if is_required(std::env::var_os(sodium::REQUIRE_ENV).as_deref()) {
        assert!(sodium::load().is_some());
        assert!(sodium::get().is_some());
    }
}
