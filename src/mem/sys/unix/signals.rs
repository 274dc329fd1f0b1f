//! Termination signals on Unix, through `signal-hook`: a listening thread
//! for the signals `catch_signal` catches, and conditional default actions
//! for those it no longer catches.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use signal_hook::consts::signal::{
    SIGALRM, SIGBUS, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGKILL, SIGQUIT, SIGSEGV, SIGSTOP, SIGTERM,
    SIGUSR1, SIGUSR2,
};
use signal_hook::iterator::Handle;

use crate::error::{Error, Result};
use crate::mem::sys::Termination;
use crate::signals::Signal;

/// Signals that cannot be caught (SIGKILL, SIGSTOP) or must not be caught
/// this way: a fault cannot be deferred to another thread (the crash handler
/// deals with SIGSEGV and SIGBUS).
const REFUSED: &[i32] = &[SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE];

/// For every signal memguard ever caught, a flag that is true when memguard
/// no longer catches it: the signal then gets its default action back (the
/// OS-level handler signal-hook installed stays in place, so without this
/// the signal would be ignored). Taken only by [`Termination::claim`],
/// which its caller serialises (under its own lock, held across `fork`).
static RELEASED: Mutex<Option<HashMap<i32, Arc<AtomicBool>>>> = Mutex::new(None);

/// Unix signals through `signal-hook`.
pub(crate) struct Signals;

fn sigaction_error(source: std::io::Error) -> Error {
    Error::Os {
        operation: "sigaction",
        source,
    }
}

impl Termination for Signals {
    type Listener = Handle;

    const TERMINATING: &'static [i32] =
        &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM];

    fn refused(signal: i32) -> bool {
        REFUSED.contains(&signal)
    }

    fn number(signal: Signal) -> i32 {
        match signal {
            Signal::Interrupt => SIGINT,
            Signal::Terminate => SIGTERM,
            Signal::Hangup => SIGHUP,
            Signal::Quit => SIGQUIT,
        }
    }

    fn signal(number: i32) -> Option<Signal> {
        match number {
            SIGINT => Some(Signal::Interrupt),
            SIGTERM => Some(Signal::Terminate),
            SIGHUP => Some(Signal::Hangup),
            SIGQUIT => Some(Signal::Quit),
            _ => None,
        }
    }

    fn listen(signals: &[i32], on_signal: fn(i32)) -> Result<Handle> {
        let mut incoming = signal_hook::iterator::Signals::new(signals).map_err(sigaction_error)?;
        let handle = incoming.handle();
        let listener = std::thread::Builder::new()
            .name("memguard-signals".into())
            .spawn(move || {
                if let Some(signal) = incoming.forever().next() {
                    on_signal(signal);
                }
            });
        if let Err(source) = listener {
            handle.close();
            return Err(Error::Os {
                operation: "spawn signal thread",
                source,
            });
        }
        Ok(handle)
    }

    fn close(listener: Handle) {
        // Unregisters its signals and ends its thread.
        listener.close();
    }

    fn claim(caught: &[i32]) -> Result<()> {
        let mut released = RELEASED.lock().unwrap_or_else(|p| p.into_inner());
        let map = released.get_or_insert_with(HashMap::new);
        for &signal in caught {
            if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(signal) {
                let flag = Arc::new(AtomicBool::new(false));
                signal_hook::flag::register_conditional_default(signal, Arc::clone(&flag))
                    .map_err(sigaction_error)?;
                slot.insert(flag);
            }
        }
        for (signal, flag) in map.iter() {
            flag.store(
                !caught.contains(signal),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_names_map_to_the_posix_numbers_and_back() {
        for (signal, number) in [
            (Signal::Interrupt, libc::SIGINT),
            (Signal::Terminate, libc::SIGTERM),
            (Signal::Hangup, libc::SIGHUP),
            (Signal::Quit, libc::SIGQUIT),
        ] {
            assert_eq!(Signals::number(signal), number);
            assert_eq!(Signals::signal(number), Some(signal));
        }
        assert_eq!(Signals::signal(libc::SIGUSR1), None);
        assert!(Signals::refused(libc::SIGKILL));
        assert!(!Signals::refused(libc::SIGTERM));
    }
}
