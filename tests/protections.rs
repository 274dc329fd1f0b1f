// Only on Linux: /proc/self/smaps, rlimits, signals.
#![cfg(target_os = "linux")]

mod support;

use support::data_perms;
use support::procfs::{self, locked_bytes, Mapping};
use support::{assert_killed_by, mark, role, run, survived, Role, SURVIVED};

// Security properties of `LockedBuffer`, each checked from outside the
// process that would crash.
//
// A test re-runs this test binary for itself alone (`support::run_child*`),
// with `MEMGUARD_TEST_CHILD=<test>/<scenario>`; the child branch of the same
// test function plays the scenario (usually one forbidden memory access),
// and the parent asserts how the child ended: the signal that killed it,
// its exit code, what it printed.
//
// Every fatal scenario prints a marker line just before the fatal action
// (so a death *before* it is not mistaken for the protection working) and,
// should it survive the action, prints `SURVIVED` and exits with code 3.
// Every "exits 0" scenario prints a marker only after all of its in-child
// assertions held; the parent requires it.

use std::io::Write;
use std::process::Output;

use memguard::{Error, LockedBuffer};

const SIGABRT: i32 = 6;
const SIGSEGV: i32 = 11;

// ---------------------------------------------------------------------------
// Parent/child plumbing
// ---------------------------------------------------------------------------

/// Asserts the child exited 0 after printing `marker`, without a panic.
fn assert_clean_exit(out: &Output, marker: &str, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: expected a clean exit\n{}",
        support::describe(out)
    );
    assert!(
        support::stdout(out).contains(marker),
        "{what}: marker {marker:?} missing\n{}",
        support::describe(out)
    );
    assert!(
        !support::stderr(out).contains("panicked"),
        "{what}: the child panicked\n{}",
        support::describe(out)
    );
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// `len` rounded up to whole pages: the size of a buffer's data mapping.
fn data_pages(len: usize, page: usize) -> usize {
    len.div_ceil(page) * page
}

/// A mutable buffer of `len` bytes, filled with `fill`, and its data pointer.
fn filled_buffer(len: usize, fill: u8) -> (LockedBuffer, *mut u8) {
    let mut buf = LockedBuffer::new(len).expect("allocate a LockedBuffer");
    let ptr = {
        let mut data = buf.bytes_mut().expect("a new buffer is mutable");
        data.fill(fill);
        data.as_mut_ptr()
    };
    (buf, ptr)
}

// ---------------------------------------------------------------------------
// 1. Overflow: the data ends exactly where the trailing guard page begins
// ---------------------------------------------------------------------------

/// Lengths for the guard-page tests: smaller than a page, odd, exactly one
/// page, several pages plus a few bytes.
const GUARD_LENGTHS: [usize; 4] = [32, 33, 4096, 3 * 4096 + 5];

