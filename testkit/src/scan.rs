//! Looking for a secret in another process's memory, as an attacker with
//! `/proc/<pid>/mem` access would: every readable mapping of
//! `/proc/<pid>/maps` (the kernel's `[vvar]`/`[vvar_vclock]`/`[vsyscall]`
//! pages aside), read through `/proc/<pid>/mem`.
//!
//! A hit is any [`WINDOW`]-byte (16-byte) window of a pattern. Any such
//! window contains one of the pattern's 8-byte blocks at offsets 0, 8, 16,
//! ..., so the search runs glibc's `memmem` for each of those blocks (fast
//! even in an unoptimised build) and checks the windows around every
//! candidate. A window that straddles two mappings is not seen.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::procfs::{mapping_of, read_maps, Mapping};

/// The length of the pieces of a pattern that are looked for.
pub const WINDOW: usize = 16;
/// Blocks searched with `memmem`; every window contains a whole one.
const BLOCK: usize = 8;
/// Mappings larger than this are not read (nothing in a test child is).
const MAX_MAPPING: usize = 1 << 30;

/// A pattern to look for, with a name for messages.
pub struct Needle<'a> {
    /// What the pattern is, for messages.
    pub name: &'a str,
    /// The pattern; at least [`WINDOW`] bytes.
    pub bytes: &'a [u8],
}

/// Which mappings a scan reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mappings {
    /// Every readable one (the kernel's `[vvar]`, `[vvar_vclock]` and
    /// `[vsyscall]` aside: they cannot be read through `/proc/<pid>/mem`).
    #[default]
    Readable,
    /// Only those that can hold data written at run time: also leaves out
    /// `[vdso]` and the read-only mappings of files (program text).
    Data,
}

impl Mappings {
    fn reads(self, m: &Mapping) -> bool {
        let kernel = matches!(m.path.as_str(), "[vvar]" | "[vvar_vclock]" | "[vsyscall]");
        let readable = m.perms.starts_with('r') && !kernel && m.len() <= MAX_MAPPING;
        match self {
            Mappings::Readable => readable,
            Mappings::Data => {
                let file_text = m.path.starts_with('/') && m.perms.as_bytes()[1] != b'w';
                readable && !file_text && m.path != "[vdso]"
            }
        }
    }
}

/// What one scan found of one pattern.
#[derive(Debug, Default)]
pub struct Found {
    /// The needle's name.
    pub name: String,
    /// The needle's length.
    pub len: usize,
    /// For each window (by its offset in the pattern), whether it was seen.
    pub windows_seen: Vec<bool>,
    /// Every window seen: (address in the process, offset in the pattern).
    pub hits: BTreeSet<(usize, usize)>,
    /// Addresses where the whole pattern was seen.
    pub whole: Vec<usize>,
}

impl Found {
    fn new(name: &str, len: usize) -> Found {
        Found {
            name: name.to_owned(),
            len,
            windows_seen: vec![false; len - WINDOW + 1],
            ..Found::default()
        }
    }

    /// How many distinct windows of the pattern were seen.
    pub fn windows_found(&self) -> usize {
        self.windows_seen.iter().filter(|&&s| s).count()
    }

