//! The `memguard` command.

fn main() {
    println!("memguard {}", env!("CARGO_PKG_VERSION"));
}
