//! [`Ref`]: shared access to a buffer's guarded memory.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use super::region::Region;

/// Shared, read-only access to the bytes of a [`LockedBuffer`](crate::LockedBuffer),
/// or to a typed view of them.
///
/// While a `Ref` lives, the memory it points to stays mapped and unwiped,
/// even if [`purge`](crate::purge) or a destroy runs meanwhile on another
/// thread: destruction is put off until the last guard is dropped, and
/// nobody waits for it. Keep guards short-lived.
///
/// `Debug` prints only the size of the view, never its contents.
///
/// ```
/// let key = memguard::LockedBuffer::random(32)?;
/// let bytes = key.bytes();
/// assert_eq!(bytes.len(), 32);
/// # Ok::<(), memguard::Error>(())
/// ```
pub struct Ref<'a, T: ?Sized> {
    ptr: NonNull<T>,
    owner: Option<&'a Region>,
    _borrow: PhantomData<&'a T>,
}

// SAFETY: a Ref is a shared reference plus an atomic release on drop; it may
// move to or be shared with another thread whenever `&T` may.
unsafe impl<T: ?Sized + Sync> Send for Ref<'_, T> {}
// SAFETY: as for Send.
unsafe impl<T: ?Sized + Sync> Sync for Ref<'_, T> {}

impl<'a> Ref<'a, [u8]> {
    /// An empty view, handed out for buffers that are destroyed.
    pub(crate) fn empty() -> Ref<'a, [u8]> {
        Ref {
            ptr: NonNull::from(&[][..]),
            owner: None,
            _borrow: PhantomData,
        }
    }
}

impl<'a, T: ?Sized> Ref<'a, T> {
    /// Wraps a pointer for which `owner` holds a shared borrow.
    pub(super) fn new(ptr: NonNull<T>, owner: &'a Region) -> Ref<'a, T> {
        Ref {
            ptr,
            owner: Some(owner),
            _borrow: PhantomData,
        }
    }

    /// Narrows the guard to a part of the data, keeping the borrow.
    ///
    /// ```
    /// use memguard::{LockedBuffer, Ref};
    ///
    /// let mut src = *b"user:secret";
    /// let buf = LockedBuffer::from_bytes(&mut src)?;
    /// let secret = Ref::map(buf.bytes(), |b| &b[5..]);
    /// assert_eq!(&*secret, b"secret");
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn map<U: ?Sized>(this: Ref<'a, T>, f: impl FnOnce(&T) -> &U) -> Ref<'a, U> {
        // SAFETY: the borrow `this` holds keeps the memory mapped and free of
        // writers for as long as the new guard, which inherits the borrow.
        let part = NonNull::from(f(unsafe { this.ptr.as_ref() }));
        let owner = this.owner;
        std::mem::forget(this);
        Ref {
            ptr: part,
            owner,
            _borrow: PhantomData,
        }
    }

    /// Like [`Ref::map`], for a conversion that can fail; on failure the
    /// borrow is released and the error returned.
    pub fn try_map<U: ?Sized, E>(
        this: Ref<'a, T>,
        f: impl FnOnce(&T) -> Result<&U, E>,
    ) -> Result<Ref<'a, U>, E> {
        // SAFETY: as in map().
        let part = NonNull::from(f(unsafe { this.ptr.as_ref() })?);
        let owner = this.owner;
        std::mem::forget(this);
        Ok(Ref {
            ptr: part,
            owner,
            _borrow: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the pointer is valid for reads while the borrow is held (or
        // is an empty slice); no RefMut can exist at the same time.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> AsRef<T> for Ref<'_, T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: ?Sized> Drop for Ref<'_, T> {
    fn drop(&mut self) {
        if let Some(owner) = self.owner {
            owner.end_read();
        }
    }
}

impl<T: ?Sized> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ref")
            .field("size", &std::mem::size_of_val::<T>(self))
            .finish_non_exhaustive()
    }
}
