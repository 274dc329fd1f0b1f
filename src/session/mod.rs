//! Session-wide operations: purging every secret at once, and exiting after
//! doing so.

mod exit;
mod purge;

pub use exit::{safe_exit, safe_panic};
pub use purge::{live_buffers, purge};
