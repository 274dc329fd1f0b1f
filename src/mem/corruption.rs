//! What happens when a canary turns out to be overwritten: every other
//! buffer is wiped, the damage is described on stderr, the process aborts.

use std::io::Write;
use std::sync::OnceLock;

/// One buffer whose canary was found overwritten at destruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CanaryCorruption {
    /// Address of the buffer's first data byte.
    pub(crate) address: usize,
    /// Length of the buffer's data.
    pub(crate) len: usize,
    /// Bytes of canary before the data.
    pub(crate) slack: usize,
    /// How many of those bytes were changed.
    pub(crate) damaged: usize,
}

/// Destroys every other live buffer and returns any further corruption it
/// finds. Set by the buffer layer, which owns the registry of live buffers.
type WipeAll = fn() -> Vec<CanaryCorruption>;

static WIPE_ALL: OnceLock<WipeAll> = OnceLock::new();

/// Installs the function that wipes every live buffer before an abort.
pub(crate) fn set_wipe_all(f: WipeAll) {
    let _ = WIPE_ALL.set(f);
}

/// Reports a corrupted canary found outside a purge: wipes every other
/// buffer first, then reports and aborts.
pub(crate) fn fatal(found: CanaryCorruption) -> ! {
    let mut all = vec![found];
    if let Some(wipe_all) = WIPE_ALL.get() {
        all.extend(wipe_all());
    }
    report_and_abort(&all)
}

/// Reports corrupted canaries after every buffer has been wiped, and aborts.
pub(crate) fn report_and_abort(found: &[CanaryCorruption]) -> ! {
    let mut err = std::io::stderr().lock();
    for c in found {
        let _ = writeln!(
            err,
            "memguard: canary check failed: {} of the {} canary bytes before the {}-byte buffer \
             at {:#x} were overwritten: a write overflowed past the bounds of a buffer (buffer \
             overflow or underflow). The buffer's data was wiped.",
            c.damaged, c.slack, c.len, c.address
        );
    }
    let _ = writeln!(
        err,
        "memguard: memory corruption detected; every live buffer has been wiped; aborting."
    );
    drop(err);
    std::process::abort()
}
