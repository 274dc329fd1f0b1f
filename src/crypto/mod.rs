//! Cryptographic helpers: the cipher, its MAC, the hash, constant-time
//! comparison and copy, randomness.

pub(crate) mod cipher;
// The vectorised Salsa20: `unsafe` for the intrinsics only (see its docs).
pub(crate) mod ct;
pub(crate) mod hash;
pub(crate) mod mac;
mod random;
#[allow(unsafe_code)]
pub(crate) mod salsa20;

pub use random::scramble_bytes;
