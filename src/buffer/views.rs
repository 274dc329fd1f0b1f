//! Typed views of a buffer's bytes: fixed-size arrays, integer slices and
//! plain-old-data structs, with size and alignment checked, never assumed.
//!
//! The data ends at a page boundary, so it starts at an address aligned to
//! the largest power of two (up to the page size) that divides its length:
//! a buffer whose length is a multiple of 8 can always be viewed as `[u64]`.

use bytemuck::{AnyBitPattern, NoUninit, Pod, PodCastError};

use super::LockedBuffer;
use crate::error::{Error, Result};
use crate::mem::{Ref, RefMut};

fn layout_error<T>(size: usize, reason: &'static str) -> Error {
    Error::Layout {
        type_name: std::any::type_name::<T>(),
        type_size: std::mem::size_of::<T>(),
        type_align: std::mem::align_of::<T>(),
        size,
        reason,
    }
}

fn cast_error<T>(size: usize, e: PodCastError) -> Error {
    let reason = match e {
        PodCastError::TargetAlignmentGreaterAndInputNotAligned
        | PodCastError::AlignmentMismatch => "the data is not aligned for the type",
        PodCastError::OutputSliceWouldHaveSlop => {
            "the length is not a multiple of the element size"
        }
        PodCastError::SizeMismatch => "the length differs from the size of the type",
    };
    layout_error::<T>(size, reason)
}

/// A slice view needs a whole number of elements; said first, as it is the
/// one thing the caller can change (the alignment follows from it).
fn check_multiple<T>(len: usize) -> Result<()> {
    let size = std::mem::size_of::<T>();
    if size == 0 || !len.is_multiple_of(size) {
        return Err(layout_error::<T>(
            len,
            "the length is not a multiple of the element size",
        ));
    }
    Ok(())
}

fn live(buf: &LockedBuffer) -> Result<Ref<'_, [u8]>> {
    if !buf.is_alive() {
        return Err(Error::Destroyed);
    }
    buf.region.read().ok_or(Error::Destroyed)
}

macro_rules! slice_views {
    ($($ty:ty => $get:ident, $get_mut:ident;)*) => {$(
        #[doc = concat!("The whole buffer as a slice of `", stringify!($ty), "` (native byte order).")]
        ///
        #[doc = concat!("An alias of [`slice_of::<", stringify!($ty), ">()`](LockedBuffer::slice_of), kept for code ported from Go's memguard; new code can use the generic form.")]
        ///
        /// The length must be a multiple of the element size; the alignment
        /// then follows from the layout, and is checked all the same.
        /// Otherwise [`Error::Layout`].
        pub fn $get(&self) -> Result<Ref<'_, [$ty]>> {
            self.slice_of::<$ty>()
        }

        #[doc = concat!("The whole buffer as a mutable slice of `", stringify!($ty), "`; see [`LockedBuffer::", stringify!($get), "`].")]
        pub fn $get_mut(&mut self) -> Result<RefMut<'_, [$ty]>> {
            self.slice_of_mut::<$ty>()
        }
    )*};
}

macro_rules! array_views {
    ($($n:literal => $get:ident, $get_mut:ident;)*) => {$(
        #[doc = concat!("The first ", stringify!($n), " bytes as `[u8; ", stringify!($n), "]`; [`Error::OutOfRange`] if the buffer is shorter.")]
        ///
        #[doc = concat!("An alias of [`byte_array::<", stringify!($n), ">()`](LockedBuffer::byte_array), kept for code ported from Go's memguard (`ByteArray", stringify!($n), "`).")]
        pub fn $get(&self) -> Result<Ref<'_, [u8; $n]>> {
            self.byte_array::<$n>()
        }

        #[doc = concat!("The first ", stringify!($n), " bytes as a mutable `[u8; ", stringify!($n), "]`.")]
        pub fn $get_mut(&mut self) -> Result<RefMut<'_, [u8; $n]>> {
            self.byte_array_mut::<$n>()
        }
    )*};
}

