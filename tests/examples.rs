//! Runs the examples (built by `cargo test` beside the test binaries) and
//! checks what they print.

use std::path::PathBuf;
use std::process::Command;

/// The path of a built example, next to this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    profile_dir.join("examples").join(name)
}

#[test]
fn protections_example_reports_every_protection_held() {
    let path = example("protections");
    let out = Command::new(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "data ends at page end     yes",
        "frozen (read-only)        yes",
        "lo: locked in RAM",
        "wiped                     yes",
        "purged                    yes",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let locked = text
        .lines()
        .find(|l| l.contains("lo: locked"))
        .unwrap_or("");
    assert!(locked.ends_with("yes"), "{text}");
}
