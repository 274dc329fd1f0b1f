//! What `/proc/self` says about this process: its locked memory and its
//! mappings.

/// The value of `key` in `/proc/self/status` (such as `VmLck`), trimmed.
///
/// # Panics
/// When the file cannot be read or has no such key.
pub fn status_field(key: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
        .trim()
        .to_owned()
}

/// Bytes this process has locked (`VmLck`).
///
/// # Panics
/// When `VmLck` is missing or not of the form `N kB`.
pub fn locked_bytes() -> usize {
    let v = status_field("VmLck");
    let kib: usize = v
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("VmLck is not `N kB`: {v:?}"));
    kib * 1024
}

/// The permissions (`rw-p`, `---p`, ...) of the mapping holding `addr`, or
/// `None` when nothing is mapped there.
pub fn perms(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start..end)
            .contains(&addr)
            .then(|| fields.next().unwrap_or("").to_owned())
    })
}

/// Whether `addr` lies in any mapping of this process.
pub fn is_mapped(addr: usize) -> bool {
    perms(addr).is_some()
}

/// The permissions `/proc/self/maps` shows for a buffer's data pages with
/// access `rwx` (`"rw-"`, `"r--"`, `"---"`): a shared mapping (`s`) when
/// they are secret memory (a `memfd_secret` file can only be mapped shared),
/// a private one (`p`) otherwise.
pub fn data_perms(rwx: &str) -> String {
    let shared = memguard::memory_backend() == memguard::MemoryBackend::SecretMemory;
    format!("{rwx}{}", if shared { 's' } else { 'p' })
}
