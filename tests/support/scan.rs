//! Looking at another process's memory from outside: `/proc/<pid>/maps`,
//! `/proc/<pid>/smaps` and `/proc/<pid>/mem`, through the workspace's test
//! tooling (`memguard-testkit`'s `scan` and `procfs`).
//!
//! Include it with `#[path = "support/scan.rs"] mod scan;` (the shared
//! `support` module does not declare it).
#![allow(dead_code, unused_imports)]

pub use memguard_testkit::procfs::{mapping_of, read_maps, read_smaps, Mapping};
pub use memguard_testkit::scan::*;
