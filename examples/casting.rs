//! Typed views of guarded memory: integer slices, fixed-size arrays and a
//! plain struct laid over a `LockedBuffer`, all checked for size and
//! alignment, never assumed. Run with `cargo run --example casting`.
//!
//! Every view is a guard (`Ref` / `RefMut`) pointing into the buffer itself:
//! nothing is copied out of guarded memory. A view that does not fit (wrong
//! length, wrong alignment) is an `Error::Layout`, not undefined behaviour.
//!
//! Prints one line per check and `all checks passed`, or exits non-zero.

use std::mem::{align_of, size_of};
use std::process::ExitCode;

use memguard::bytemuck::{Pod, Zeroable};
use memguard::{Error, LockedBuffer};

/// A struct to keep in guarded memory. `Pod` needs `#[repr(C)]`, fields that
/// are all `Pod` themselves, and no padding (hence the explicit `_reserved`).
#[derive(Clone, Copy, Pod, Zeroable)]
#[bytemuck(crate = "memguard::bytemuck")]
#[repr(C)]
struct SessionKeys {
    encryption: [u8; 32],
    authentication: [u8; 32],
    counter: u64,
    version: u32,
    _reserved: u32,
}

fn main() -> ExitCode {
    let mut failed = 0;
    match run(&mut failed) {
        Ok(()) if failed == 0 => {
            println!("all checks passed");
            ExitCode::SUCCESS
        }
        Ok(()) => {
            println!("{failed} check(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(failed: &mut usize, what: &str, held: bool) {
    println!("{what}: {}", if held { "ok" } else { "FAILED" });
    if !held {
        *failed += 1;
    }
}

fn run(failed: &mut usize) -> Result<(), Error> {
    // --- Integer slices --------------------------------------------------
    // A buffer whose length is a multiple of 8 ends at a page boundary, so
    // it starts 8-aligned: it can be viewed as [u64] (and [u32], [u16]).
    let mut words = LockedBuffer::new(64)?;
    {
        let mut w = words.u64_slice_mut()?;
        for (i, word) in w.iter_mut().enumerate() {
            *word = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1);
        }
        check(failed, "u64_slice_mut: 8 words written", w.len() == 8);
    }
    words.freeze()?;
    {
        let halves = words.u32_slice()?;
        let w = words.u64_slice()?;
        // Two views of the same bytes at once (both shared): the u32 halves
        // are the u64 words split in native byte order.
        let agree = w.iter().enumerate().all(|(i, word)| {
            let bytes = word.to_ne_bytes();
            let lo = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let hi = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            halves[2 * i] == lo && halves[2 * i + 1] == hi
        });
        check(
            failed,
            "u32_slice: 16 words, the same bytes as the u64 words",
            halves.len() == 16 && agree,
        );
        check(
            failed,
            "views point into the buffer itself (no copy)",
            std::ptr::eq(halves.as_ptr().cast::<u8>(), words.bytes().as_ptr()),
        );
    }

    // --- Fixed-size arrays -----------------------------------------------
    let key = LockedBuffer::random(32)?;
    {
        let array: memguard::Ref<'_, [u8; 32]> = key.byte_array32()?;
        check(
            failed,
            "byte_array32: the key as [u8; 32]",
            key.equal_to(&array[..]),
        );
        // Hand it to an API that takes a &[u8; 32], still without a copy.
        check(
            failed,
            "byte_array32 passed as &[u8; 32]",
            takes_key(&array),
        );
    }
    let short = LockedBuffer::new(16)?;
    check(
        failed,
        "byte_array32 of a 16-byte buffer is Error::OutOfRange",
        matches!(short.byte_array32(), Err(Error::OutOfRange { .. })),
    );

    // --- A struct over guarded memory ------------------------------------
    let mut keys = LockedBuffer::new(size_of::<SessionKeys>())?;
    {
        let mut k = keys.as_pod_mut::<SessionKeys>()?;
        memguard::scramble_bytes(&mut k.encryption)?;
        memguard::scramble_bytes(&mut k.authentication)?;
        k.counter = 1;
        k.version = 3;
    }
    keys.freeze()?;
    {
        let k = keys.as_pod::<SessionKeys>()?;
        let bytes = keys.bytes();
        check(
            failed,
            &format!(
                "as_pod: SessionKeys ({} bytes, align {}) over guarded memory",
                size_of::<SessionKeys>(),
                align_of::<SessionKeys>()
            ),
            k.counter == 1 && k.version == 3 && k._reserved == 0,
        );
        check(
            failed,
            "as_pod: fields are the buffer's bytes",
            std::ptr::eq(&k.encryption[0], &bytes[0])
                && k.authentication[..] == bytes[32..64]
                && k.encryption[..] == bytes[..32],
        );
    }

    // --- Views that do not fit are errors, not undefined behaviour -------
    // 12 bytes are not a whole number of u64s (and, as the data ends at a
    // page boundary, they start 4 bytes off an 8-byte boundary too).
    let twelve = LockedBuffer::new(12)?;
    let misaligned = twelve.u64_slice();
    check(
        failed,
        &format!("u64 view of 12 bytes is {}", describe(&misaligned)),
        matches!(misaligned, Err(Error::Layout { .. })),
    );
    let seven = LockedBuffer::new(7)?;
    let odd = seven.u32_slice();
    check(
        failed,
        &format!("u32 view of 7 bytes is {}", describe(&odd)),
        matches!(odd, Err(Error::Layout { .. })),
    );
    let mut wrong_size = LockedBuffer::new(size_of::<SessionKeys>() - 8)?;
    let too_small = wrong_size.as_pod_mut::<SessionKeys>().map(|_| ());
    check(
        failed,
        &format!(
            "SessionKeys over {} bytes is {}",
            wrong_size.len(),
            describe(&too_small)
        ),
        matches!(too_small, Err(Error::Layout { .. })),
    );
    // A failed view leaves the buffer usable: the borrow was released.
    check(
        failed,
        "a failed view releases its borrow",
        wrong_size.bytes_mut().is_ok(),
    );
    Ok(())
}

fn takes_key(key: &[u8; 32]) -> bool {
    key.len() == 32
}

/// `Error::Layout (reason)` for a layout error, or what it was instead.
fn describe<T>(result: &Result<T, Error>) -> String {
    match result {
        Err(Error::Layout { reason, .. }) => format!("Error::Layout ({reason})"),
        Err(e) => format!("another error: {e}"),
        Ok(_) => "accepted (unexpected)".to_string(),
    }
}
