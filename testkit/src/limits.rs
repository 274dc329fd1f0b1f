//! Limits a test child sets on itself, so that the library's lock-limit
//! paths run even though the tests run as root.

/// Drops `CAP_IPC_LOCK` (and every other capability) from the calling
/// thread, so that `RLIMIT_MEMLOCK` applies to it even when the tests run as
/// root. Only the calling thread is affected.
///
/// # Panics
/// When the kernel refuses.
#[cfg(target_os = "linux")]
pub fn drop_capabilities() {
    use rustix::thread::{set_capabilities, CapabilitySet, CapabilitySets};
    set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .expect("drop capabilities");
}

/// Sets the soft and hard `RLIMIT_MEMLOCK` of this process to `bytes`.
///
/// # Panics
/// When the kernel refuses.
pub fn set_memlock_limit(bytes: u64) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )
    .expect("set RLIMIT_MEMLOCK");
}