#[test]
fn write_one_byte_past_end_hits_trailing_guard_page() {
    const TEST: &str = "write_one_byte_past_end_hits_trailing_guard_page";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let (kind, len) = scenario.split_once(':').expect("scenario kind:len");
            let len: usize = len.parse().expect("scenario length");
            let (buf, ptr) = filled_buffer(len, 0x11);
            match kind {
                // Control: the last byte of the data is writable.
                "last_byte" => {
                    // SAFETY (test): the last byte of the buffer's data.
                    unsafe { ptr.add(len - 1).write_volatile(0x42) };
                    assert_eq!(buf.bytes()[len - 1], 0x42);
                    mark(&format!("LAST-BYTE-WRITTEN len={len}"));
                }
                "past_end" => {
                    mark(&format!("WRITING-PAST-END len={len}"));
                    // Deliberately one byte past the end of the data.
                    unsafe { ptr.add(len).write_volatile(0x42) };
                    survived("write one byte past the end");
                }
                other => panic!("unknown scenario {other}"),
            }
        }
        Role::Parent => {
            assert_eq!(page_size(), 4096, "these lengths assume 4 KiB pages");
            for len in GUARD_LENGTHS {
                let out = run(TEST, &format!("past_end:{len}"));
                assert_killed_by(
                    &out,
                    SIGSEGV,
                    &format!("WRITING-PAST-END len={len}"),
                    &format!("write at offset {len} of a {len}-byte buffer"),
                );
                let out = run(TEST, &format!("last_byte:{len}"));
                assert_clean_exit(
                    &out,
                    &format!("LAST-BYTE-WRITTEN len={len}"),
                    &format!("control: write the last byte of a {len}-byte buffer"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Underflow: the byte below the first data page is the leading guard page
// ---------------------------------------------------------------------------

#[test]
fn write_below_data_pages_hits_leading_guard_page() {
    const TEST: &str = "write_below_data_pages_hits_leading_guard_page";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let (kind, len) = scenario.split_once(':').expect("scenario kind:len");
            let len: usize = len.parse().expect("scenario length");
            let (buf, ptr) = filled_buffer(len, 0x22);
            // Canary bytes between the start of the data pages and the data.
            let slack = data_pages(len, buf.page_size()) - len;
            match kind {
                // Control: the first byte of the first data page (a canary
                // byte, or the first data byte when there is no slack) is
                // writable. It is put back so that the drop stays clean.
                "first_page_byte" => {
                    // SAFETY (test): inside the buffer's data pages.
                    unsafe {
                        let first = ptr.sub(slack);
                        let old = first.read_volatile();
                        first.write_volatile(!old);
                        assert_eq!(first.read_volatile(), !old);
                        first.write_volatile(old);
                    }
                    mark(&format!("FIRST-PAGE-BYTE-WRITTEN len={len} slack={slack}"));
                }
                "below" => {
                    mark(&format!("WRITING-BELOW-DATA-PAGES len={len} slack={slack}"));
                    // Deliberately one byte below the first data page.
                    unsafe { ptr.sub(slack + 1).write_volatile(0x42) };
                    survived("write one byte below the data pages");
                }
                other => panic!("unknown scenario {other}"),
            }
        }
        Role::Parent => {
            assert_eq!(page_size(), 4096, "these lengths assume 4 KiB pages");
            // 4096: no slack, so this is data_ptr - 1; 32: data_ptr - (page - 32) - 1.
            for len in [4096, 32, 3 * 4096 + 5] {
                let slack = data_pages(len, 4096) - len;
                let out = run(TEST, &format!("below:{len}"));
                assert_killed_by(
                    &out,
                    SIGSEGV,
                    &format!("WRITING-BELOW-DATA-PAGES len={len} slack={slack}"),
                    &format!("write at data - {} of a {len}-byte buffer", slack + 1),
                );
                let out = run(TEST, &format!("first_page_byte:{len}"));
                assert_clean_exit(
                    &out,
                    &format!("FIRST-PAGE-BYTE-WRITTEN len={len} slack={slack}"),
                    &format!("control: write at data - {slack} of a {len}-byte buffer"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Freezing: a frozen buffer faults on any write, through any pointer
// ---------------------------------------------------------------------------

#[test]
fn write_through_raw_pointer_to_frozen_buffer_faults() {
    const TEST: &str = "write_through_raw_pointer_to_frozen_buffer_faults";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let mut buf = LockedBuffer::random(32).expect("random buffer");
            assert!(!buf.is_mutable(), "random() gives a frozen buffer");
            match scenario.as_str() {
                "frozen" => {
                    let ptr = buf.bytes().as_ptr() as *mut u8;
                    // Reading a frozen buffer is fine.
                    // SAFETY (test): inside the buffer's data.
                    let first = unsafe { ptr.read_volatile() };
                    mark(&format!("WRITING-FROZEN first={first:#04x}"));
                    // Deliberately a write to read-only pages.
                    unsafe { ptr.write_volatile(!first) };
                    survived("write to a frozen buffer");
                }
                // Control: exactly the same write, after melt().
                "melted" => {
                    buf.melt().expect("melt");
                    let ptr = buf.bytes().as_ptr() as *mut u8;
                    // SAFETY (test): inside the buffer's data, now writable.
                    let first = unsafe { ptr.read_volatile() };
                    unsafe { ptr.write_volatile(!first) };
                    assert_eq!(buf.bytes()[0], !first, "the write went through");
                    mark("MELTED-WRITE-OK");
                }
                other => panic!("unknown scenario {other}"),
            }
        }
        Role::Parent => {
            let out = run(TEST, "frozen");
            assert_killed_by(&out, SIGSEGV, "WRITING-FROZEN", "write to a frozen buffer");
            let out = run(TEST, "melted");
            assert_clean_exit(
                &out,
                "MELTED-WRITE-OK",
                "control: the same write to a melted buffer",
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Destruction unmaps (or parks as a PROT_NONE spare): the old address faults
// ---------------------------------------------------------------------------

#[test]
fn read_after_destroy_faults() {
    const TEST: &str = "read_after_destroy_faults";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let (buf, ptr) = filled_buffer(32, 0x5A);
            // Control, in the same process: the pointer is good before.
            // SAFETY (test): inside the live buffer's data.
            let before = unsafe { ptr.read_volatile() };
            assert_eq!(before, 0x5A);
            mark(&format!(
                "READ-BEFORE-OK {before:#04x}; {scenario}, then read"
            ));
            match scenario.as_str() {
                "destroy" => buf.destroy(),
                "purge" => {
                    memguard::purge();
                    assert!(!buf.is_alive());
                }
                other => panic!("unknown scenario {other}"),
            }
            // Nothing may map memory between the unmap and this read.
            // Deliberately a read of unmapped memory.
            let after = unsafe { ptr.read_volatile() };
            survived(&format!("read after {scenario} gave {after:#04x}"));
        }
        Role::Parent => {
            for scenario in ["destroy", "purge"] {
                let out = run(TEST, scenario);
                assert_killed_by(
                    &out,
                    SIGSEGV,
                    &format!("READ-BEFORE-OK 0x5a; {scenario}, then read"),
                    &format!("read after {scenario}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Canary: an overwritten canary aborts the process on destroy
// ---------------------------------------------------------------------------

/// Flips the byte just before the data of `buf` (the last canary byte).
fn corrupt_canary(buf: &mut LockedBuffer) {
    let ptr = buf.bytes_mut().expect("mutable buffer").as_mut_ptr();
    // SAFETY (test): the byte before the data is the last byte of the slack,
    // inside the writable data pages for a buffer shorter than a page.
    unsafe {
        let canary = ptr.sub(1);
        let old = canary.read_volatile();
        canary.write_volatile(!old);
    }
}

/// The report the library prints for one flipped canary byte of a
/// `len`-byte buffer.
fn canary_report(len: usize) -> String {
    format!(
        "memguard: canary check failed: 1 of the {} canary bytes before the {len}-byte buffer at 0x",
        data_pages(len, page_size()) - len
    )
}

#[test]
fn corrupted_canary_aborts_with_report() {
    const TEST: &str = "corrupted_canary_aborts_with_report";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => match scenario.as_str() {
            "drop" => {
                let (mut buf, _) = filled_buffer(32, 0x33);
                corrupt_canary(&mut buf);
                mark("CANARY-CORRUPTED; dropping");
                drop(buf);
                survived("drop with a corrupted canary");
            }
            // Another buffer is alive (and must be wiped, not reported);
            // the child prints nothing of its own, so all the parent sees
            // comes from the library.
            "drop_with_other_alive" => {
                let (other, _) = filled_buffer(64, 0x44);
                let (mut victim, _) = filled_buffer(32, 0x55);
                corrupt_canary(&mut victim);
                drop(victim);
                drop(other);
                survived("drop with a corrupted canary, another buffer alive");
            }
            "purge" => {
                let (_other, _) = filled_buffer(64, 0x44);
                let (mut victim, _) = filled_buffer(32, 0x55);
                corrupt_canary(&mut victim);
                mark("CANARY-CORRUPTED; purging");
                memguard::purge();
                survived("purge with a corrupted canary");
            }
            // Control: the canary is read but left as it was.
            "intact" => {
                let (buf, ptr) = filled_buffer(32, 0x66);
                // SAFETY (test): the last canary byte, inside the data pages.
                let canary = unsafe { ptr.sub(1).read_volatile() };
                std::hint::black_box(canary);
                drop(buf);
                mark("INTACT-CANARY-DROPPED");
            }
            other => panic!("unknown scenario {other}"),
        },
        Role::Parent => {
            let report = canary_report(32);
            let tail =
                "memguard: memory corruption detected; every live buffer has been wiped; aborting.";
            let check = |out: &Output, what: &str| {
                assert_eq!(
                    support::killed_by(out),
                    Some(SIGABRT),
                    "{what}: expected SIGABRT\n{}",
                    support::describe(out)
                );
                let stderr = support::stderr(out);
                assert!(
                    stderr.contains("canary") && stderr.contains(&report) && stderr.contains(tail),
                    "{what}: canary report missing (expected {report:?} and {tail:?})\n{}",
                    support::describe(out)
                );
                assert_eq!(
                    stderr.matches("canary check failed").count(),
                    1,
                    "{what}: exactly one buffer is corrupted (the other was only wiped)\n{}",
                    support::describe(out)
                );
                assert!(
                    !support::stdout(out).contains(SURVIVED),
                    "{what}\n{}",
                    support::describe(out)
                );
            };

            let out = run(TEST, "drop");
            assert!(support::stdout(&out).contains("CANARY-CORRUPTED; dropping"));
            check(&out, "drop with a corrupted canary");

            let out = run(TEST, "drop_with_other_alive");
            check(
                &out,
                "drop with a corrupted canary while another buffer lives",
            );
            // Only libtest's own lines: the child printed nothing.
            let stdout = support::stdout(&out);
            let own: Vec<&str> = stdout
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter(|l| !l.starts_with("running 1 test") && !l.starts_with("test "))
                .collect();
            assert!(
                own.is_empty(),
                "the child printed something of its own\n{}",
                support::describe(&out)
            );

            let out = run(TEST, "purge");
            assert!(support::stdout(&out).contains("CANARY-CORRUPTED; purging"));
            check(&out, "purge with a corrupted canary");

            let out = run(TEST, "intact");
            assert_clean_exit(&out, "INTACT-CANARY-DROPPED", "control: intact canary");
            assert!(
                !support::stderr(&out).contains("canary"),
                "control: an intact canary is not reported\n{}",
                support::describe(&out)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 6. /proc/self/smaps: locked, not dumped, wiped on fork, between guard pages
// ---------------------------------------------------------------------------

/// A `Key: N kB` field of an smaps entry, in bytes.
fn bytes(m: &Mapping, key: &str) -> usize {
    m.field_bytes(key)
        .unwrap_or_else(|| panic!("no {key} field of the form `N kB` in {m:?}")) as usize
}

/// This process's `/proc/self/smaps` (the workspace's parser,
/// `memguard-testkit`'s `procfs`, which refuses a malformed file), checked
/// for plausibility.
fn read_smaps() -> Vec<Mapping> {
    let maps = procfs::read_smaps("self").unwrap_or_else(|e| panic!("{e}"));
    assert!(maps.len() > 3, "implausible smaps: {maps:?}");
    for pair in maps.windows(2) {
        assert!(pair[0].end <= pair[1].start, "smaps out of order: {pair:?}");
    }
    for m in &maps {
        assert_eq!(bytes(m, "Size"), m.len(), "Size field of {m:?}");
    }
    maps
}

/// A live buffer as seen from outside: its data pointer and length.
#[derive(Clone, Copy, Debug)]
struct Placed {
    ptr: usize,
    len: usize,
}

impl Placed {
    fn of(buf: &LockedBuffer) -> Placed {
        Placed {
            ptr: buf.bytes().as_ptr() as usize,
            len: buf.len(),
        }
    }

    /// The address range of the buffer's data pages.
    fn data_pages(&self) -> std::ops::Range<usize> {
        let end = self.ptr + self.len;
        end - data_pages(self.len, page_size())..end
    }
}

/// Checks the smaps entries around the live buffer `buf`: its data mapping
/// has `perms` and the protective flags and ends where the data ends, and
/// one guard page sits on either side.
///
/// The kernel merges adjacent mappings with identical flags, so when two
/// buffers are mapped back to back, the trailing guard page of one and the
/// leading guard page of the other show up as one two-page `---p` entry.
/// That (and only that) is accepted in place of a one-page guard: the far
/// page must then border the data pages of one of the `others`. Returns how
/// many of the two guard pages were seen merged so.
fn check_buffer_mappings(
    buf: Placed,
    others: &[Placed],
    perms: &str,
    wipes_on_fork: bool,
    what: &str,
) -> usize {
    let Placed { ptr, len } = buf;
    let page = page_size();
    let maps = read_smaps();
    let dump = || {
        maps.iter()
            .map(|m| {
                format!(
                    "{:x}-{:x} {} {:?} {}",
                    m.start, m.end, m.perms, m.vm_flags, m.path
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let i = maps
        .iter()
        .position(|m| m.start <= ptr && ptr < m.end)
        .unwrap_or_else(|| panic!("{what}: no mapping contains {ptr:#x}\n{}", dump()));
    let data = &maps[i];
    let ctx = format!("{what}: data at {ptr:#x}+{len}, mapping {data:?}");

    assert_eq!(
        data.end,
        ptr + len,
        "{ctx}: the data must end exactly at the end of its mapping"
    );
    assert_eq!(
        data.len(),
        data_pages(len, page),
        "{ctx}: data mapping size"
    );
    assert_eq!(data.perms, perms, "{ctx}: permissions");
    assert!(data.has_flag("lo"), "{ctx}: not locked (no `lo`)");
    assert!(
        data.has_flag("dd"),
        "{ctx}: not excluded from core dumps (no `dd`)"
    );
    let fork_flag = if wipes_on_fork { "wf" } else { "dc" };
    assert!(
        data.has_flag(fork_flag),
        "{ctx}: forked children are not kept from the data (no `{fork_flag}`)"
    );
    if memguard::memory_backend() == memguard::MemoryBackend::SecretMemory {
        // Secret memory: a mapping of the kernel's secretmem file, locked
        // by the kernel (VM_LOCKED) but faulted in on first touch, as mlock
        // (which would populate it) refuses it.
        assert_eq!(
            data.path, "/secretmem (deleted)",
            "{ctx}: not secret memory"
        );
        assert!(
            data.has_flag("sh"),
            "{ctx}: secret memory is a shared mapping"
        );
        assert_eq!(
            bytes(data, "Locked"),
            bytes(data, "Rss"),
            "{ctx}: every resident data page is locked"
        );
    } else {
        assert_eq!(
            bytes(data, "Locked"),
            data.len(),
            "{ctx}: every data page is resident and locked"
        );
    }

    assert!(
        i > 0 && i + 1 < maps.len(),
        "{ctx}: no neighbours\n{}",
        dump()
    );
    let mut shared = 0;
    for (side, guard) in [("leading", &maps[i - 1]), ("trailing", &maps[i + 1])] {
        let g = format!("{ctx}: {side} guard {guard:?}");
        if side == "leading" {
            assert_eq!(guard.end, data.start, "{g}: not adjacent\n{}", dump());
        } else {
            assert_eq!(guard.start, data.end, "{g}: not adjacent\n{}", dump());
        }
        assert_eq!(guard.perms, "---p", "{g}: not inaccessible");
        let shared_with_neighbour = guard.len() == 2 * page
            && others.iter().any(|o| {
                let theirs = o.data_pages();
                if side == "leading" {
                    theirs.end == guard.start
                } else {
                    theirs.start == guard.end
                }
            });
        assert!(
            guard.len() == page || shared_with_neighbour,
            "{g}: not exactly one page\n{}",
            dump()
        );
        assert!(!guard.has_flag("lo"), "{g}: guard pages need not be locked");
        assert_eq!(bytes(guard, "Rss"), 0, "{g}: a guard page was touched");
        shared += usize::from(guard.len() != page);
    }
    shared
}

#[test]
fn smaps_shows_locked_undumped_fork_wiped_data_between_guard_pages() {
    const TEST: &str = "smaps_shows_locked_undumped_fork_wiped_data_between_guard_pages";
    match role(TEST) {
        Role::Bystander => {}
        // Run in a child of its own: no other test's threads map memory next
        // to the buffers meanwhile, and the hardening the first allocation
        // applies does not leak into this (parent) process and its children.
        Role::Child(_) => {
            let mut small = LockedBuffer::new(32).expect("allocate");
            let mut large = LockedBuffer::new(3 * 4096 + 5).expect("allocate");
            let placed = [Placed::of(&small), Placed::of(&large)];
            for (i, (name, buf)) in [("32-byte", &mut small), ("12293-byte", &mut large)]
                .into_iter()
                .enumerate()
            {
                let (me, other) = (placed[i], [placed[1 - i]]);
                let wf = buf.wipes_on_fork();
                check_buffer_mappings(
                    me,
                    &other,
                    &data_perms("rw-"),
                    wf,
                    &format!("{name} mutable"),
                );
                buf.freeze().expect("freeze");
                check_buffer_mappings(
                    me,
                    &other,
                    &data_perms("r--"),
                    wf,
                    &format!("{name} frozen"),
                );
                buf.melt().expect("melt");
                check_buffer_mappings(
                    me,
                    &other,
                    &data_perms("rw-"),
                    wf,
                    &format!("{name} melted"),
                );
                mark(&format!("SMAPS-OK {name} wipes_on_fork={wf}"));
            }
            // Buffers made back to back are likely to sit next to each other,
            // guard against guard: each still has its own.
            let many: Vec<LockedBuffer> = (0..8)
                .map(|_| LockedBuffer::new(32).expect("allocate"))
                .collect();
            // Every live buffer, the two above included, may be a neighbour.
            let placed: Vec<Placed> = many
                .iter()
                .chain([&small, &large])
                .map(Placed::of)
                .collect();
            let mut shared = 0;
            for (i, me) in placed.iter().enumerate().take(many.len()) {
                let others: Vec<Placed> = placed
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, p)| *p)
                    .collect();
                let wf = many[i].wipes_on_fork();
                shared += check_buffer_mappings(
                    *me,
                    &others,
                    &data_perms("rw-"),
                    wf,
                    &format!("buffer {i} of 8"),
                );
            }
            mark(&format!(
                "SMAPS-OK 8 buffers, {shared} guard pages shown merged with a neighbour's"
            ));
        }
        Role::Parent => {
            let out = run(TEST, "both");
            assert_clean_exit(&out, "SMAPS-OK 32-byte", "smaps, 32-byte buffer");
            assert_clean_exit(&out, "SMAPS-OK 12293-byte", "smaps, 12293-byte buffer");
            assert_clean_exit(&out, "SMAPS-OK 8 buffers", "smaps, 8 buffers");
        }
    }
}

// ---------------------------------------------------------------------------
// 7. RLIMIT_MEMLOCK
// ---------------------------------------------------------------------------

/// Lowers RLIMIT_MEMLOCK to `limit` and drops CAP_IPC_LOCK from this thread
/// (the one that allocates), so that the limit applies although we are root.
fn enforce_memlock_limit(limit: u64) {
    support::set_memlock_limit(limit);
    support::drop_capabilities();
}

#[test]
fn memlock_limit_zero_gives_memory_lock_error_naming_the_fix() {
    const TEST: &str = "memlock_limit_zero_gives_memory_lock_error_naming_the_fix";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            enforce_memlock_limit(0);
            match LockedBuffer::new(32) {
                Err(e @ Error::MemoryLock { .. }) => {
                    let text = e.to_string();
                    for needle in ["RLIMIT_MEMLOCK", "ulimit -l", "CAP_IPC_LOCK"] {
                        assert!(text.contains(needle), "{needle:?} missing from: {text}");
                    }
                    if let Error::MemoryLock {
                        requested, limit, ..
                    } = &e
                    {
                        assert_eq!(*requested, page_size(), "{text}");
                        assert_eq!(*limit, Some(0), "{text}");
                    }
                    assert_eq!(memguard::live_buffers(), 0);
                    mark(&format!("MEMLOCK-ZERO-REFUSED: {text}"));
                }
                Err(e) => panic!("expected Error::MemoryLock, got {e:?}: {e}"),
                Ok(buf) => panic!("allocated {buf:?} with RLIMIT_MEMLOCK = 0"),
            }
        }
        Role::Parent => {
            let out = run(TEST, "zero");
            assert_clean_exit(&out, "MEMLOCK-ZERO-REFUSED", "RLIMIT_MEMLOCK = 0");
        }
    }
}

#[test]
fn memlock_limit_caps_buffer_count_until_purge() {
    const TEST: &str = "memlock_limit_caps_buffer_count_until_purge";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            let limit: usize = scenario.parse().expect("limit in bytes");
            let page = page_size();
            // One page per buffer until the limit: buffers of their own.
            // Compact secrets go past it (tests/compact.rs).
            memguard::set_compact_mode(memguard::CompactMode::Never);
            enforce_memlock_limit(limit as u64);
            let already = locked_bytes();
            let mut held = Vec::new();
            let error = loop {
                assert!(
                    held.len() < 10_000,
                    "10000 buffers under a {limit}-byte limit"
                );
                match LockedBuffer::new(32) {
                    Ok(buf) => held.push(buf),
                    Err(e) => break e,
                }
            };
            let fit = held.len();
            mark(&format!(
                "limit {limit}: {fit} buffers fit ({already} bytes locked before); then: {error}"
            ));
            assert!(
                matches!(error, Error::MemoryLock { requested, limit: Some(l), .. }
                    if requested == page && l == limit as u64),
                "expected MemoryLock for one page under the limit, got {error:?}"
            );
            assert!(
                (1..=limit / page).contains(&fit),
                "{fit} buffers fit under {limit} bytes"
            );
            // Each 32-byte buffer locks exactly one page.
            assert_eq!(fit, (limit - already) / page, "buffers that fit");
            assert_eq!(memguard::live_buffers(), fit);

            memguard::purge();
            assert!(held.iter().all(|b| !b.is_alive()));
            assert_eq!(memguard::live_buffers(), 0);
            assert_eq!(locked_bytes(), already, "purge unlocks every page");
            let again = LockedBuffer::new(32).expect("allocate after purge");
            assert!(again.is_alive());
            drop(held);
            mark(&format!("MEMLOCK-LIMIT-OK {limit}"));
        }
        Role::Parent => {
            for limit in [16 * 1024, 64 * 1024] {
                let out = run(TEST, &limit.to_string());
                assert_clean_exit(
                    &out,
                    &format!("MEMLOCK-LIMIT-OK {limit}"),
                    &format!("RLIMIT_MEMLOCK = {limit}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 8. Process hardening
// ---------------------------------------------------------------------------

/// Raises the soft RLIMIT_CORE to a nonzero value (within the hard limit)
/// and returns the limits now in force.
fn raise_core_limit() -> rustix::process::Rlimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Core).maximum;
    let soft = match hard {
        None => 1 << 20,
        Some(h) => h.min(1 << 20),
    };
    assert!(soft > 0, "cannot raise RLIMIT_CORE: its hard limit is 0");
    let raised = Rlimit {
        current: Some(soft),
        maximum: hard,
    };
    setrlimit(Resource::Core, raised).expect("raise RLIMIT_CORE");
    assert_eq!(getrlimit(Resource::Core), raised);
    raised
}

#[test]
fn first_allocation_hardens_the_process() {
    const TEST: &str = "first_allocation_hardens_the_process";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};
            let raised = raise_core_limit();
            assert!(
                !memguard::is_process_hardened(),
                "hardened before any allocation"
            );
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);
            mark(&format!("CORE-LIMIT-RAISED {raised:?}"));

            let _buf = LockedBuffer::new(32).expect("allocate");
            let core = getrlimit(Resource::Core);
            assert_eq!(
                (core.current, core.maximum),
                (Some(0), Some(0)),
                "RLIMIT_CORE"
            );
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
            assert!(memguard::is_process_hardened());

            // Too late to opt out now, and the process stays hardened.
            assert!(matches!(
                memguard::disable_process_hardening(),
                Err(Error::HardeningAlreadyApplied)
            ));
            assert!(memguard::is_process_hardened());
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
            mark(&format!("HARDENED core={core:?} dumpable=no"));
        }
        Role::Parent => {
            let out = run(TEST, "applied");
            assert_clean_exit(&out, "CORE-LIMIT-RAISED", "hardening applied");
            assert_clean_exit(&out, "HARDENED core=", "hardening applied");
        }
    }
}

#[test]
fn disabled_hardening_leaves_core_limit_and_dumpable_flag() {
    const TEST: &str = "disabled_hardening_leaves_core_limit_and_dumpable_flag";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(_) => {
            use rustix::process::{dumpable_behavior, getrlimit, DumpableBehavior, Resource};
            memguard::disable_process_hardening().expect("opt out before any allocation");
            let raised = raise_core_limit();

            let _buf = LockedBuffer::new(32).expect("allocate");
            assert_eq!(getrlimit(Resource::Core), raised, "RLIMIT_CORE unchanged");
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::Dumpable);
            assert!(!memguard::is_process_hardened());
            // Opting out again is harmless.
            memguard::disable_process_hardening().expect("second opt-out");
            assert!(!memguard::is_process_hardened());
            mark(&format!("NOT-HARDENED core={raised:?} dumpable=yes"));
        }
        Role::Parent => {
            let out = run(TEST, "disabled");
            assert_clean_exit(&out, "NOT-HARDENED core=", "hardening disabled");
        }
    }
}

// ---------------------------------------------------------------------------
// 9. fork(): the child sees zeros where the buffer's data was
// ---------------------------------------------------------------------------

// fork() and _exit() come from the C library std already links against; a
// declaration is all that is needed (no `libc` crate).
extern "C" {
    fn fork() -> i32;
    fn _exit(status: i32) -> !;
}

/// How a forked probe ended.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Exit code: 0 all bytes zero, 1 all bytes 0xAA, 2 anything else.
    Exited(i32),
    Signaled(i32),
}

/// Forks; the forked child reads `len` bytes at `ptr` and reports what it
/// saw through its exit code. Only async-signal-safe things happen in it.
fn fork_and_probe(ptr: *const u8, len: usize) -> Probe {
    use rustix::process::{waitpid, Pid, WaitOptions};
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY (test): the forked child only reads memory and calls _exit.
    let pid = unsafe { fork() };
    if pid == 0 {
        let (mut zeros, mut aa) = (0, 0);
        for i in 0..len {
            // SAFETY (test): `ptr..ptr+len` is mapped in the parent; if the
            // child does not have it the read faults, which the parent sees.
            match unsafe { ptr.add(i).read_volatile() } {
                0 => zeros += 1,
                0xAA => aa += 1,
                _ => {}
            }
        }
        let code = if zeros == len {
            0
        } else if aa == len {
            1
        } else {
            2
        };
        // SAFETY: ends the forked child at once, without running anything
        // of the parent's (atexit handlers, destructors, stdio flushes).
        unsafe { _exit(code) }
    }
    assert!(pid > 0, "fork failed: {}", std::io::Error::last_os_error());
    let pid = Pid::from_raw(pid).expect("positive pid");
    let (_, status) = waitpid(Some(pid), WaitOptions::empty())
        .expect("waitpid")
        .expect("a status for the forked child");
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => Probe::Exited(code),
        (None, Some(sig)) => Probe::Signaled(sig),
        _ => panic!("unexpected wait status {status:?}"),
    }
}

#[test]
fn forked_child_sees_zeros_instead_of_buffer_data() {
    const TEST: &str = "forked_child_sees_zeros_instead_of_buffer_data";
    match role(TEST) {
        Role::Bystander => {}
        // The fork happens in a child of the test binary that runs only this
        // test, never in the multi-threaded parent.
        Role::Child(_) => {
            let (buf, ptr) = filled_buffer(64, 0xAA);
            let heap = Box::new([0xAAu8; 64]);

            let seen = fork_and_probe(ptr, buf.len());
            // Control: ordinary memory is copied into the forked child, so
            // the probe really reads the parent's bytes.
            let heap_seen = fork_and_probe(heap.as_ptr(), heap.len());
            mark(&format!(
                "FORK buffer: {seen:?} heap: {heap_seen:?} wipes_on_fork={}",
                buf.wipes_on_fork()
            ));
            assert_eq!(
                heap_seen,
                Probe::Exited(1),
                "the forked child sees heap data"
            );
            let expected = if buf.wipes_on_fork() {
                Probe::Exited(0) // MADV_WIPEONFORK: zero-filled
            } else {
                Probe::Signaled(SIGSEGV) // MADV_DONTFORK: not mapped at all
            };
            assert_eq!(seen, expected, "what the forked child sees of the buffer");
            assert!(
                buf.bytes().iter().all(|&b| b == 0xAA),
                "the parent's copy is intact"
            );
            mark("FORK-OK");
        }
        Role::Parent => {
            let out = run(TEST, "fork");
            assert_clean_exit(&out, "FORK-OK", "fork");
        }
    }
}
