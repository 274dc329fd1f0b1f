//! Secrets from a JSON config file, with the `serde` feature:
//! `cargo run --example config --features serde -- path/to/config.json`
//! (without a path, a sample config is written to a temporary file first).
//!
//! The file is read straight into guarded memory (`from_entire_reader` on
//! the unbuffered `File`), so the whole input, secrets included, is wiped
//! when that buffer is dropped. `serde_json::from_slice` then hands the
//! secret fields to `LockedBuffer`'s and `Enclave`'s `Deserialize` as
//! slices of that guarded input, and they copy them into guarded memory of
//! their own. (A string with escapes such as `\n` is unescaped through
//! serde_json's own scratch buffer, which is not wiped: keep secrets free of
//! escapes.) Only lengths are printed.

use std::fs::File;

use memguard::{Enclave, LockedBuffer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    /// Not a secret: an ordinary `String`.
    server: String,
    /// Used often: kept open in a `LockedBuffer`, read as `&str`.
    api_token: LockedBuffer,
    /// Used rarely: kept sealed, opened when needed.
    database_password: Enclave,
}

const SAMPLE: &str = r#"{
    "server": "https://example.invalid",
    "api_token": "tok-3f9a8b7c",
    "database_password": "correct horse battery staple"
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let path =
                std::env::temp_dir().join(format!("memguard-config-{}.json", std::process::id()));
            std::fs::write(&path, SAMPLE)?;
            path
        }
    };

    // The whole file, in guarded memory; wiped when `raw` is dropped.
    let raw = LockedBuffer::from_entire_reader(File::open(&path)?)?;
    let config: Config = serde_json::from_slice(&raw.try_bytes()?)?;
    drop(raw);
    if std::env::args_os().nth(1).is_none() {
        std::fs::remove_file(&path)?;
    }

    println!("server: {}", config.server);
    let token = config.api_token.as_str()?;
    println!(
        "api_token: {} bytes, starts with \"tok-\": {}",
        token.len(),
        token.starts_with("tok-")
    );
    drop(token);

    let password = config.database_password.open()?;
    println!(
        "database_password: {} bytes (opened from its enclave)",
        password.len()
    );
    drop(password);

    memguard::purge();
    Ok(())
}
