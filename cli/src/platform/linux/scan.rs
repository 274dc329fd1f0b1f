//! Searching another process's memory for a secret, the way an attacker
//! with `/proc/<pid>/mem` access would: every readable mapping listed in
//! `/proc/<pid>/maps`, read through `/proc/<pid>/mem`.
//!
//! A hit is any 16-byte window of a 64-byte needle. Every such window
//! contains one of the needle's eight aligned 8-byte words, so the scan
//! looks for those words (after a 2-byte prefilter) and extends each match
//! both ways to see whether 16 or more consecutive bytes agree.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes that must agree for a hit.
pub const WINDOW: usize = 16;
/// Bytes read from `/proc/<pid>/mem` at a time.
const CHUNK: usize = 1 << 20;

/// What a scan read and found.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Readable mappings read (wholly or partly).
    pub mappings: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Readable mappings that could not be read at all (the error of the
    /// first one is in `first_error`).
    pub unreadable: usize,
    /// The first read error.
    pub first_error: Option<String>,
    /// For each needle: where a window of it was found (address, mapping
    /// name).
    pub hits: Vec<Vec<(usize, String)>>,
}

/// One line of `/proc/<pid>/maps`.
struct Region {
    start: usize,
    end: usize,
    name: String,
}

/// The readable mappings of `pid`, minus the kernel's special ones that
/// cannot be read through `/proc/<pid>/mem`.
fn readable_regions(pid: u32) -> io::Result<Vec<Region>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        let name = parts.nth(3).unwrap_or("").to_string();
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if !perms.starts_with('r') || name.starts_with("[vvar") || name == "[vsyscall]" {
            continue;
        }
        out.push(Region { start, end, name });
    }
    Ok(out)
}

/// A needle prepared for searching: its eight aligned words and a 2-byte
/// prefix filter over all needles.
struct Needles<'a> {
    needles: &'a [&'a [u8]],
    /// (needle index, word offset in the needle, the word).
    words: Vec<(usize, usize, [u8; 8])>,
    /// Bit `p` is set when some word starts with the two bytes `p`.
    prefix: Vec<u64>,
}

impl<'a> Needles<'a> {
    fn new(needles: &'a [&'a [u8]]) -> Needles<'a> {
        let mut words = Vec::new();
        let mut prefix = vec![0u64; 65536 / 64];
        for (n, needle) in needles.iter().enumerate() {
            for offset in (0..needle.len().saturating_sub(7)).step_by(8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(&needle[offset..offset + 8]);
                let p = usize::from(u16::from_le_bytes([w[0], w[1]]));
                prefix[p / 64] |= 1 << (p % 64);
                words.push((n, offset, w));
            }
        }
        Needles {
            needles,
            words,
            prefix,
        }
    }

    /// Calls `hit(needle, position)` for each position of `hay` where 16 or
    /// more bytes of a needle start (once per word of the needle in the
    /// match: callers deduplicate).
    fn search(&self, hay: &[u8], mut hit: impl FnMut(usize, usize)) {
        if hay.len() < 8 {
            return;
        }
        for i in 0..=hay.len() - 8 {
            let p = usize::from(u16::from_le_bytes([hay[i], hay[i + 1]]));
            if self.prefix[p / 64] & (1 << (p % 64)) == 0 {
                continue;
            }
            for &(n, offset, word) in &self.words {
                if hay[i..i + 8] != word {
                    continue;
                }
                let needle = self.needles[n];
                // Extend to the left and to the right of the word.
                let mut left = 0;
                while left < offset && left < i && hay[i - left - 1] == needle[offset - left - 1] {
                    left += 1;
                }
                let mut right = 0;
                while offset + 8 + right < needle.len()
                    && i + 8 + right < hay.len()
                    && hay[i + 8 + right] == needle[offset + 8 + right]
                {
                    right += 1;
                }
                let start = i - left;
                if left + 8 + right >= WINDOW {
                    hit(n, start);
                }
            }
        }
    }
}

/// Scans every readable mapping of `pid` for 16-byte windows of each of
/// `needles`. Fails only when `/proc/<pid>/maps` or `/proc/<pid>/mem`
/// cannot be opened at all.
pub fn scan(pid: u32, needles: &[&[u8]]) -> io::Result<ScanReport> {
    let regions = readable_regions(pid)?;
    let mem = File::open(format!("/proc/{pid}/mem"))?;
    let prepared = Needles::new(needles);
    let mut report = ScanReport {
        hits: vec![Vec::new(); needles.len()],
        ..ScanReport::default()
    };
    // Overlap between chunks so that a window across a chunk boundary is
    // still seen whole (hits are deduplicated by address).
    let overlap = WINDOW * 4;
    let mut buf = vec![0u8; CHUNK + overlap];
    for region in &regions {
        let mut at = region.start;
        let mut kept = 0; // bytes carried over from the previous chunk
        let mut read_any = false;
        while at < region.end {
            let want = (region.end - at).min(CHUNK);
            let got = match mem.read_at(&mut buf[kept..kept + want], at as u64) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    if report.first_error.is_none() {
                        report.first_error = Some(format!(
                            "{:#x}-{:#x} {}: {e}",
                            region.start, region.end, region.name
                        ));
                    }
                    break;
                }
            };
            read_any = true;
            report.bytes += got as u64;
            let hay_len = kept + got;
            let hay = &buf[..hay_len];
            let base = at - kept;
            prepared.search(hay, |n, pos| {
                let address = base + pos;
                if !report.hits[n].iter().any(|(a, _)| *a == address) {
                    report.hits[n].push((address, region.name.clone()));
                }
            });
            at += got;
            let keep = overlap.min(hay_len);
            buf.copy_within(hay_len - keep..hay_len, 0);
            kept = keep;
        }
        if read_any {
            report.mappings += 1;
        } else {
            report.unreadable += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Vec<u8> {
        (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
        let needles = [needle];
        let prepared = Needles::new(&needles);
        let mut out = Vec::new();
        prepared.search(hay, |_, p| out.push(p));
        out.sort_unstable();
        out.dedup();
        out
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
                let found = positions(&hay, &s);
                if len >= 16 {
                    assert_eq!(found, [77], "start {start} len {len}");
                } else {
                    assert!(found.is_empty(), "start {start} len {len}: {found:?}");
                }
            }
        }
    }

    #[test]
    fn reads_this_process_and_finds_a_secret_in_it() {
        let mut secret = vec![0u8; 64];
        memguard::scramble_bytes(&mut secret).unwrap();
        let needles: [&[u8]; 1] = [&secret];
        let report = scan(std::process::id(), &needles).unwrap();
        assert!(report.mappings > 3, "{report:?}");
        assert!(report.bytes > 0);
        let address = secret.as_ptr() as usize;
        assert!(
            report.hits[0].iter().any(|(a, _)| *a == address),
            "the secret at {address:#x} was not found: {report:?}"
        );
    }

    #[test]
    fn finds_the_whole_secret_at_the_edges() {
        let s = secret();
        let mut hay = s.clone();
        hay.extend_from_slice(&[0u8; 10]);
        hay.extend_from_slice(&s);
        assert_eq!(positions(&hay, &s), [0, 74]);
    }
}
