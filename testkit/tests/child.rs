//! The child runner and the forking helper, on real processes.
#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memguard_testkit::child::{
    child_scenario, collect, describe, killed_by, mark, passed, passes_in_children, role, role_in,
    run, run_passing, stdout, Live, NotSeen, Role,
};

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
    assert_quick(started);
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

/// A scenario passes only by exiting 0 after its marker.
#[test]
fn run_passing_needs_a_clean_exit_after_the_marker() {
    const TEST: &str = "run_passing_needs_a_clean_exit_after_the_marker";
    match role(TEST) {
        Role::Bystander => {}
        Role::Child(scenario) => {
            if scenario != "no-marker" {
                mark("FINE");
            }
            if scenario == "fails-after-it" {
                std::process::exit(3);
            }
        }
        Role::Parent => {
            run_passing(TEST, "passes", "FINE");
            // (No panics here: another test forks meanwhile, and a panic
            // in progress would leave its locks held in that child.)
            for scenario in ["no-marker", "fails-after-it"] {
                let out = run(TEST, scenario);
                assert!(!passed(&out, "FINE"), "{scenario}: {}", describe(&out));
            }
        }
    }
}

/// Each scenario is played in a child of its own, and the body runs
/// nowhere else.
#[test]
fn passes_in_children_plays_each_scenario_in_a_child() {
    const TEST: &str = "passes_in_children_plays_each_scenario_in_a_child";
    let played = |parent: u32, scenario: &str| {
        std::env::temp_dir().join(format!("memguard-testkit-played-{parent}-{scenario}"))
    };
    passes_in_children(TEST, &["one", "two"], "PLAYED", |scenario| {
        assert!(child_scenario().is_some(), "the body ran in the parent");
        std::fs::write(played(std::os::unix::process::parent_id(), scenario), b"").unwrap();
        mark("PLAYED");
    });
    if child_scenario().is_none() {
        for scenario in ["one", "two"] {
            let file = played(std::process::id(), scenario);
            assert!(file.exists(), "{scenario} was not played");
            std::fs::remove_file(file).unwrap();
        }
    }
}

/// Asserts that what began at `started` (killing a child at a short
/// timeout) did not wait for the child's own end.
fn assert_quick(started: Instant) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Whether process `pid` exists (as anything but a reaped child).
fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The first line of `text` that starts with `prefix`.
fn line_from(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

#[test]
fn a_live_child_is_read_while_it_runs_and_given_its_input() {
    let mut live = Live::start(
        &mut sh("echo READY 1; read x; echo got $x; echo err >&2; exit 5"),
        Duration::from_secs(20),
    )
    .unwrap();
    let ready = live.wait_for(|t| line_from(t, "READY"));
    assert_eq!(ready.unwrap(), "READY 1");
    // It still runs: it waits for its line.
    assert!(exists(live.id()));
    live.send(b"hello\n").unwrap();
    let ended = live.finish();
    assert_eq!(ended.status.unwrap().and_then(|s| s.code()), Some(5));
    assert_eq!(ended.stdout, b"READY 1\ngot hello\n");
    assert_eq!(ended.stderr, b"err\n");
}

#[test]
fn wait_for_sees_only_complete_lines_while_the_child_runs() {
    let mut live = Live::start(
        &mut sh("printf REA; sleep 0.3; echo DY hardened=true; exec sleep 30"),
        Duration::from_secs(20),
    )
    .unwrap();
    let ready = live.wait_for(|t| line_from(t, "REA"));
    assert_eq!(ready.unwrap(), "READY hardened=true");
}

#[test]
fn wait_for_says_when_the_child_ended_first_and_how() {
    let mut live = Live::start(
        &mut sh("printf 'no newline'; exit 4"),
        Duration::from_secs(20),
    )
    .unwrap();
    match live.wait_for(|t| t.contains("READY").then_some(())) {
        Err(NotSeen::Ended(status)) => assert_eq!(status.code(), Some(4)),
        other => panic!("{other:?}"),
    }
    // Once it has ended, the last line counts without its newline.
    let mut live = Live::start(&mut sh("printf READY; exit 0"), Duration::from_secs(20)).unwrap();
    assert!(live.wait_for(|t| t.contains("READY").then_some(())).is_ok());
}

#[test]
fn wait_for_gives_up_at_the_deadline_and_drop_kills_the_child() {
    let started = Instant::now();
    let mut live = Live::start(&mut sh("exec sleep 30"), Duration::from_millis(200)).unwrap();
    let pid = live.id();
    assert!(matches!(
        live.wait_for(|t| t.contains("READY").then_some(())),
        Err(NotSeen::TimedOut)
    ));
    assert!(exists(pid), "still running at its deadline");
    drop(live);
    assert!(!exists(pid), "dropped, but still there");
    assert_quick(started);
}

#[test]
fn finish_by_kills_a_child_still_running_at_the_deadline() {
    let started = Instant::now();
    // It ignores the end of its input.
    let mut live = Live::start(
        &mut sh("echo before; exec sleep 30"),
        Duration::from_secs(20),
    )
    .unwrap();
    let ended = live.finish_by(Instant::now() + Duration::from_millis(200));
    assert!(matches!(ended.status, Ok(None)), "{:?}", ended.status);
    assert_eq!(ended.stdout, b"before\n");
    assert_quick(started);
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
