//! Signal handling: purge, then exit, when the process is told to stop.
//!
//! (The wipe on a memory fault is a crash handler in the memory layer,
//! installed on the first allocation: see
//! [`crash_handler_installed`](crate::crash_handler_installed).)

mod catch;

pub use catch::{catch_interrupt, catch_signal, catch_signals, Signal, TERMINATING_SIGNALS};
