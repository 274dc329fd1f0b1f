//! Looking at another process's memory from outside: `/proc/<pid>/maps`,
//! `/proc/<pid>/smaps` and `/proc/<pid>/mem`.
//!
//! Include it with `#[path = "support/scan.rs"] mod scan;` (the shared
//! `support` module does not declare it).
//!
//! [`scan`] reads every readable mapping of a process (the kernel's
//! `[vvar]`/`[vvar_vclock]`/`[vsyscall]` pages aside) and looks for every
//! 16-byte window of one or more patterns. Any 16-byte window of a pattern
//! contains one of the pattern's 8-byte blocks at offsets 0, 8, 16, ..., so
//! the search runs glibc's `memmem` (fast even in an unoptimised test build)
//! for each of those blocks and checks the windows around every candidate.
//! A window that straddles two mappings is not seen.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The length of the pieces of a pattern that are looked for.
pub const WINDOW: usize = 16;
/// Blocks searched with `memmem`; every window contains a whole one.
const BLOCK: usize = 8;
/// Mappings larger than this are not read (nothing in a test child is).
const MAX_MAPPING: usize = 1 << 30;

/// One mapping of a process, with its `VmFlags` when read from smaps.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub perms: String,
    pub path: String,
    /// The two-letter flags of smaps' `VmFlags` line (empty from maps).
    pub vm_flags: Vec<String>,
}

impl Mapping {
    pub fn contains(&self, addr: usize) -> bool {
        (self.start..self.end).contains(&addr)
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.vm_flags.iter().any(|f| f == flag)
    }

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

/// Parses a maps line (also the header lines of smaps).
fn parse_header(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let path = fields.nth(3).unwrap_or("").to_owned();
    Some(Mapping {
        start,
        end,
        perms: perms.to_owned(),
        path,
        vm_flags: Vec::new(),
    })
}

/// The mappings of `pid`, from `/proc/<pid>/maps`.
pub fn read_maps(pid: i32) -> std::io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(text.lines().filter_map(parse_header).collect())
}

/// The mappings of `pid` with their `VmFlags`, from `/proc/<pid>/smaps`.
pub fn read_smaps(pid: i32) -> std::io::Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut maps: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(last) = maps.last_mut() {
                last.vm_flags = flags.split_whitespace().map(str::to_owned).collect();
            }
        } else if let Some(m) = parse_header(line) {
            maps.push(m);
        }
    }
    Ok(maps)
}

/// The mapping of `maps` that holds `addr`.
pub fn mapping_of(maps: &[Mapping], addr: usize) -> Option<&Mapping> {
    maps.iter().find(|m| m.contains(addr))
}

/// A pattern to look for, with a name for messages.
pub struct Needle<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// What one scan found of one pattern.
#[derive(Debug, Default)]
pub struct Found {
    pub name: String,
    pub len: usize,
    /// For each window (by its offset in the pattern), whether it was seen.
    pub windows_seen: Vec<bool>,
    /// Every window seen: (address in the process, offset in the pattern).
    pub hits: BTreeSet<(usize, usize)>,
    /// Addresses where the whole pattern was seen.
    pub whole: Vec<usize>,
}

impl Found {
    pub fn windows_found(&self) -> usize {
        self.windows_seen.iter().filter(|&&s| s).count()
    }

    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// One line per mapping that holds hits.
    pub fn by_mapping(&self, maps: &[Mapping]) -> String {
        let mut per: Vec<(String, usize)> = Vec::new();
        for &(addr, _) in &self.hits {
            let name = mapping_of(maps, addr)
                .map_or_else(|| format!("{addr:#x} (no mapping)"), Mapping::describe);
            match per.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => per.push((name, 1)),
            }
        }
        per.iter()
            .map(|(name, n)| format!("\n    {n} window hits in {name}"))
            .collect()
    }
}

/// One scan of a process.
#[derive(Debug, Default)]
pub struct Scan {
    pub pid: i32,
    pub mappings: usize,
    pub bytes: usize,
    pub unreadable_pages: usize,
    /// The mappings as listed when the scan began.
    pub maps: Vec<Mapping>,
    /// One entry per needle, in the order given.
    pub found: Vec<Found>,
}

impl Scan {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "pid {}: {} mappings, {} bytes read, {} unreadable pages",
            self.pid, self.mappings, self.bytes, self.unreadable_pages
        );
        for f in &self.found {
            s.push_str(&format!(
                "\n  {} ({} bytes): {} of {} windows seen, {} window hits, whole at {:x?}{}",
                f.name,
                f.len,
                f.windows_found(),
                f.windows_seen.len(),
                f.hits.len(),
                f.whole,
                f.by_mapping(&self.maps)
            ));
        }
        s
    }
}

