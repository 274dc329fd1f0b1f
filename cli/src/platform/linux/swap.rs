//! Swap classification for the `swap` row: whether a swap area is in RAM
//! (zram) or encrypted (dm-crypt), read from its block device in sysfs.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// `(major, minor)` of a Linux `dev_t`.
fn dev_numbers(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// What is known about the block device at `/sys/dev/block/<maj>:<min>`:
/// whether it or anything below it is dm-crypt, or zram.
fn block_device_kind(dir: &Path, depth: usize) -> Option<&'static str> {
    if depth > 8 {
        return None;
    }
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("zram") {
        return Some("zram (compressed RAM)");
    }
    if std::fs::read_to_string(canonical.join("dm/uuid")).is_ok_and(|u| u.starts_with("CRYPT-")) {
        return Some("dm-crypt (encrypted)");
    }
    // A partition: look at the whole disk too.
    if canonical.join("partition").exists() {
        if let Some(parent) = canonical.parent() {
            if let Some(kind) = block_device_kind(parent, depth + 1) {
                return Some(kind);
            }
        }
    }
    // A device-mapper or md device: look at what it is built on.
    if let Ok(slaves) = std::fs::read_dir(canonical.join("slaves")) {
        for slave in slaves.flatten() {
            if let Some(kind) = block_device_kind(&slave.path(), depth + 1) {
                return Some(kind);
            }
        }
    }
    None
}

/// Describes one swap area: in RAM or encrypted (`true`), or not known to
/// be (`false`).
pub fn classify_swap(path: &str) -> (bool, String) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return (
                false,
                format!("{path}: cannot stat ({e}), encryption unknown"),
            )
        }
    };
    let (dev, what) = if meta.file_type().is_block_device() {
        (meta.rdev(), "partition")
    } else {
        (meta.dev(), "file")
    };
    let (major, minor) = dev_numbers(dev);
    let dir = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    match block_device_kind(&dir, 0) {
        Some(kind) => (true, format!("{path}: {kind}")),
        None => (
            false,
            format!("{path}: {what} on block device {major}:{minor}, not known to be encrypted"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_major_and_minor() {
        assert_eq!(dev_numbers(0x0803), (8, 3));
        assert_eq!(dev_numbers((259 << 8) | 1), (259, 1));
    }

    #[test]
    fn swap_on_an_unknown_device_is_not_called_encrypted() {
        // procfs has an anonymous device number: no block device behind it.
        let (safe, text) = classify_swap("/proc/self/status");
        assert!(!safe, "{text}");
        assert!(text.contains("not known to be encrypted"), "{text}");
        let (safe, text) = classify_swap("/no/such/swapfile");
        assert!(!safe && text.contains("cannot stat"), "{text}");
    }
}
