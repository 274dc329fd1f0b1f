//! Wiping memory in a way the compiler cannot remove.

/// Overwrites `buf` with zeros, in a way the optimiser cannot elide.
///
/// The zeros are written with an ordinary (vectorised) fill, then the
/// buffer's address is handed to an empty inline-assembly block that the
/// compiler must assume reads the memory. The stores therefore have to
/// happen, even when `buf` is never read again: the same technique as
/// glibc's `explicit_bzero`, at `memset` speed.
///
/// ```
/// let mut password = *b"hunter2";
/// memguard::wipe_bytes(&mut password);
/// assert_eq!(password, [0u8; 7]);
/// ```
pub fn wipe_bytes(buf: &mut [u8]) {
    buf.fill(0);
    observe(buf.as_ptr());
}

/// Bytes of stack [`scrub_stack`] overwrites.
const SCRUB: usize = 4096;

/// Overwrites the stack just below the caller's frame with zeros.
///
/// Called right after a cipher operation returns: the cipher's own frames
/// (keystream blocks, a partial block of plaintext) lay in the stack space
/// this function's frame now occupies, and nothing else wipes them.
#[inline(never)]
pub(crate) fn scrub_stack() {
    let mut area = [0xffu8; SCRUB];
    wipe_bytes(std::hint::black_box(&mut area));
}

/// Tells the compiler that the memory behind `ptr` is read here.
#[inline(always)]
fn observe(ptr: *const u8) {
    #[cfg(all(
        not(miri),
        any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "loongarch64"
        )
    ))]
    // SAFETY: the assembly is empty: it reads no register but the one that
    // holds the pointer, writes nothing and touches no stack. It exists only
    // so the compiler must assume the buffer is read after the fill.
    unsafe {
        std::arch::asm!("/* {0} */", in(reg) ptr, options(nostack, readonly, preserves_flags));
    }
    #[cfg(any(
        miri,
        not(any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "riscv64",
            target_arch = "loongarch64"
        ))
    ))]
    {
        std::hint::black_box(ptr);
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipes_every_byte() {
        for len in [0usize, 1, 7, 64, 4097] {
            let mut v: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            wipe_bytes(&mut v);
            assert!(v.iter().all(|&b| b == 0), "len {len}");
        }
    }
}
