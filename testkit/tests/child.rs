//! The child runner and the forking helper, on real processes.
#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memguard_testkit::child::{collect, killed_by, role_in, stdout, Role};

fn piped(cmd: &mut Command) -> std::process::Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn collect_returns_what_an_ending_child_printed_and_its_status() {
    let child = piped(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
    let got = collect(child, Duration::from_secs(20)).unwrap();
    assert!(!got.timed_out);
    assert_eq!(got.output.status.code(), Some(3));
    assert_eq!(stdout(&got.output), "out\n");
    assert_eq!(got.output.stderr, b"err\n");
}

#[test]
fn collect_kills_a_child_still_running_at_the_timeout() {
    let started = Instant::now();
    let child = piped(Command::new("sleep").arg("30"));
    let got = collect(child, Duration::from_millis(200)).unwrap();
    assert!(got.timed_out);
    assert_eq!(killed_by(&got.output), Some(libc::SIGKILL));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_child_that_prints_more_than_a_pipe_holds_never_blocks() {
    let child = piped(Command::new("head").args(["-c", "1048576", "/dev/zero"]));
    let got = collect(child, Duration::from_secs(20)).unwrap();
    assert!(!got.timed_out && got.output.status.success());
    assert_eq!(got.output.stdout.len(), 1 << 20);
}

#[test]
fn roles_come_from_test_slash_scenario() {
    assert!(matches!(role_in(None, "t"), Role::Parent));
    assert!(matches!(role_in(Some("t/a b"), "t"), Role::Child(s) if s == "a b"));
    assert!(matches!(role_in(Some("t2/x"), "t"), Role::Bystander));
    assert!(matches!(role_in(Some("t"), "t"), Role::Bystander));
}

#[cfg(target_os = "linux")]
mod forked {
    use std::time::Duration;

    use memguard_testkit::fork::{fork, tell, Ended};

    #[test]
    fn a_forked_child_talks_exits_is_killed_or_hangs() {
        let mut f = fork(|to_parent| {
            tell(to_parent, b"hi");
            7
        });
        assert_eq!(f.read_all(), b"hi");
        assert_eq!(f.wait(Duration::from_secs(20)), Ended::Exited(7));

        let f = fork(|_| {
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        assert_eq!(f.wait(Duration::from_millis(100)), Ended::Hung);

        let mut f = fork(|to_parent| {
            tell(to_parent, b"r");
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        assert_eq!(f.wait_byte(Duration::from_secs(20)), Some(b'r'));
        f.signal(libc::SIGTERM);
        assert_eq!(
            f.wait(Duration::from_secs(20)),
            Ended::Signalled(libc::SIGTERM)
        );

        let f = fork(|_| panic!("boom"));
        assert_eq!(f.wait(Duration::from_secs(20)), Ended::Exited(101));
    }
}
