//! Cryptographic helpers: the cipher, its MAC, the hash, constant-time
//! comparison and copy, randomness.

pub(crate) mod cipher;
pub(crate) mod ct;
pub(crate) mod hash;
pub(crate) mod mac;
mod random;

pub use random::scramble_bytes;
