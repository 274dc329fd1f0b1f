//! Session-wide operations: purging every secret at once.

mod purge;

pub use purge::{live_buffers, purge};
