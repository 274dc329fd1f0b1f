//! Cryptographic helpers: constant-time comparison and copy, randomness.

pub(crate) mod ct;
mod random;

pub use random::scramble_bytes;
