//! Exit paths that purge first.

use std::fmt::Display;

/// Purges every secret (see [`purge`](crate::purge)), then exits the process
/// with `code`.
///
/// Use it in place of [`std::process::exit`], which runs no destructors and
/// would leave buffers unwiped until the kernel reclaims the pages.
///
/// ```no_run
/// let key = memguard::LockedBuffer::random(32)?;
/// # let _ = &key;
/// memguard::safe_exit(0);
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn safe_exit(code: i32) -> ! {
    super::purge();
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
