//! [`Protections`]: what the operating system actually gave one buffer.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The protections one [`LockedBuffer`](crate::LockedBuffer) got from this
/// operating system, as the platform layer set them up for its mapping
/// (see [`LockedBuffer::protections`](crate::LockedBuffer::protections)).
///
/// Nothing is claimed that the system did not confirm: a call that failed,
/// or a function the system lacks, leaves its protection out. The value
/// names protections only; it never holds secret data.
///
/// What each operating system gives (a protection not listed is not set):
///
/// | protection | Linux | macOS | FreeBSD | OpenBSD | Windows |
/// | --- | --- | --- | --- | --- | --- |
/// | [`GUARD_PAGES`](Self::GUARD_PAGES) | `PROT_NONE` | `PROT_NONE` | `PROT_NONE` | `PROT_NONE` | `PAGE_NOACCESS` |
/// | [`LOCKED`](Self::LOCKED) | `mlock` (secret memory: locked by the kernel, `VM_LOCKED`) | `mlock` | `mlock` | `mlock` | `VirtualLock` |
/// | [`OUT_OF_DUMPS`](Self::OUT_OF_DUMPS) | `MADV_DONTDUMP` (secret memory: `VM_DONTDUMP` by the kernel) | no (only the process-wide `RLIMIT_CORE`) | `MAP_NOCORE` | `MAP_CONCEAL` | `WerRegisterExcludedMemoryBlock`, where the system has it |
/// | [`ZEROED_IN_FORKS`](Self::ZEROED_IN_FORKS) | `MADV_WIPEONFORK` (4.14+; not for secret memory) | no | `minherit(INHERIT_ZERO)` | `minherit(MAP_INHERIT_ZERO)` | no fork |
/// | [`ABSENT_IN_FORKS`](Self::ABSENT_IN_FORKS) | `MADV_DONTFORK` (secret memory, or before 4.14) | `minherit(VM_INHERIT_NONE)` | no | no | no fork |
/// | [`CANARY`](Self::CANARY) | all: when the data does not fill its pages exactly | | | | |
/// | [`WIPE_BEFORE_CRASH`](Self::WIPE_BEFORE_CRASH) | SIGSEGV/SIGBUS handler | SIGSEGV/SIGBUS handler | SIGSEGV/SIGBUS handler | SIGSEGV/SIGBUS handler | vectored exception handler |
/// | [`SECRET_MEMORY`](Self::SECRET_MEMORY) | `memfd_secret` (5.14+, on by default since 6.5) | no | no | no | no |
/// | [`COMPACT`](Self::COMPACT) | all: a small buffer in a shared slab (then without `GUARD_PAGES`) | | | | |
///
/// ```
/// use memguard::{LockedBuffer, Protections};
///
/// let key = LockedBuffer::random(32)?;
/// let got = key.protections();
/// assert!(got.contains(Protections::GUARD_PAGES));
/// println!("{got}"); // for example "GUARD_PAGES | LOCKED | OUT_OF_DUMPS | ..."
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Protections(u16);

impl Protections {
    /// Inaccessible pages right before and right after the data pages, so
    /// an overflow or underflow faults at once.
    pub const GUARD_PAGES: Protections = Protections(1 << 0);
    /// The data pages are locked into RAM: never written to swap.
    pub const LOCKED: Protections = Protections(1 << 1);
    /// The data pages are left out of core dumps and crash reports by a
    /// flag on the mapping itself (beyond the process-wide hardening).
    pub const OUT_OF_DUMPS: Protections = Protections(1 << 2);
    /// A forked child gets the data pages zero-filled.
    pub const ZEROED_IN_FORKS: Protections = Protections(1 << 3);
    /// A forked child does not get the data pages at all.
    pub const ABSENT_IN_FORKS: Protections = Protections(1 << 4);
    /// A random canary fills the slack before the data and is checked when
    /// the buffer is destroyed (there is no slack, so no canary, when the
    /// length is a whole number of pages).
    pub const CANARY: Protections = Protections(1 << 5);
    /// The buffer is wiped before the process dies of a memory fault (a
    /// guard page hit, a write to a frozen buffer, any crash the fault hook
    /// sees).
    pub const WIPE_BEFORE_CRASH: Protections = Protections(1 << 6);
    /// The data pages are secret memory (Linux `memfd_secret`, 5.14+): taken
    /// out of the kernel's direct map, so no other process, root included,
    /// can read them through `/proc/<pid>/mem`, `process_vm_readv` or
    /// `ptrace`, and the kernel itself does not reach them in the ordinary
    /// course (see `THREAT_MODEL.md`, "Root and the kernel"). Set only when
    /// the pages really come from `memfd_secret`; see
    /// [`memory_backend`](crate::memory_backend).
    pub const SECRET_MEMORY: Protections = Protections(1 << 7);
    /// The buffer is *compact*: a slot in a page shared with other small
    /// secrets (see [`CompactMode`](crate::CompactMode)). The shared pages
    /// have guard pages around them, but the slot has none of its own
    /// ([`GUARD_PAGES`](Self::GUARD_PAGES) is not set): canaries before and
    /// after it ([`CANARY`](Self::CANARY)) stand in for them.
    pub const COMPACT: Protections = Protections(1 << 8);

