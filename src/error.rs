//! The crate's error type.

use std::fmt;
use std::io;

use crate::mem::sys::{Os, Process};

/// Shorthand for `std::result::Result<T, memguard::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in this crate.
///
/// Every variant says what happened and, where there is one, what to do about
/// it. No variant ever carries secret data: an error can be logged freely.
///
/// The enum is `#[non_exhaustive]`: match the variants you care about and keep
/// a catch-all arm.
///
/// `Debug` carries the same advice as `Display`: it prints the variant and its
/// fields, then the message, so `fn main() -> Result<(), memguard::Error>`
/// and `.unwrap()` say what to do too.
///
/// ```
/// use memguard::{Error, LockedBuffer};
///
/// assert!(matches!(LockedBuffer::new(0), Err(Error::NullBuffer)));
///
/// let mut key = LockedBuffer::random(16)?;
/// let err = key.wipe().unwrap_err();
/// assert_eq!(
///     format!("{err:?}"),
///     "Immutable: the buffer is immutable (frozen); call melt() before writing to it"
/// );
/// # Ok::<(), memguard::Error>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A size of zero was asked for, or a source held no data.
    #[error("null buffer: a buffer must hold at least one byte (size 0 or no data was given)")]
    NullBuffer,

    /// The buffer was destroyed (explicitly, on drop or by `purge`).
    #[error("the buffer has been destroyed; create a new one")]
    Destroyed,

    /// The buffer is frozen (read-only); call `melt()` before writing to it.
    #[error("the buffer is immutable (frozen); call melt() before writing to it")]
    Immutable,

    /// Authentication of sealed data failed: the ciphertext was altered, or
    /// the session key it was sealed under has been purged since.
    #[error("decryption failed: the ciphertext was modified or its key was purged")]
    DecryptionFailed,

    /// An offset and length reach past the end of the buffer. Nothing was
    /// written.
    #[error("out of range: {len} bytes at offset {offset} do not fit in a buffer of {size} bytes; nothing was written")]
    OutOfRange {
        /// The offset that was asked for.
        offset: usize,
        /// The number of bytes that were to be written or viewed.
        len: usize,
        /// The size of the buffer.
        size: usize,
    },

    /// A destination buffer's length differs from what must go in it.
    #[error(
        "size mismatch: {expected} bytes must go into a buffer of exactly that size, not {actual}"
    )]
    SizeMismatch {
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },

    /// A typed view does not fit the buffer's length or alignment.
    #[error("cannot view {size} bytes as {type_name} (size {type_size}, alignment {type_align}): {reason}")]
    Layout {
        /// The name of the type that was asked for.
        type_name: &'static str,
        /// `size_of` the type (of one element for slice views).
        type_size: usize,
        /// `align_of` the type.
        type_align: usize,
        /// The length of the buffer in bytes.
        size: usize,
        /// Why the view does not fit.
        reason: &'static str,
    },

    /// Reading from a source failed or ended early. Whatever was read has
    /// been wiped.
    #[error("read failed after {read} bytes (the partial data was wiped): {source}")]
    Io {
        /// How many bytes were read before the failure.
        read: usize,
        /// The underlying error; `UnexpectedEof` for a source that ended early.
        #[source]
        source: io::Error,
    },

    /// Locking memory failed: the process hit its limit on locked memory
    /// (`RLIMIT_MEMLOCK` on Unix, the working-set quota on Windows). The
    /// message names the limit and how to raise it on this system.
    #[error("{}", MemlockMessage { requested: *requested, limit: *limit, source })]
    MemoryLock {
        /// How many bytes were to be locked.
        requested: usize,
        /// The limit in bytes at the time (`None`: unlimited): the soft
        /// `RLIMIT_MEMLOCK` on Unix, the maximum working set on Windows.
        limit: Option<u64>,
        /// The error the system returned.
        #[source]
        source: io::Error,
    },

    /// The system refused a new mapping: the process has too many (each
    /// buffer uses up to three) or the system is out of memory. The message
    /// says what to do on this system.
    #[error("{operation} failed ({source}): {}", MappingMessage(*max_map_count))]
    OutOfMappings {
        /// The call that failed: `mmap` or `mprotect`.
        operation: &'static str,
        /// The system's limit on mappings per process, if it has one and it
        /// could be read (Linux: `vm.max_map_count`).
        max_map_count: Option<u64>,
        /// The error the system returned (ENOMEM).
        #[source]
        source: io::Error,
    },

    /// The size asked for cannot be mapped on this machine.
    #[error("a buffer of {size} bytes is too large to allocate on this machine")]
    TooLarge {
        /// The size that was asked for.
        size: usize,
    },

    /// The buffer is borrowed in a way that conflicts with the request; drop
    /// the other guard first.
    #[error("the buffer is borrowed elsewhere; drop the other guard first")]
    Busy,

    /// Process hardening has already been applied, so it can no longer be
    /// switched off.
    #[error("process hardening was already applied; call disable_process_hardening() before any other memguard function")]
    HardeningAlreadyApplied,

    /// The memory backend was already decided (on the first allocation, or by
    /// an earlier call); [`set_memory_backend`](crate::set_memory_backend)
    /// must come before any allocation.
    #[error("the memory backend is already decided ({current}); call set_memory_backend() before any other memguard function")]
    MemoryBackendAlreadyChosen {
        /// The backend in effect, as [`memory_backend`](crate::memory_backend) names it.
        current: &'static str,
    },

    /// Secret memory (`memfd_secret`) was asked for but this system cannot
    /// give it; the anonymous backend is in effect instead.
    #[error("secret memory is not available: {reason}; the anonymous backend is in effect (see memguard::memory_backend_reason())")]
    SecretMemoryUnavailable {
        /// Why the system cannot give secret memory.
        reason: String,
    },

    /// The buffer is compact (a slot in pages shared with other small
    /// secrets, see [`CompactMode`](crate::CompactMode)), and pages shared
    /// with other secrets cannot be made inaccessible between uses.
    #[error("this buffer is compact (its pages are shared with other small secrets), so they cannot be sealed between uses; create it while set_compact_mode(CompactMode::Never) is in effect to give it pages of its own")]
    CompactBuffer,

    /// The signal cannot be caught with `catch_signal`.
    #[error("signal {signal} cannot be caught this way (SIGKILL and SIGSTOP cannot be caught at all; faults such as SIGSEGV, SIGBUS, SIGILL and SIGFPE are handled by the crash handler)")]
    UncatchableSignal {
        /// The signal number.
        signal: i32,
    },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    /// The buffer does not hold UTF-8 text, so it has no `str` view.
    #[error("the buffer does not hold UTF-8 text (the bytes from offset {valid_up_to} on are not valid UTF-8); read it as bytes with try_bytes()")]
    Utf8 {
        /// How many bytes at the start are valid UTF-8.
        valid_up_to: usize,
    },

    /// An environment variable that was to hold a secret is missing or empty.
    #[error(
        "environment variable {name} {reason}; set it to the secret before starting the program"
    )]
    EnvVar {
        /// The variable's name (never its value).
        name: String,
        /// What is wrong with it: "is not set" or "is empty".
        reason: &'static str,
    },

    /// There is no terminal to prompt on: the process has no controlling
    /// terminal (run from a service, a pipe or CI), or it could not be set
    /// up.
    #[error("no terminal to read the secret from ({source}); pass it another way (a file, a pipe on standard input, or the environment)")]
    NoTerminal {
        /// The error from opening or configuring the terminal (`/dev/tty`
        /// on Unix, the console on Windows).
        #[source]
        source: io::Error,
    },

    /// An empty line was entered where a secret was expected.
    #[error(
        "nothing was entered: the line was empty (or input ended); type the secret, then Enter"
    )]
    EmptyLine,

    /// A system call failed.
    #[error("{operation} failed: {source}")]
    Os {
        /// The call that failed, such as `mmap` or `mprotect`.
        operation: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// A system call that failed, with the system's error.
    pub(crate) fn os(operation: &'static str, source: io::Error) -> Error {
        Error::Os { operation, source }
    }
}