impl LockedBuffer {
    /// The first `N` bytes as an array. Fails with [`Error::OutOfRange`] when
    /// the buffer is shorter than `N`, [`Error::Destroyed`] once destroyed.
    ///
    /// ```
    /// let key = memguard::LockedBuffer::random(32)?;
    /// let array: memguard::Ref<'_, [u8; 32]> = key.byte_array::<32>()?;
    /// assert_eq!(array.len(), 32);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn byte_array<const N: usize>(&self) -> Result<Ref<'_, [u8; N]>> {
        Ref::try_map(live(self)?, |b| {
            let size = b.len();
            b.first_chunk::<N>().ok_or(Error::OutOfRange {
                offset: 0,
                len: N,
                size,
            })
        })
    }

    /// The first `N` bytes as a mutable array; see [`LockedBuffer::byte_array`].
    pub fn byte_array_mut<const N: usize>(&mut self) -> Result<RefMut<'_, [u8; N]>> {
        RefMut::try_map(self.bytes_mut()?, |b| {
            let size = b.len();
            b.first_chunk_mut::<N>().ok_or(Error::OutOfRange {
                offset: 0,
                len: N,
                size,
            })
        })
    }

    array_views! {
        8 => byte_array8, byte_array8_mut;
        16 => byte_array16, byte_array16_mut;
        32 => byte_array32, byte_array32_mut;
        64 => byte_array64, byte_array64_mut;
    }

    /// The whole buffer as a slice of `T`, for any plain-old-data `T`.
    ///
    /// Fails with [`Error::Layout`] when the length is not a multiple of
    /// `size_of::<T>()` or the data is not aligned for `T`.
    ///
    /// ```
    /// let buf = memguard::LockedBuffer::new(16)?;
    /// let words = buf.slice_of::<u64>()?;
    /// assert_eq!(&*words, &[0u64, 0]);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn slice_of<T: AnyBitPattern>(&self) -> Result<Ref<'_, [T]>> {
        Ref::try_map(live(self)?, |b| {
            check_multiple::<T>(b.len())?;
            bytemuck::try_cast_slice::<u8, T>(b).map_err(|e| cast_error::<T>(b.len(), e))
        })
    }

    /// The whole buffer as a mutable slice of `T`; see [`LockedBuffer::slice_of`].
    pub fn slice_of_mut<T: AnyBitPattern + NoUninit>(&mut self) -> Result<RefMut<'_, [T]>> {
        RefMut::try_map(self.bytes_mut()?, |b| {
            let size = b.len();
            check_multiple::<T>(size)?;
            bytemuck::try_cast_slice_mut::<u8, T>(b).map_err(|e| cast_error::<T>(size, e))
        })
    }

    /// The whole buffer as one `T`, a plain-old-data type (such as a
    /// `#[repr(C)]` struct deriving [`bytemuck::Pod`]) whose size is exactly
    /// the buffer's length.
    ///
    /// Fails with [`Error::Layout`] on a size or alignment mismatch.
    ///
    /// ```
    /// #[derive(Clone, Copy, memguard::bytemuck::Zeroable, memguard::bytemuck::Pod)]
    /// #[bytemuck(crate = "memguard::bytemuck")]
    /// #[repr(C)]
    /// struct Keys { enc: [u8; 32], mac: [u8; 32] }
    ///
    /// let buf = memguard::LockedBuffer::random(64)?;
    /// let keys = buf.as_pod::<Keys>()?;
    /// assert_eq!(&keys.enc[..], &buf.bytes()[..32]);
    /// # Ok::<(), memguard::Error>(())
    /// ```
    pub fn as_pod<T: Pod>(&self) -> Result<Ref<'_, T>> {
        Ref::try_map(live(self)?, |b| {
            bytemuck::try_from_bytes::<T>(b).map_err(|e| cast_error::<T>(b.len(), e))
        })
    }

    /// The whole buffer as one mutable `T`; see [`LockedBuffer::as_pod`].
    pub fn as_pod_mut<T: Pod>(&mut self) -> Result<RefMut<'_, T>> {
        RefMut::try_map(self.bytes_mut()?, |b| {
            let size = b.len();
            bytemuck::try_from_bytes_mut::<T>(b).map_err(|e| cast_error::<T>(size, e))
        })
    }

    slice_views! {
        u16 => u16_slice, u16_slice_mut;
        u32 => u32_slice, u32_slice_mut;
        u64 => u64_slice, u64_slice_mut;
        i8 => i8_slice, i8_slice_mut;
        i16 => i16_slice, i16_slice_mut;
        i32 => i32_slice, i32_slice_mut;
        i64 => i64_slice, i64_slice_mut;
    }
}
