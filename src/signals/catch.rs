//! [`catch_signal`] and [`catch_interrupt`].

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, Once};

use crate::error::{Error, Result};
use crate::mem::sys::{OsSignals, Termination};
use crate::mem::{self, ForkLock, Held};

/// A request to terminate, named the same way on every operating system,
/// for [`catch_signals`].
///
/// | | Unix | Windows |
/// | --- | --- | --- |
/// | `Interrupt` | `SIGINT` (Ctrl-C) | `CTRL_C_EVENT`, `CTRL_BREAK_EVENT` |
/// | `Terminate` | `SIGTERM` | `CTRL_CLOSE_EVENT`, `CTRL_LOGOFF_EVENT`, `CTRL_SHUTDOWN_EVENT` |
/// | `Hangup` | `SIGHUP` | never arrives |
/// | `Quit` | `SIGQUIT` (Ctrl-\\) | never arrives |
///
/// ```
/// use memguard::Signal;
///
/// let n = Signal::Interrupt.number();
/// assert_eq!(Signal::from_number(n), Some(Signal::Interrupt));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// The user asked to interrupt (Ctrl-C).
    Interrupt,
    /// The process is asked to end (a service manager, `kill`, the console
    /// window closing, logoff or shutdown).
    Terminate,
    /// The terminal went away.
    Hangup,
    /// The user asked to quit (Ctrl-\\).
    Quit,
}

impl Signal {
    /// The number this operating system uses for it, as [`catch_signal`]
    /// takes and its handler receives (on Unix the signal number: `SIGINT`,
    /// `SIGTERM`, `SIGHUP`, `SIGQUIT`; on Windows the C runtime's numbers
    /// for `SIGINT` and `SIGTERM`, and the Unix numbers for the other two).
    pub fn number(self) -> i32 {
        OsSignals::number(self)
    }

    /// The portable name of a number [`catch_signal`]'s handler received,
    /// if it has one.
    pub fn from_number(number: i32) -> Option<Signal> {
        OsSignals::signal(number)
    }
}

/// The requests caught when [`catch_signal`] is given an empty list: the
/// usual requests to terminate (on Unix `SIGINT`, `SIGTERM`, `SIGHUP`,
/// `SIGQUIT`, `SIGUSR1`, `SIGUSR2`, `SIGALRM`; on Windows the numbers of
/// [`Signal::Interrupt`] and [`Signal::Terminate`]).
pub const TERMINATING_SIGNALS: &[i32] = OsSignals::TERMINATING;

type Handler = Arc<dyn Fn(i32) + Send + Sync + 'static>;

type Listening = Option<(<OsSignals as Termination>::Listener, Handler)>;

/// The listener and the handler it runs.
static CURRENT: Mutex<Listening> = Mutex::new(None);

/// Held while the platform layer records which signals are caught (see
/// `Termination::claim`), so that no thread is in the middle of it at a
/// `fork`.
static CLAIMS: Mutex<()> = Mutex::new(());

thread_local! {
    static CURRENT_HELD: Held<Listening> = const { Cell::new(None) };
    static CLAIMS_HELD: Held<()> = const { Cell::new(None) };
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
                mem::take_into(&CLAIMS_HELD, &CLAIMS);
            },
            || {
                mem::give_back_from(&CLAIMS_HELD);
                mem::give_back_from(&CURRENT_HELD);
            },
        );
    });
}

fn current() -> MutexGuard<'static, Listening> {
    CURRENT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks `caught` as caught by memguard and every other signal it caught
/// before as released to its default action.
fn claim_signals(caught: &[i32]) -> Result<()> {
    let _claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    OsSignals::claim(caught)
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
/// The numbers are the system's: signal numbers on Unix (`SIGINT`
/// ...), on Windows those of [`Signal::number`]. [`catch_signals`] takes
/// the portable names instead.
///
/// Fails with [`Error::UncatchableSignal`] for SIGKILL, SIGSTOP, SIGSEGV,
/// SIGBUS, SIGILL and SIGFPE (faults are handled by the crash handler) and,
/// on Windows, for any number that is not one of [`Signal`]'s, and with
/// [`Error::Os`] when the handler cannot be registered.
///
/// ```
/// memguard::catch_signal(|signal| eprintln!("caught signal {signal}, wiping"), &[])?;
/// assert!(memguard::catch_signal(|_| {}, &[9]).is_err()); // SIGKILL
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn catch_signal<F: Fn(i32) + Send + Sync + 'static>(handler: F, signals: &[i32]) -> Result<()> {
    if let Some(&signal) = signals.iter().find(|&&s| OsSignals::refused(s)) {
        return Err(Error::UncatchableSignal { signal });
    }
    let list = if signals.is_empty() {
        TERMINATING_SIGNALS
    } else {
        signals
    };
    let listener = OsSignals::listen(list, on_signal)?;
    let handler: Handler = Arc::new(handler);
    hold_across_fork();
    if let Err(e) = claim_signals(list).and_then(|()| mem::terminate_children_on(list)) {
        OsSignals::close(listener);
        return Err(e);
    }
    let previous = current().replace((listener, handler));
    if let Some((old, _)) = previous {
        // Unregisters the earlier signals and ends the earlier listener.
        OsSignals::close(old);
    }
    Ok(())
}

/// [`catch_signal`] with the requests named portably: on every operating
/// system, on `signals` (an empty list means [`Signal::Interrupt`] and
/// [`Signal::Terminate`]), runs `handler`, purges every secret and exits
/// with code 1. Everything [`catch_signal`] says holds here too.
///
/// ```
/// use memguard::Signal;
///
/// memguard::catch_signals(
///     |signal| eprintln!("{signal:?}: wiping"),
///     &[Signal::Interrupt, Signal::Terminate],
/// )?;
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn catch_signals<F: Fn(Signal) + Send + Sync + 'static>(
    handler: F,
    signals: &[Signal],
) -> Result<()> {
    let wanted: &[Signal] = if signals.is_empty() {
        &[Signal::Interrupt, Signal::Terminate]
    } else {
        signals
    };
    let numbers: Vec<i32> = wanted.iter().map(|s| s.number()).collect();
    catch_signal(
        move |n| {
            if let Some(s) = Signal::from_number(n) {
                handler(s);
            }
        },
        &numbers,
    )
}

/// On Ctrl-C ([`Signal::Interrupt`]: SIGINT on Unix, Ctrl-C and Ctrl-Break
/// on Windows), purges every secret and exits with code 1.
///
/// The same as `catch_signals(|_| {}, &[Signal::Interrupt])`; a later
/// [`catch_signal`] or [`catch_signals`] replaces it.
///
/// ```
/// memguard::catch_interrupt()?;
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn catch_interrupt() -> Result<()> {
    catch_signal(|_| {}, &[Signal::Interrupt.number()])
}

fn on_signal(signal: i32) {
    let handler = current().as_ref().map(|(_, h)| Arc::clone(h));
    if let Some(h) = handler {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(signal)));
    }
    crate::safe_exit(1)
}
