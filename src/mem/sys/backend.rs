//! Which memory the data pages come from, decided once per process: secret
//! memory (Linux `memfd_secret`) where the system gives it, anonymous
//! memory otherwise.
//!
//! The decision is made on the first allocation, or earlier by
//! [`request`] (the application's choice) or [`decision`] (a query). In
//! order: the application's choice; else the environment variable [`ENV`]
//! (`anonymous`, `secret` or `auto`); else `auto`: secret memory when the
//! system's probe ([`Pages::probe_secret_memory`]) succeeds. It never
//! changes afterwards, so every mapping [`Pages::allocate`] returns comes
//! from the same backend.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use super::{Os, Pages};
use crate::error::{Error, Result};
use crate::mem::memory_backend::MemoryBackend;

/// The environment variable through which an operator picks the backend
/// (unless the application chose one itself).
pub(crate) const ENV: &str = "MEMGUARD_MEMORY_BACKEND";

/// The backend in effect and why.
#[derive(Debug)]
pub(crate) struct Decision {
    /// The backend every mapping comes from.
    pub(crate) backend: MemoryBackend,
    /// Why, in a sentence for `memguard doctor` and logs.
    pub(crate) reason: String,
    /// What the application asked for, if it asked.
    requested: Option<MemoryBackend>,
}

const NONE: u8 = 0;
const SECRET: u8 = 1;
const ANONYMOUS: u8 = 2;

/// What the application asked for before the decision.
static REQUESTED: AtomicU8 = AtomicU8::new(NONE);
static DECISION: OnceLock<Decision> = OnceLock::new();

/// The decision, made now if it was not yet.
pub(crate) fn decision() -> &'static Decision {
    DECISION.get_or_init(decide)
}

/// Whether mappings come from secret memory (decides if not yet).
#[cfg_attr(not(all(unix, not(miri))), allow(dead_code))] // only Unix maps secret memory
pub(crate) fn secret() -> bool {
    decision().backend == MemoryBackend::SecretMemory
}

/// The application's choice, before any allocation.
pub(crate) fn request(backend: MemoryBackend) -> Result<()> {
    if let Some(d) = DECISION.get() {
        return Err(Error::MemoryBackendAlreadyChosen {
            current: d.backend.name(),
        });
    }
    let code = match backend {
        MemoryBackend::SecretMemory => SECRET,
        MemoryBackend::Anonymous => ANONYMOUS,
    };
    REQUESTED.store(code, Ordering::Release);
    let d = decision();
    if d.requested != Some(backend) {
        // Another thread decided in between, without this request.
        return Err(Error::MemoryBackendAlreadyChosen {
            current: d.backend.name(),
        });
    }
    if d.backend != backend {
        return Err(Error::SecretMemoryUnavailable {
            reason: d.reason.clone(),
        });
    }
    Ok(())
}

fn decide() -> Decision {
    let requested = match REQUESTED.load(Ordering::Acquire) {
        SECRET => Some(MemoryBackend::SecretMemory),
        ANONYMOUS => Some(MemoryBackend::Anonymous),
        _ => None,
    };
    let (backend, reason) = match requested {
        Some(MemoryBackend::Anonymous) => (
            MemoryBackend::Anonymous,
            "anonymous memory, as the application chose (set_memory_backend)".to_owned(),
        ),
        Some(MemoryBackend::SecretMemory) => {
            probe("secret memory, as the application chose (set_memory_backend)")
        }
        None => match std::env::var(ENV) {
            Ok(v) if v.eq_ignore_ascii_case("anonymous") => (
                MemoryBackend::Anonymous,
                format!("anonymous memory, as {ENV}=anonymous says"),
            ),
            Ok(v) if v.eq_ignore_ascii_case("secret") => {
                probe(&format!("secret memory, as {ENV}=secret says"))
            }
            Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("auto") => {
                probe("secret memory, the default where the system has it")
            }
            Ok(other) => {
                let (backend, reason) = probe("secret memory, the default where the system has it");
                (
                    backend,
                    format!(
                        "{reason} ({ENV}={other:?} ignored: the values are anonymous, secret \
                         and auto)"
                    ),
                )
            }
            Err(_) => probe("secret memory, the default where the system has it"),
        },
    };
    Decision {
        backend,
        reason,
        requested,
    }
}

/// Secret memory with `why` when the system's probe succeeds; anonymous
/// memory with the probe's reason otherwise.
fn probe(why: &str) -> (MemoryBackend, String) {
    match Os::probe_secret_memory() {
        Ok(how) => (MemoryBackend::SecretMemory, format!("{why}: {how}")),
        Err(why_not) => (
            MemoryBackend::Anonymous,
            format!("anonymous memory, because {why_not}"),
        ),
    }
}
