//! [`LockedBuffer`] and the registry of live buffers.

mod convenience;
mod locked_buffer;
mod readers;
pub(crate) mod registry;
mod terminal;
mod views;

pub use locked_buffer::LockedBuffer;
// For the platform layer's terminal tests.
#[cfg(test)]
#[allow(unused_imports)]
pub(crate) use terminal::read_password_on;
