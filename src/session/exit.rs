//! Exit paths that purge first.

use std::fmt::Display;

/// Purges every secret (see [`purge`](crate::purge)), then exits the process
/// with `code`.
///
/// Use it in place of [`std::process::exit`], which runs no destructors and
/// would leave buffers unwiped until the kernel reclaims the pages.
///
/// After the purge, the data of every buffer that still has any is wiped
/// too: a buffer borrowed at that moment (a [`Ref`](crate::Ref) alive on
/// any thread, or leaked with [`std::mem::forget`]), whose destruction a
/// plain purge defers to its last guard, is zeroed in place before the
/// process ends. A thread still reading it meanwhile sees zeros. The exits
/// of [`catch_signal`](crate::catch_signal) and
/// [`catch_interrupt`](crate::catch_interrupt) go through here.
///
/// ```no_run
/// let key = memguard::LockedBuffer::random(32)?;
/// # let _ = &key;
/// memguard::safe_exit(0);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn safe_exit(code: i32) -> ! {
    super::purge();
    crate::mem::wipe_before_exit();
    std::process::exit(code)
}

/// Purges every secret, then panics with `msg`.
///
/// The purge happens before the panic starts, so even a panic that aborts or
/// is caught elsewhere leaves no secret behind. `msg` is printed as the panic
/// message: make sure it is not itself a secret.
///
/// ```should_panic
/// memguard::safe_panic("configuration is corrupt");
/// ```
pub fn safe_panic(msg: impl Display) -> ! {
    super::purge();
    panic!("{msg}")
}
