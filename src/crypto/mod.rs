//! Cryptographic helpers: the cipher, its MAC, the hash, constant-time
//! comparison (and the plain copy beside it), randomness, nonces.

pub(crate) mod cipher;
pub(crate) mod ct;
pub(crate) mod hash;
pub(crate) mod mac;
pub(crate) mod nonce;
pub(crate) mod poly1305_64;
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[allow(unsafe_code)]
#[deny(clippy::multiple_unsafe_ops_per_block)]
pub(crate) mod poly1305_avx2;
mod random;
// The vectorised Salsa20: `unsafe` for the intrinsics only (see its docs),
// one unsafe operation per block, each with its own `// SAFETY:` comment.
#[allow(unsafe_code)]
#[deny(clippy::multiple_unsafe_ops_per_block)]
pub(crate) mod salsa20;

pub use random::scramble_bytes;
