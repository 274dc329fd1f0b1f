//! Helpers shared by the integration tests: the workspace's test tooling
//! (`memguard-testkit`, see testkit/), under the names the tests use.
//! Running a test's body in a child process (the test binary re-run with an
//! environment variable), reading how the child ended, limits a child sets
//! on itself, and (Linux) what `/proc/self` says.
#![allow(dead_code, unused_imports)]

pub use memguard_testkit::child::*;
#[cfg(target_os = "linux")]
pub use memguard_testkit::limits::drop_capabilities;
#[cfg(unix)]
pub use memguard_testkit::limits::set_memlock_limit;
#[cfg(target_os = "linux")]
pub use memguard_testkit::procfs;

/// The permissions `/proc/self/maps` shows for a buffer's data pages with
/// access `rwx` (`"rw-"`, `"r--"`, `"---"`): a shared mapping (`s`) when
/// they are secret memory (a `memfd_secret` file can only be mapped shared),
/// a private one (`p`) otherwise.
#[cfg(target_os = "linux")]
pub fn data_perms(rwx: &str) -> String {
    let shared = memguard::memory_backend() == memguard::MemoryBackend::SecretMemory;
    format!("{rwx}{}", if shared { 's' } else { 'p' })
}

/// Each byte of a positive control is the secret's byte XOR this.
pub const CONTROL_XOR: u8 = 0x5a;

/// The positive control of a memory scan: the secret XOR [`CONTROL_XOR`],
/// made inside guarded memory (so the plain secret never passes through
/// ordinary memory), copied into an ordinary `Vec`, and the buffer turned
/// back. A frozen buffer is melted for it and frozen again.
pub fn control_copy(buf: &mut memguard::LockedBuffer) -> Vec<u8> {
    let frozen = !buf.is_mutable();
    buf.melt().expect("melt");
    let flip = |buf: &mut memguard::LockedBuffer| {
        for b in buf.bytes_mut().expect("writable").iter_mut() {
            *b ^= CONTROL_XOR;
        }
    };
    flip(buf);
    let control: Vec<u8> = buf.bytes().to_vec();
    flip(buf);
    if frozen {
        buf.freeze().expect("freeze");
    }
    control
}
