//! Cryptographic helpers: the cipher, the hash, constant-time comparison and
//! copy, randomness.

pub(crate) mod cipher;
pub(crate) mod ct;
pub(crate) mod hash;
mod random;

pub use random::scramble_bytes;
