//! [`LockedBuffer`] and the registry of live buffers.

mod locked_buffer;
mod readers;
pub(crate) mod registry;
mod views;

pub use locked_buffer::LockedBuffer;