    /// Every protection, with its name, in the order they are printed.
    const NAMED: [(Protections, &'static str); 9] = [
        (Protections::GUARD_PAGES, "GUARD_PAGES"),
        (Protections::LOCKED, "LOCKED"),
        (Protections::OUT_OF_DUMPS, "OUT_OF_DUMPS"),
        (Protections::ZEROED_IN_FORKS, "ZEROED_IN_FORKS"),
        (Protections::ABSENT_IN_FORKS, "ABSENT_IN_FORKS"),
        (Protections::CANARY, "CANARY"),
        (Protections::WIPE_BEFORE_CRASH, "WIPE_BEFORE_CRASH"),
        (Protections::SECRET_MEMORY, "SECRET_MEMORY"),
        (Protections::COMPACT, "COMPACT"),
    ];

    /// No protection at all.
    pub const fn empty() -> Protections {
        Protections(0)
    }

    /// Whether none is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every protection in `other` is set.
    pub const fn contains(self, other: Protections) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: Protections) -> Protections {
        Protections(self.0 | other.0)
    }

    /// The set without the protections in `other`.
    pub const fn without(self, other: Protections) -> Protections {
        Protections(self.0 & !other.0)
    }

    /// Whether a forked child cannot read the data: it gets zeros
    /// ([`ZEROED_IN_FORKS`](Self::ZEROED_IN_FORKS)) or nothing
    /// ([`ABSENT_IN_FORKS`](Self::ABSENT_IN_FORKS)). On an operating
    /// system without `fork` (Windows) this is `false`: there is no child
    /// to hide from.
    pub const fn hidden_from_forks(self) -> bool {
        self.0 & (Protections::ZEROED_IN_FORKS.0 | Protections::ABSENT_IN_FORKS.0) != 0
    }

    /// The names of the protections set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Protections::NAMED
            .into_iter()
            .filter(move |&(p, _)| self.contains(p))
            .map(|(_, name)| name)
    }
}

impl BitOr for Protections {
    type Output = Protections;
    fn bitor(self, rhs: Protections) -> Protections {
        self.union(rhs)
    }
}

impl BitOrAssign for Protections {
    fn bitor_assign(&mut self, rhs: Protections) {
        *self = self.union(rhs);
    }
}

/// The names joined with `" | "`; `"(none)"` for the empty set.
impl fmt::Display for Protections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// `Protections(GUARD_PAGES | LOCKED | ...)`.
impl fmt::Debug for Protections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protections({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_combine_and_answer_queries() {
        let p = Protections::LOCKED | Protections::GUARD_PAGES;
        assert!(p.contains(Protections::LOCKED));
        assert!(p.contains(Protections::LOCKED | Protections::GUARD_PAGES));
        assert!(!p.contains(Protections::OUT_OF_DUMPS));
        assert!(!p.hidden_from_forks());
        assert!((p | Protections::ABSENT_IN_FORKS).hidden_from_forks());
        assert!((p | Protections::ZEROED_IN_FORKS).hidden_from_forks());
        assert_eq!(p.without(Protections::LOCKED), Protections::GUARD_PAGES);
        assert!(Protections::empty().is_empty());
        assert!(Protections::empty().contains(Protections::empty()));
        let mut q = Protections::empty();
        q |= Protections::CANARY;
        assert_eq!(q, Protections::CANARY);
    }

    #[test]
    fn display_and_debug_list_the_names_in_order() {
        let p = Protections::WIPE_BEFORE_CRASH | Protections::LOCKED | Protections::GUARD_PAGES;
        assert_eq!(p.to_string(), "GUARD_PAGES | LOCKED | WIPE_BEFORE_CRASH");
        assert_eq!(
            format!("{p:?}"),
            "Protections(GUARD_PAGES | LOCKED | WIPE_BEFORE_CRASH)"
        );
        assert_eq!(Protections::empty().to_string(), "(none)");
        let all = Protections::NAMED
            .iter()
            .fold(Protections::empty(), |a, &(p, _)| a | p);
        assert_eq!(all.names().count(), Protections::NAMED.len());
    }
}
