//! [`RefMut`]: exclusive access to a buffer's guarded memory.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::region::Region;

/// Exclusive, writable access to the bytes of a mutable
/// [`LockedBuffer`](crate::LockedBuffer), or to a typed view of them.
///
/// Obtained from [`LockedBuffer::bytes_mut`](crate::LockedBuffer::bytes_mut)
/// and the `_mut` views. As with [`Ref`](crate::Ref), a purge or destroy that
/// happens while it lives is carried out when it is dropped.
///
/// `Debug` prints only the size of the view, never its contents.
///
/// ```
/// let mut buf = memguard::LockedBuffer::new(4)?;
/// buf.bytes_mut()?.copy_from_slice(b"abcd");
/// assert!(buf.equal_to(b"abcd"));
/// # Ok::<(), memguard::Error>(())
/// ```
pub struct RefMut<'a, T: ?Sized> {
    ptr: NonNull<T>,
    owner: &'a Region,
    _borrow: PhantomData<&'a mut T>,
}

// SAFETY: a RefMut is an exclusive reference plus an atomic release on drop;
// it may move to another thread whenever `&mut T` may.
unsafe impl<T: ?Sized + Send> Send for RefMut<'_, T> {}
// SAFETY: shared access to a RefMut only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RefMut<'_, T> {}

impl<'a, T: ?Sized> RefMut<'a, T> {
    /// Wraps a pointer for which `owner` holds the exclusive borrow.
    pub(super) fn new(ptr: NonNull<T>, owner: &'a Region) -> RefMut<'a, T> {
        RefMut {
            ptr,
            owner,
            _borrow: PhantomData,
        }
    }

    /// Narrows the guard to a part of the data, keeping the borrow.
    ///
    /// ```
    /// use memguard::{LockedBuffer, RefMut};
    ///
    /// let mut buf = LockedBuffer::new(8)?;
    /// let mut tail = RefMut::map(buf.bytes_mut()?, |b| &mut b[4..]);
    /// tail.fill(7);
    /// drop(tail);
    /// assert!(buf.equal_to(&[0, 0, 0, 0, 7, 7, 7, 7]));
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn map<U: ?Sized>(
        mut this: RefMut<'a, T>,
        f: impl FnOnce(&mut T) -> &mut U,
    ) -> RefMut<'a, U> {
        // SAFETY: the exclusive borrow `this` holds passes to the new guard.
        let part = NonNull::from(f(unsafe { this.ptr.as_mut() }));
        let owner = this.owner;
        std::mem::forget(this);
        RefMut::new(part, owner)
    }

    /// Like [`RefMut::map`], for a conversion that can fail; on failure the
    /// borrow is released and the error returned.
    pub fn try_map<U: ?Sized, E>(
        mut this: RefMut<'a, T>,
        f: impl FnOnce(&mut T) -> Result<&mut U, E>,
    ) -> Result<RefMut<'a, U>, E> {
        // SAFETY: as in map().
        let part = NonNull::from(f(unsafe { this.ptr.as_mut() })?);
        let owner = this.owner;
        std::mem::forget(this);
        Ok(RefMut::new(part, owner))
    }
}

impl<T: ?Sized> Deref for RefMut<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: valid while the exclusive borrow is held.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for RefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: valid and writable while the exclusive borrow is held; the
        // region is not frozen (checked when the borrow was taken, and
        // freezing needs the same exclusive borrow).
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized> AsRef<T> for RefMut<'_, T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: ?Sized> AsMut<T> for RefMut<'_, T> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}

impl<T: ?Sized> Drop for RefMut<'_, T> {
    fn drop(&mut self) {
        self.owner.end_write();
    }
}

impl<T: ?Sized> fmt::Debug for RefMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefMut")
            .field("size", &std::mem::size_of_val::<T>(self))
            .finish_non_exhaustive()
    }
}