    /// Whether nothing of the pattern was seen.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Where each run of 16 or more bytes of the pattern starts: the window
    /// hits that do not continue a hit one byte before them (in the process
    /// and in the pattern). One address per copy, however long.
    pub fn runs(&self) -> Vec<usize> {
        self.hits
            .iter()
            .filter(|&&(addr, off)| off == 0 || !self.hits.contains(&(addr - 1, off - 1)))
            .map(|&(addr, _)| addr)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
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
    /// The process scanned.
    pub pid: i32,
    /// Mappings read (those of which nothing could be read included: see
    /// `unreadable_mappings`).
    pub mappings: usize,
    /// Bytes of those mappings (unreadable pages included, as zeros).
    pub bytes: usize,
    /// Pages that could not be read (searched as zeros).
    pub unreadable_pages: usize,
    /// Mappings of which not one page could be read.
    pub unreadable_mappings: usize,
    /// The first read error, with its mapping.
    pub first_error: Option<String>,
    /// The mappings as listed when the scan began.
    pub maps: Vec<Mapping>,
    /// One entry per needle, in the order given.
    pub found: Vec<Found>,
}

impl Scan {
    /// What was read and found, for messages.
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

/// Looks for every window of `pattern` in `hay` (bytes that stand at
/// address `base`) and records what it sees in `found`.
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

/// Looks for every window of each needle in `hay`, as if it stood at
/// address `base`: the search a scan runs on each mapping.
///
/// # Panics
/// When a needle is shorter than [`WINDOW`].
pub fn search_bytes(hay: &[u8], base: usize, needles: &[Needle<'_>]) -> Vec<Found> {
    let mut found = prepare(needles);
    for (needle, f) in needles.iter().zip(found.iter_mut()) {
        search(hay, base, needle.bytes, f);
    }
    found
}

fn prepare(needles: &[Needle<'_>]) -> Vec<Found> {
    needles
        .iter()
        .map(|n| {
            assert!(n.bytes.len() >= WINDOW, "needle {} is too short", n.name);
            Found::new(n.name, n.bytes.len())
        })
        .collect()
}

/// Why `/proc/<pid>/<file>` could not be opened, and what that means.
fn explain_open_failure(pid: i32, file: &str, e: &std::io::Error) -> String {
    let euid = rustix::process::geteuid().as_raw();
    format!(
        "cannot open /proc/{pid}/{file}: {e}. The scan needs to read the process's memory. A \
         process that used memguard is not dumpable (PR_SET_DUMPABLE 0), so only a reader with \
         CAP_SYS_PTRACE (in practice root) may open its maps and memory; this reader runs with \
         euid {euid}. Run it as root (or with CAP_SYS_PTRACE): the check cannot be done \
         otherwise, and it is not skipped silently"
    )
}

/// Reads every readable mapping of `pid` and looks for every 16-byte window
/// of each needle (see [`scan_mappings`]).
pub fn scan(pid: i32, needles: &[Needle<'_>]) -> Result<Scan, String> {
    scan_mappings(pid, needles, Mappings::Readable)
}

/// Reads the mappings of `pid` that `which` names and looks for every
/// 16-byte window of each needle. What cannot be read is counted (and
/// searched as zeros), page by page.
///
/// Fails (with an explanation) only when `/proc/<pid>/maps` or
/// `/proc/<pid>/mem` cannot be opened at all.
///
/// # Panics
/// When a needle is shorter than [`WINDOW`].
pub fn scan_mappings(pid: i32, needles: &[Needle<'_>], which: Mappings) -> Result<Scan, String> {
    let mut scan = Scan {
        pid,
        found: prepare(needles),
        ..Scan::default()
    };
    let maps = read_maps(pid).map_err(|e| explain_open_failure(pid, "maps", &e))?;
    let mem =
        File::open(format!("/proc/{pid}/mem")).map_err(|e| explain_open_failure(pid, "mem", &e))?;
    let page = rustix::param::page_size();
    let mut buf = Vec::new();
    for m in maps.iter().filter(|m| which.reads(m)) {
        buf.clear();
        buf.resize(m.len(), 0);
        if let Err(e) = mem.read_exact_at(&mut buf, m.start as u64) {
            if scan.first_error.is_none() {
                scan.first_error = Some(format!("{}: {e}", m.describe()));
            }
            // Page by page; what cannot be read stays zero.
            let mut unreadable = 0;
            for (i, chunk) in buf.chunks_mut(page).enumerate() {
                if mem
                    .read_exact_at(chunk, (m.start + i * page) as u64)
                    .is_err()
                {
                    chunk.fill(0);
                    unreadable += 1;
                }
            }
            scan.unreadable_pages += unreadable;
            if unreadable == m.len().div_ceil(page) {
                scan.unreadable_mappings += 1;
            }
        }
        scan.mappings += 1;
        scan.bytes += m.len();
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

/// Every way a program could have printed a 16-byte window of `secret`:
/// raw bytes, hex (both cases), a `{:?}` byte list.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Vec<u8> {
        (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    fn runs(hay: &[u8], needle: &[u8]) -> Vec<usize> {
        search_bytes(
            hay,
            0,
            &[Needle {
                name: "s",
                bytes: needle,
            }],
        )
        .remove(0)
        .runs()
    }

    #[test]
    fn finds_every_16_byte_window_and_nothing_shorter() {
        let s = secret();
        for start in 0..=48 {
            for len in [15, 16, 20] {
                if start + len > 64 {
                    continue;
                }
                let mut hay = vec![0xEEu8; 200];
                hay[77..77 + len].copy_from_slice(&s[start..start + len]);
                let found = search_bytes(
                    &hay,
                    1000,
                    &[Needle {
                        name: "s",
                        bytes: &s,
                    }],
                );
                if len >= 16 {
                    assert_eq!(found[0].runs(), [1077], "start {start} len {len}");
                    let windows = len - WINDOW + 1;
                    assert_eq!(found[0].windows_found(), windows, "start {start} len {len}");
                    assert!(found[0].windows_seen[start], "start {start} len {len}");
                } else {
                    assert!(found[0].is_empty(), "start {start} len {len}: {found:?}");
                }
            }
        }
    }

    #[test]
    fn finds_the_whole_secret_at_the_edges() {
        let s = secret();
        let mut hay = s.clone();
        hay.extend_from_slice(&[0u8; 10]);
        hay.extend_from_slice(&s);
        assert_eq!(runs(&hay, &s), [0, 74]);
        let found = search_bytes(
            &hay,
            0,
            &[Needle {
                name: "s",
                bytes: &s,
            }],
        );
        assert_eq!(found[0].whole, [0, 74]);
        assert_eq!(found[0].windows_found(), 64 - WINDOW + 1);
    }

    #[test]
    fn reads_this_process_and_finds_a_secret_in_it() {
        // Made at run time, so that no copy of it is in the program's text.
        let seed = std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
        let mut x = seed | 1;
        let secret: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let address = secret.as_ptr() as usize;
        let pid = std::process::id() as i32;
        let needles = [Needle {
            name: "secret",
            bytes: &secret,
        }];
        let report = scan(pid, &needles).unwrap();
        assert!(report.mappings > 3, "{}", report.summary());
        assert!(report.bytes > 0);
        assert!(
            report.found[0].whole.contains(&address),
            "the secret at {address:#x} was not found: {}",
            report.summary()
        );
        assert!(report.found[0].runs().contains(&address));
        let data = scan_mappings(pid, &needles, Mappings::Data).unwrap();
        assert!(data.mappings < report.mappings, "{}", data.summary());
        assert!(data.found[0].whole.contains(&address));
    }
}
