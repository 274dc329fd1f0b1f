//! One cfg for the crate: `memguard_avx512`, set when the compiler is Rust
//! 1.89 or later, the first stable release with the AVX-512 intrinsics and
//! target features. It turns on the AVX-512VL Salsa20 path
//! (`src/crypto/salsa20/avx2.rs`); an older compiler (down to the crate's
//! `rust-version`) builds the crate without it, on the AVX2/SSE2 paths.

use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(memguard_avx512)");
    // Cargo reruns a build script whose own source changed; beyond that,
    // only a different compiler changes the answer.
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // "rustc 1.95.0 (...)" or "rustc 1.95.0-nightly (...)": the minor
    // version is the second dot-separated field. Anything unreadable
    // leaves the cfg off (the crate builds either way).
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|v| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()));
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=memguard_avx512");
    }
}