impl Error {
    /// The operating system's random number generator failed. Not a `From`
    /// impl, so that `getrandom`'s version stays out of this crate's API.
    pub(crate) fn random(e: getrandom::Error) -> Error {
        Error::Random(e.to_string())
    }
}

/// The variant and its fields, then the message with its advice:
/// `MemoryLock { requested: 4096, limit: Some(65536), source: .. }: mlock of 4
/// KiB failed (..): RLIMIT_MEMLOCK is 64 KiB ..; raise the limit with `ulimit
/// -l` ..`. With `{:#?}`, a struct whose last field is the message.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, fields): (&str, &[(&str, &dyn fmt::Debug)]) = match self {
            Error::NullBuffer => ("NullBuffer", &[]),
            Error::Destroyed => ("Destroyed", &[]),
            Error::Immutable => ("Immutable", &[]),
            Error::DecryptionFailed => ("DecryptionFailed", &[]),
            Error::OutOfRange { offset, len, size } => (
                "OutOfRange",
                &[("offset", offset), ("len", len), ("size", size)],
            ),
            Error::SizeMismatch { expected, actual } => (
                "SizeMismatch",
                &[("expected", expected), ("actual", actual)],
            ),
            Error::Layout {
                type_name,
                type_size,
                type_align,
                size,
                reason,
            } => (
                "Layout",
                &[
                    ("type_name", type_name),
                    ("type_size", type_size),
                    ("type_align", type_align),
                    ("size", size),
                    ("reason", reason),
                ],
            ),
            Error::Io { read, source } => ("Io", &[("read", read), ("source", source)]),
            Error::MemoryLock {
                requested,
                limit,
                source,
            } => (
                "MemoryLock",
                &[
                    ("requested", requested),
                    ("limit", limit),
                    ("source", source),
                ],
            ),
            Error::OutOfMappings {
                operation,
                max_map_count,
                source,
            } => (
                "OutOfMappings",
                &[
                    ("operation", operation),
                    ("max_map_count", max_map_count),
                    ("source", source),
                ],
            ),
            Error::TooLarge { size } => ("TooLarge", &[("size", size)]),
            Error::Busy => ("Busy", &[]),
            Error::HardeningAlreadyApplied => ("HardeningAlreadyApplied", &[]),
            Error::CompactBuffer => ("CompactBuffer", &[]),
            Error::MemoryBackendAlreadyChosen { current } => {
                ("MemoryBackendAlreadyChosen", &[("current", current)])
            }
            Error::SecretMemoryUnavailable { reason } => {
                ("SecretMemoryUnavailable", &[("reason", reason)])
            }
            Error::UncatchableSignal { signal } => ("UncatchableSignal", &[("signal", signal)]),
            Error::Random(text) => ("Random", &[("0", text)]),
            Error::Utf8 { valid_up_to } => ("Utf8", &[("valid_up_to", valid_up_to)]),
            Error::EnvVar { name, reason } => ("EnvVar", &[("name", name), ("reason", reason)]),
            Error::NoTerminal { source } => ("NoTerminal", &[("source", source)]),
            Error::EmptyLine => ("EmptyLine", &[]),
            Error::Os { operation, source } => {
                ("Os", &[("operation", operation), ("source", source)])
            }
        };
        if f.alternate() {
            let mut s = f.debug_struct(name);
            for (field, value) in fields {
                s.field(field, value);
            }
            return s.field("message", &self.to_string()).finish();
        }
        f.write_str(name)?;
        if !fields.is_empty() {
            f.write_str(" { ")?;
            for (i, (field, value)) in fields.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{field}: {value:?}")?;
            }
            f.write_str(" }")?;
        }
        write!(f, ": {self}")
    }
}