/// Every offset of `needle` in `hay`.
fn find_all(hay: &[u8], needle: &[u8], mut each: impl FnMut(usize)) {
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let rest = &hay[from..];
        // SAFETY: both pointers and lengths come from live slices; memmem
        // only reads them.
        let p = unsafe {
            libc::memmem(
                rest.as_ptr().cast(),
                rest.len(),
                needle.as_ptr().cast(),
                needle.len(),
            )
        };
        if p.is_null() {
            return;
        }
        let at = p as usize - hay.as_ptr() as usize;
        each(at);
        from = at + 1;
    }
}

/// Looks for every window of `pattern` in `hay` (the bytes of the mapping
/// that starts at `base`).
fn search(hay: &[u8], base: usize, pattern: &[u8], found: &mut Found) {
    let len = pattern.len();
    for k in 0..=(len - BLOCK) / BLOCK {
        let block = &pattern[k * BLOCK..k * BLOCK + BLOCK];
        find_all(hay, block, |at| {
            // The windows that contain block k start at 8k-8 ..= 8k.
            let first = (k * BLOCK).saturating_sub(WINDOW - BLOCK);
            let last = (k * BLOCK).min(len - WINDOW);
            for i in first..=last {
                let back = k * BLOCK - i;
                let Some(start) = at.checked_sub(back) else {
                    continue;
                };
                if hay.get(start..start + WINDOW) == Some(&pattern[i..i + WINDOW]) {
                    found.windows_seen[i] = true;
                    found.hits.insert((base + start, i));
                    if i == 0
                        && hay.get(start..start + len) == Some(pattern)
                        && !found.whole.contains(&(base + start))
                    {
                        found.whole.push(base + start);
                    }
                }
            }
        });
    }
}

/// Why `/proc/<pid>/<file>` could not be read, and what that means.
fn explain_open_failure(pid: i32, file: &str, e: &std::io::Error) -> String {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    format!(
        "cannot open /proc/{pid}/{file}: {e}. The scan needs to read the child's memory. A child \
         that used memguard is not dumpable (PR_SET_DUMPABLE 0), so only a reader with \
         CAP_SYS_PTRACE (in practice root) may open its maps and memory; this test runs with euid \
         {euid}. Run the tests as root (or with CAP_SYS_PTRACE) for this check: it cannot \
         be done otherwise, and it is not skipped silently"
    )
}

/// Reads every readable mapping of `pid` and looks for every 16-byte window
/// of each needle. Needles must be at least 16 bytes long.
///
/// Fails (with an explanation) when `/proc/<pid>/maps` or `/proc/<pid>/mem`
/// cannot be read at all.
pub fn scan(pid: i32, needles: &[Needle<'_>]) -> Result<Scan, String> {
    for n in needles {
        assert!(n.bytes.len() >= WINDOW, "needle {} is too short", n.name);
    }
    let maps = read_maps(pid).map_err(|e| explain_open_failure(pid, "maps", &e))?;
    let mem =
        File::open(format!("/proc/{pid}/mem")).map_err(|e| explain_open_failure(pid, "mem", &e))?;
    let page = rustix::param::page_size();
    let mut scan = Scan {
        pid,
        found: needles
            .iter()
            .map(|n| Found {
                name: n.name.to_owned(),
                len: n.bytes.len(),
                windows_seen: vec![false; n.bytes.len() - WINDOW + 1],
                ..Found::default()
            })
            .collect(),
        ..Scan::default()
    };
    let mut buf = Vec::new();
    for m in &maps {
        let kernel = matches!(m.path.as_str(), "[vvar]" | "[vvar_vclock]" | "[vsyscall]");
        let size = m.end - m.start;
        if !m.perms.starts_with('r') || kernel || size > MAX_MAPPING {
            continue;
        }
        buf.clear();
        buf.resize(size, 0);
        if mem.read_exact_at(&mut buf, m.start as u64).is_err() {
            // Page by page; what cannot be read stays zero.
            for (i, chunk) in buf.chunks_mut(page).enumerate() {
                if mem
                    .read_exact_at(chunk, (m.start + i * page) as u64)
                    .is_err()
                {
                    chunk.fill(0);
                    scan.unreadable_pages += 1;
                }
            }
        }
        scan.mappings += 1;
        scan.bytes += size;
        for (needle, found) in needles.iter().zip(scan.found.iter_mut()) {
            search(&buf, m.start, needle.bytes, found);
        }
    }
    scan.maps = maps;
    Ok(scan)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every way a test child could have printed a 16-byte window of `secret`
/// that the tests look for: raw bytes, hex (both cases), a `{:?}` byte list.
pub fn printed_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for w in secret.windows(WINDOW) {
        forms.push(w.to_vec());
        forms.push(hex(w).into_bytes());
        forms.push(hex(w).to_uppercase().into_bytes());
        let list = format!("{w:?}");
        forms.push(
            list.trim_matches(|c| c == '[' || c == ']')
                .as_bytes()
                .to_vec(),
        );
    }
    forms
}

/// Whether `text` holds any of `forms`.
pub fn contains_any(text: &[u8], forms: &[Vec<u8>]) -> bool {
    forms
        .iter()
        .any(|f| !f.is_empty() && text.windows(f.len()).any(|w| w == f.as_slice()))
}
