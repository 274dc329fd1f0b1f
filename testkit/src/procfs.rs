//! What `/proc` says about a process: `status` fields, and its mappings
//! from `maps` or `smaps` (one parser for both).

use std::io;

/// The value of `key` in `/proc/<pid>/status` (such as `VmLck`), trimmed;
/// `None` when the file has no such key.
pub fn status_field_of(pid: impl std::fmt::Display, key: &str) -> io::Result<Option<String>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_owned()))
}

/// The value of `key` in `/proc/self/status` (such as `VmLck`), trimmed.
///
/// # Panics
/// When the file cannot be read or has no such key.
pub fn status_field(key: &str) -> String {
    status_field_of("self", key)
        .expect("read /proc/self/status")
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

/// A `N kB` value (of `status` or `smaps`) in bytes.
pub fn kb_to_bytes(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Bytes this process has locked (`VmLck`).
///
/// # Panics
/// When `VmLck` is missing or not of the form `N kB`.
pub fn locked_bytes() -> usize {
    let v = status_field("VmLck");
    kb_to_bytes(&v).unwrap_or_else(|| panic!("VmLck is not `N kB`: {v:?}")) as usize
}

/// One mapping of a process: its header line, and, when read from smaps,
/// its `Key: value` fields and `VmFlags`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// `rw-p`, `---p`, ...
    pub perms: String,
    /// The path or `[name]`; empty for an anonymous mapping.
    pub path: String,
    /// smaps' `Key: value` lines other than `VmFlags` (empty from maps).
    pub fields: Vec<(String, String)>,
    /// The two-letter flags of smaps' `VmFlags` line (empty from maps).
    pub vm_flags: Vec<String>,
}

impl Mapping {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether it is empty (never, for a mapping the kernel lists).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether `addr` lies in it.
    pub fn contains(&self, addr: usize) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// Whether smaps' `VmFlags` has `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.vm_flags.iter().any(|f| f == flag)
    }

    /// The smaps field `key` (`Rss`, `Locked`, ...), trimmed.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The smaps field `key` of the form `N kB`, in bytes.
    pub fn field_bytes(&self, key: &str) -> Option<u64> {
        self.field(key).and_then(kb_to_bytes)
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "{:x}-{:x} {} {} [VmFlags: {}]",
            self.start,
            self.end,
            self.perms,
            if self.path.is_empty() {
                "(anonymous)"
            } else {
                &self.path
            },
            self.vm_flags.join(" ")
        )
    }
}

/// Parses a maps line, also the header lines of smaps:
/// `start-end perms offset dev inode [path]`. `None` for anything else.
pub fn parse_header(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let valid_perms = perms.len() == 4
        && perms
            .chars()
            .zip(["r-", "w-", "x-", "ps"])
            .all(|(c, allowed)| allowed.contains(c));
    if !valid_perms || start >= end {
        return None;
    }
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    Some(Mapping {
        start,
        end,
        perms: perms.to_owned(),
        path: fields.collect::<Vec<_>>().join(" "),
        ..Mapping::default()
    })
}

/// Parses the text of a `maps` file.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_header).collect()
}

/// Parses the text of an `smaps` file. Fails on a line that is neither a
/// header nor `Key: value`, or on a mapping without a `VmFlags` line.
pub fn parse_smaps(text: &str) -> Result<Vec<Mapping>, String> {
    let mut maps: Vec<Mapping> = Vec::new();
    let mut flags_seen = Vec::new();
    for line in text.lines() {
        if let Some(mapping) = parse_header(line) {
            maps.push(mapping);
            flags_seen.push(false);
            continue;
        }
        let Some(current) = maps.last_mut() else {
            return Err(format!("smaps line before any header: {line:?}"));
        };
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "smaps line is neither a header nor `Key: value`: {line:?}"
            ));
        };
        if key == "VmFlags" {
            current.vm_flags = value.split_whitespace().map(str::to_owned).collect();
            if let Some(seen) = flags_seen.last_mut() {
                *seen = true;
            }
        } else {
            current
                .fields
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if let Some(i) = flags_seen.iter().position(|seen| !seen) {
        return Err(format!("no VmFlags line for {:?}", maps[i]));
    }
    Ok(maps)
}

