//! [`catch_signal`] and [`catch_interrupt`].

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use signal_hook::consts::signal::{
    SIGALRM, SIGBUS, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGKILL, SIGQUIT, SIGSEGV, SIGSTOP, SIGTERM,
    SIGUSR1, SIGUSR2,
};
use signal_hook::iterator::{Handle, Signals};

use crate::error::{Error, Result};
use crate::mem::{self, ForkLock, Held};

/// The signals caught when [`catch_signal`] is given an empty list: the
/// usual requests to terminate.
pub const TERMINATING_SIGNALS: &[i32] =
    &[SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM];

/// Signals that cannot be caught (SIGKILL, SIGSTOP) or must not be caught
/// this way: a fault cannot be deferred to another thread (the crash handler
/// deals with SIGSEGV and SIGBUS).
const REFUSED: &[i32] = &[SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE];

type Handler = Arc<dyn Fn(i32) + Send + Sync + 'static>;

/// The listening thread's handle and the handler it runs.
static CURRENT: Mutex<Option<(Handle, Handler)>> = Mutex::new(None);

/// For every signal memguard ever caught, a flag that is true when memguard
/// no longer catches it: the signal then gets its default action back (the
/// OS-level handler signal-hook installed stays in place, so without this
/// the signal would be ignored).
static RELEASED: Mutex<Released> = Mutex::new(None);

type Released = Option<HashMap<i32, Arc<AtomicBool>>>;

thread_local! {
    static CURRENT_HELD: Held<Option<(Handle, Handler)>> = const { Cell::new(None) };
    static RELEASED_HELD: Held<Released> = const { Cell::new(None) };
}

/// Holds both locks across `fork` (neither is ever held while taking the
/// other), so that a child can call [`catch_signal`] too.
fn hold_across_fork() {
    static FORK_SAFE: Once = Once::new();
    FORK_SAFE.call_once(|| {
        mem::hold_across_fork(
            ForkLock::Signals,
            || {
                mem::take_into(&CURRENT_HELD, &CURRENT);
                mem::take_into(&RELEASED_HELD, &RELEASED);
            },
            || {
                mem::give_back_from(&RELEASED_HELD);
                mem::give_back_from(&CURRENT_HELD);
            },
        );
    });
}

fn current() -> MutexGuard<'static, Option<(Handle, Handler)>> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks `caught` as caught by memguard and every other signal it caught
/// before as released to its default action.
fn claim_signals(caught: &[i32]) -> Result<()> {
    let mut released = RELEASED.lock().unwrap_or_else(|p| p.into_inner());
    let map = released.get_or_insert_with(HashMap::new);
    for &signal in caught {
        if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(signal) {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register_conditional_default(signal, Arc::clone(&flag)).map_err(
                |source| Error::Os {
                    operation: "sigaction",
                    source,
                },
            )?;
            slot.insert(flag);
        }
    }
    for (signal, flag) in map.iter() {
        flag.store(!caught.contains(signal), Ordering::SeqCst);
    }
    Ok(())
}

/// On `signals`, runs `handler`, purges every secret and exits with code 1.
///
/// The handler runs on an ordinary thread, not in signal context, so it may
/// do anything (log, flush, lock); a panic in it is caught and the purge
/// still happens. An empty list means [`TERMINATING_SIGNALS`]. A later call
/// replaces both the handler and the signals of the earlier one: signals it
/// no longer names get their default action back. Handlers that other code
/// installed for other signals are left alone.
///
/// In a process forked after this call, where the listening thread does
/// not exist, the same signals still purge and exit with code 1: every
/// buffer is wiped right in the signal handler and the process ends at once
/// (`_exit(1)`), without running `handler`, which may not be safe in signal
/// context. A child that wants its handler to run calls `catch_signal`
/// again.
///
/// Fails with [`Error::UncatchableSignal`] for SIGKILL, SIGSTOP, SIGSEGV,
/// SIGBUS, SIGILL and SIGFPE (faults are handled by the crash handler),
/// and with [`Error::Os`] when the handler cannot be registered.
///
/// ```
/// memguard::catch_signal(|signal| eprintln!("caught signal {signal}, wiping"), &[])?;
/// assert!(memguard::catch_signal(|_| {}, &[9]).is_err()); // SIGKILL
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn catch_signal<F: Fn(i32) + Send + Sync + 'static>(handler: F, signals: &[i32]) -> Result<()> {
    if let Some(&signal) = signals.iter().find(|s| REFUSED.contains(s)) {
        return Err(Error::UncatchableSignal { signal });
    }
    let list = if signals.is_empty() {
        TERMINATING_SIGNALS
    } else {
        signals
    };
    let mut incoming = Signals::new(list).map_err(|source| Error::Os {
        operation: "sigaction",
        source,
    })?;
    let handler: Handler = Arc::new(handler);
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
    hold_across_fork();
    if let Err(e) = claim_signals(list).and_then(|()| mem::terminate_children_on(list)) {
        handle.close();
        return Err(e);
    }
    let previous = current().replace((handle, handler));
    if let Some((old, _)) = previous {
        // Unregisters the earlier signals and ends the earlier thread.
        old.close();
    }
    Ok(())
}

/// On SIGINT (Ctrl-C), purges every secret and exits with code 1.
///
/// The same as `catch_signal(|_| {}, &[SIGINT])`; a later
/// [`catch_signal`] replaces it.
///
/// ```
/// memguard::catch_interrupt()?;
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn catch_interrupt() -> Result<()> {
    catch_signal(|_| {}, &[SIGINT])
}

fn on_signal(signal: i32) -> ! {
    let handler = current().as_ref().map(|(_, h)| Arc::clone(h));
    if let Some(h) = handler {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(signal)));
    }
    crate::safe_exit(1)
}
