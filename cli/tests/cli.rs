//! End-to-end tests of the `memguard` command: its output is piped here, so
//! it must be plain (no ANSI escapes), and `--json` must parse.
//!
//! Timing ratios are never asserted: machines are noisy. The bench test
//! checks only that every operation was measured and gave a finite,
//! positive ratio.

use std::process::{Command, Output};

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_memguard");

/// The doctor's table of checks on this OS, in order, as `memguard doctor
/// --list` prints it (the table in the command is the one place the rows
/// are written; the report must follow it).
fn table() -> Vec<(String, String)> {
    let out = run(&["doctor", "--list"]);
    assert!(out.status.success(), "{}", describe(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("doctor --list is JSON");
    let rows: Vec<(String, String)> = rows
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("a name").to_owned(),
                r["kind"].as_str().expect("a kind").to_owned(),
            )
        })
        .collect();
    // The rows every OS has (written in the doctor's shared module) must be
    // there, so an empty or broken table cannot pass.
    for name in [
        "page size",
        "crash handler",
        "guard pages",
        "frozen write",
        "seal/open",
    ] {
        assert!(
            rows.iter().any(|(n, _)| n == name),
            "no {name:?} row: {rows:?}"
        );
    }
    rows
}

/// The names of every doctor check on this OS, in order.
fn check_names() -> Vec<String> {
    table().into_iter().map(|(name, _)| name).collect()
}

/// The self-tests, which must hold on any machine this crate supports.
fn expected_self_tests() -> Vec<String> {
    table()
        .into_iter()
        .filter(|(_, kind)| kind == "self-test")
        .map(|(name, _)| name)
        .collect()
}

fn run(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run memguard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn assert_plain(out: &Output) {
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "ANSI escapes in piped output\n{}",
        describe(out)
    );
}

#[test]
fn help_describes_each_subcommand() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let help = text(&out.stdout);
    assert!(help.contains("doctor") && help.contains("bench"), "{help}");
    assert!(
        !help.contains("selftest"),
        "the internal subcommand is hidden"
    );
    for sub in ["doctor", "bench"] {
        let out = run(&[sub, "--help"]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(text(&out.stdout).contains("--json"), "{}", describe(&out));
    }
    assert!(text(&run(&["bench", "--help"]).stdout).contains("--quick"));
    let out = run(&["--version"]);
    assert!(text(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn doctor_exits_0_and_prints_every_check_plainly() {
    let out = run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_plain(&out);
    let stdout = text(&out.stdout);
    let checks = check_names();
    for name in &checks {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no row for {name:?}\n{stdout}"
        );
    }
    let n = checks.len();
    assert!(stdout.contains(&format!("{n} checks:")), "{stdout}");
    // Progress went to stderr, one plain line per step.
    assert!(
        text(&out.stderr).contains(&format!("[{n}/{n}]")),
        "{}",
        describe(&out)
    );
}

#[test]
fn doctor_json_has_every_check_and_the_self_tests_hold() {
    let out = run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_plain(&out);
    assert!(
        out.stderr.is_empty(),
        "no progress lines with --json when stderr is not a terminal\n{}",
        describe(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    let checks = v["checks"].as_array().expect("a checks array");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, check_names());
    for c in checks {
        let result = c["result"].as_str().expect("a result");
        assert!(
            ["ok", "info", "degraded", "failed"].contains(&result),
            "{c}"
        );
        assert!(c["evidence"].as_str().is_some_and(|e| !e.is_empty()), "{c}");
        assert!(
            ["system", "self-test"].contains(&c["kind"].as_str().unwrap_or("")),
            "{c}"
        );
        // A fix exactly where the result is degraded or failed.
        assert_eq!(
            c["fix"].is_string(),
            ["degraded", "failed"].contains(&result),
            "{c}"
        );
        assert_ne!(result, "failed", "nothing fails on this machine: {c}");
    }
    let self_tests: Vec<&Value> = checks.iter().filter(|c| c["kind"] == "self-test").collect();
    let self_test_names: Vec<&str> = self_tests
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(self_test_names, expected_self_tests());
    for c in self_tests {
        assert_eq!(c["result"], "ok", "{c}");
    }
    if let Some(scan) = checks.iter().find(|c| c["name"] == "memory scan") {
        assert!(
            scan["evidence"]
                .as_str()
                .unwrap()
                .contains("no 16-byte window of the secret"),
            "{scan}"
        );
    }
    let summary = &v["summary"];
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["passed"], true);
    let total = ["ok", "info", "degraded", "failed"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total, names.len() as u64);
    assert!(v["system"]["kernel"].is_string());
}

#[test]
fn bench_quick_json_measures_every_operation() {
    let out = run(&["bench", "--quick", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_plain(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("bench --json is JSON");
    let ops = v["operations"].as_array().expect("an operations array");
    let ids: Vec<&str> = ops.iter().filter_map(|o| o["id"].as_str()).collect();
    for expected in [
        "lifecycle_spare/32",
        "lifecycle/32",
        "lifecycle/4096",
        "lifecycle/1048576",
        "lifecycle_min/32",
        "freeze_melt",
        "enclave_new/32",
        "enclave_open/1024",
        "enclave_open_into/65536",
        "enclave_new/1048576",
        "stream_write/1048576",
        "stream_read/1048576",
        "purge/1",
        "purge/100",
        "purge/10000",
        "libsodium_seal_open/32",
        "libsodium_seal_open/4096",
        "libsodium_seal_open/1048576",
        "libsodium_stream_write/1048576",
        "libsodium_stream_read/1048576",
    ] {
        assert!(ids.contains(&expected), "{expected} missing from {ids:?}");
    }
    assert_eq!(ids.len(), 28, "{ids:?}");
    let sodium_required = memguard_testkit::sodium::is_required(
        std::env::var_os(memguard_testkit::sodium::REQUIRE_ENV).as_deref(),
    );
    for o in ops {
        if let Some(why) = o["skipped"].as_str() {
            // Only a small RLIMIT_MEMLOCK (without CAP_IPC_LOCK) may keep
            // an operation from running, such as 10,000 live buffers; and
            // a missing libsodium the rows compared with it, unless the
            // run requires it (.ci/run does).
            let memlock = why.contains("RLIMIT_MEMLOCK");
            let sodium = why.contains("libsodium not found")
                && o["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("libsodium_"))
                && !sodium_required;
            assert!(why.starts_with("skipped: ") && (memlock || sodium), "{o}");
            continue;
        }
        for key in ["memguard_ns", "floor_ns", "ratio"] {
            let x = o[key].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite() && x > 0.0, "{key} of {o}");
        }
        assert!(o["operation"].is_string() && o["floor"].is_string(), "{o}");
        assert!(o["samples"].as_u64().unwrap_or(0) >= 3, "{o}");
    }
    let bytes = |id: &str| ops.iter().find(|o| o["id"] == id).unwrap()["bytes"].as_u64();
    assert_eq!(bytes("enclave_new/65536"), Some(65536));
    assert_eq!(bytes("freeze_melt"), None);
}

#[test]
fn bench_table_is_plain_when_piped_and_only_filters() {
    let out = run(&[
        "bench",
        "--seconds",
        "1",
        "--only",
        "freeze_melt,lifecycle/32",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_plain(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("freeze + melt"), "{stdout}");
    assert!(stdout.contains("LockedBuffer new+drop 32 B"), "{stdout}");
    assert!(!stdout.contains("Enclave"), "{stdout}");
    assert!(stdout.contains("RATIO"), "{stdout}");

    let out = run(&["bench", "--only", "no-such-operation"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("lifecycle/32"),
        "{}",
        describe(&out)
    );
}
