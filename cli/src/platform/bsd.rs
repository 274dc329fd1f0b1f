//! FreeBSD and OpenBSD: RLIMIT_MEMLOCK, RLIMIT_CORE, the per-mapping flags
//! memguard sets (FreeBSD: MAP_NOCORE / MADV_NOCORE and
//! minherit(INHERIT_ZERO); OpenBSD: MAP_CONCEAL and
//! minherit(MAP_INHERIT_ZERO)), checked by a forked child reading zeros; and
//! the self-tests every Unix has. Compile-checked only in CI.

use serde_json::{json, Value};

use super::unix;
use crate::doctor::{self, Check, Kind, Row, Runs};

/// The OS's name in the report.
#[cfg(target_os = "freebsd")]
pub const OS: &str = "FreeBSD";
/// The OS's name in the report.
#[cfg(target_os = "openbsd")]
pub const OS: &str = "OpenBSD";

/// What memguard asks of each mapping here.
#[cfg(target_os = "freebsd")]
const MAPPING_FLAGS: &str = "MAP_NOCORE and MADV_NOCORE (out of core dumps), \
    minherit(INHERIT_ZERO) (forked children see zeros)";
/// What memguard asks of each mapping here.
#[cfg(target_os = "openbsd")]
const MAPPING_FLAGS: &str = "MAP_CONCEAL (out of core dumps), minherit(MAP_INHERIT_ZERO) (forked \
    children see zeros)";

/// What a child touching a guard page dies of.
pub const FAULT: &str = "SIGSEGV or SIGBUS";

/// What the crash handler catches.
pub const CRASH_EVENTS: &str = "SIGSEGV or SIGBUS";

/// The limit on locked memory, as evidence names it.
pub const LOCK_LIMIT: &str = "RLIMIT_MEMLOCK";

/// The fix for a small `RLIMIT_MEMLOCK`.
pub const LOCK_FIX: &str = "raise RLIMIT_MEMLOCK: `ulimit -l <KiB>` in the shell that starts the \
    program, or `memorylocked` in the user's login class (login.conf)";

pub use unix::{
    died_of_fault, ending, lock_shortfall, page_size, selftest, shared, terminal_width, Shared,
};

/// The report's `system` object.
pub fn system_info() -> Value {
    unix::system_info_of(OS)
}

/// The hardening self-test's view of the process: RLIMIT_CORE.
pub fn process_state() -> Value {
    json!({ "core": unix::core_limit() })
}

/// The doctor's rows on FreeBSD and OpenBSD, in the order they are
/// reported.
pub const CHECKS: &[Row] = &[
    doctor::PAGE_SIZE,
    unix::MEMLOCK_LIMIT,
    unix::CORE_DUMP_LIMIT,
    Row {
        name: "mapping flags",
        kind: Kind::System,
        runs: Runs::Here,
        check: |_| {
            Check::ok(
                "mapping flags",
                Kind::System,
                format!(
                    "each buffer's mapping gets {MAPPING_FLAGS}; `wipe on fork` below checks the \
                     second"
                ),
            )
        },
    },
    doctor::CRASH_HANDLER,
    doctor::GUARD_PAGES,
    doctor::FROZEN_WRITE,
    unix::WIPE_ON_FORK,
    doctor::SEAL_OPEN,
];