/// Turns an [`Error`] into an [`io::Error`], for use in `Read`/`Write` impls.
///
/// `Io` errors give back their source; `DecryptionFailed` becomes
/// `InvalidData`; `Destroyed`, `Immutable` and `NullBuffer` become
/// `InvalidInput`; the rest become `Other`. The original error stays
/// reachable through [`io::Error::get_ref`].
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::DecryptionFailed => io::ErrorKind::InvalidData,
            Error::Destroyed | Error::Immutable | Error::NullBuffer => io::ErrorKind::InvalidInput,
            Error::Utf8 { .. } => io::ErrorKind::InvalidData,
            Error::EnvVar { .. } => io::ErrorKind::NotFound,
            Error::OutOfRange { .. } | Error::Layout { .. } | Error::SizeMismatch { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::MemoryLock { .. } | Error::TooLarge { .. } | Error::OutOfMappings { .. } => {
                io::ErrorKind::OutOfMemory
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Renders a lock failure with the limit and the fix (the fix from the
/// platform layer).
struct MemlockMessage<'a> {
    requested: usize,
    limit: Option<u64>,
    source: &'a io::Error,
}

impl fmt::Display for MemlockMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "locking {} of memory failed ({}): ",
            Size(self.requested as u64),
            self.source
        )?;
        Os::lock_advice(f, self.limit)
    }
}

