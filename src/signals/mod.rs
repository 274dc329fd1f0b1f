//! Signal handling: purge, then exit, when the process is told to stop.
//!
//! (The wipe on SIGSEGV/SIGBUS is a crash handler in the memory layer,
//! installed on the first allocation: see
//! [`crash_handler_installed`](crate::crash_handler_installed).)

mod catch;

pub use catch::{catch_interrupt, catch_signal, TERMINATING_SIGNALS};