/// The mappings of `pid` (a number or `self`), from `/proc/<pid>/maps`.
pub fn read_maps(pid: impl std::fmt::Display) -> io::Result<Vec<Mapping>> {
    Ok(parse_maps(&std::fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

/// The mappings of `pid` (a number or `self`) with their fields and
/// `VmFlags`, from `/proc/<pid>/smaps`.
pub fn read_smaps(pid: impl std::fmt::Display) -> Result<Vec<Mapping>, String> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_smaps(&text)
}

/// The mapping of `maps` that holds `addr`.
pub fn mapping_of(maps: &[Mapping], addr: usize) -> Option<&Mapping> {
    maps.iter().find(|m| m.contains(addr))
}

/// The permissions (`rw-p`, `---p`, ...) of this process's mapping that
/// holds `addr`, or `None` when nothing is mapped there.
///
/// # Panics
/// When `/proc/self/maps` cannot be read.
pub fn perms(addr: usize) -> Option<String> {
    let maps = read_maps("self").expect("read /proc/self/maps");
    mapping_of(&maps, addr).map(|m| m.perms.clone())
}

/// Whether `addr` lies in any mapping of this process.
pub fn is_mapped(addr: usize) -> bool {
    perms(addr).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0000002000 rw-p 00000000 00:00 0 
Size:                  8 kB
Locked:                8 kB
VmFlags: rd wr mr mw me lo dd wf
7f0000002000-7f0000003000 ---p 00000000 00:00 0 
Size:                  4 kB
Rss:                   0 kB
VmFlags: mr mw me
7f0000010000-7f0000011000 r-xp 00001000 08:01 1234    /usr/lib/a file.so
Size:                  4 kB
VmFlags: rd ex mr mw me
";

    #[test]
    fn smaps_headers_fields_and_flags() {
        let maps = parse_smaps(SMAPS).unwrap();
        assert_eq!(maps.len(), 3);
        assert_eq!(
            (maps[0].start, maps[0].end),
            (0x7f00_0000_0000, 0x7f00_0000_2000)
        );
        assert_eq!(maps[0].perms, "rw-p");
        assert_eq!(maps[0].path, "");
        assert!(maps[0].has_flag("lo") && maps[0].has_flag("wf"));
        assert!(!maps[1].has_flag("lo"));
        assert_eq!(maps[0].field_bytes("Locked"), Some(8192));
        assert_eq!(maps[1].field_bytes("Rss"), Some(0));
        assert_eq!(maps[1].field("Locked"), None);
        assert_eq!(maps[2].path, "/usr/lib/a file.so");
        assert_eq!(mapping_of(&maps, 0x7f00_0000_2fff).unwrap().perms, "---p");
        assert!(mapping_of(&maps, 0x7f00_0000_3000).is_none());
    }

    #[test]
    fn malformed_smaps_is_refused() {
        assert!(
            parse_smaps("Size: 4 kB\n").is_err(),
            "field before a header"
        );
        let no_flags = "7f0000000000-7f0000001000 rw-p 00000000 00:00 0\nSize: 4 kB\n";
        assert!(parse_smaps(no_flags).is_err(), "mapping without VmFlags");
        let junk = "7f0000000000-7f0000001000 rw-p 00000000 00:00 0\nnonsense\n";
        assert!(parse_smaps(junk).is_err(), "line neither header nor field");
    }

    #[test]
    fn headers_with_bad_ranges_or_perms_are_not_mappings() {
        assert!(parse_header("2000-1000 rw-p 0 00:00 0").is_none());
        assert!(parse_header("1000-2000 rwxq 0 00:00 0").is_none());
        assert!(parse_header("1000-2000 rw- 0 00:00 0").is_none());
        assert!(parse_header("Size: 4 kB").is_none());
    }

    #[test]
    fn this_process_maps_its_own_stack_and_locks_nothing_it_did_not_ask_for() {
        let local = 7u64;
        let addr = std::ptr::addr_of!(local) as usize;
        assert!(
            perms(addr).is_some_and(|p| p.starts_with("rw")),
            "{:?}",
            perms(addr)
        );
        assert!(!is_mapped(0));
        let smaps = read_smaps("self").unwrap();
        let m = mapping_of(&smaps, addr).unwrap();
        assert!(m.field_bytes("Size").is_some_and(|s| s as usize == m.len()));
        assert_eq!(
            kb_to_bytes(&status_field("VmLck")),
            Some(locked_bytes() as u64)
        );
    }
}