/// Renders what to do when mappings run out (from the platform layer).
struct MappingMessage(Option<u64>);

impl fmt::Display for MappingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Os::mapping_advice(f, self.0)
    }
}

/// A byte count printed in the unit that reads best (B, KiB, MiB, GiB).
pub(crate) struct Size(pub(crate) u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
        let mut value = self.0;
        let mut unit = 0;
        while unit < UNITS.len() - 1 && value >= 1024 && value.is_multiple_of(1024) {
            value /= 1024;
            unit += 1;
        }
        write!(f, "{} {}", value, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The platform's advice for a lock limit.
    struct Advice(Option<u64>);

    impl fmt::Display for Advice {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            Os::lock_advice(f, self.0)
        }
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(Size(0).to_string(), "0 bytes");
        assert_eq!(Size(65536).to_string(), "64 KiB");
        assert_eq!(Size(8 << 20).to_string(), "8 MiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
        assert_eq!(Size(1536).to_string(), "1536 bytes");
    }

    #[test]
    fn mlock_message_names_limit_and_fix() {
        let e = Error::MemoryLock {
            requested: 4096,
            limit: Some(65536),
            source: io::Error::from_raw_os_error(12),
        };
        let text = e.to_string();
        assert!(text.starts_with("locking 4 KiB of memory failed"), "{text}");
        let mut advice = String::new();
        let _ = fmt::write(&mut advice, format_args!("{}", Advice(Some(65536))));
        assert!(text.ends_with(&advice), "{text}");
    }

    #[test]
    fn debug_carries_the_advice() {
        let text = format!("{:?}", Error::Immutable);
        assert_eq!(
            text,
            "Immutable: the buffer is immutable (frozen); call melt() before writing to it"
        );

        let e = Error::MemoryLock {
            requested: 4096,
            limit: Some(8 << 20),
            source: io::Error::from_raw_os_error(12),
        };
        let text = format!("{e:?}");
        assert!(
            text.starts_with("MemoryLock { requested: 4096, limit: Some(8388608), source: "),
            "{text}"
        );
        assert!(text.ends_with(&Advice(Some(8 << 20)).to_string()), "{text}");

        let e = Error::OutOfRange {
            offset: 3,
            len: 2,
            size: 4,
        };
        assert_eq!(
            format!("{e:?}"),
            "OutOfRange { offset: 3, len: 2, size: 4 }: out of range: 2 bytes at offset 3 do \
             not fit in a buffer of 4 bytes; nothing was written"
        );
    }

    #[test]
    fn alternate_debug_is_a_struct_with_the_message() {
        let text = format!("{:#?}", Error::TooLarge { size: 7 });
        assert!(text.starts_with("TooLarge {\n    size: 7,\n"), "{text}");
        assert!(
            text.contains("message: \"a buffer of 7 bytes is too large"),
            "{text}"
        );
        let text = format!("{:#?}", Error::Destroyed);
        assert!(text.contains("create a new one"), "{text}");
    }

    #[test]
    fn unwrap_shows_the_advice() {
        let caught = std::panic::catch_unwind(|| {
            let r: Result<()> = std::hint::black_box(Err(Error::HardeningAlreadyApplied));
            r.unwrap();
        });
        let payload = caught.expect_err("unwrap of an Err panics");
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("call disable_process_hardening() before any other memguard function"),
            "{text}"
        );
    }

    #[test]
    fn io_conversion_keeps_kind_and_source() {
        let e: io::Error = Error::DecryptionFailed.into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
        assert!(matches!(inner, Some(Error::DecryptionFailed)));
    }
}
