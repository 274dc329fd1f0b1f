//! [`LockedBuffer`] and the registry of live buffers.

mod convenience;
mod locked_buffer;
mod readers;
pub(crate) mod registry;
mod terminal;
mod views;

pub use locked_buffer::LockedBuffer;
#[cfg(test)]
pub(crate) use terminal::read_password_on;
