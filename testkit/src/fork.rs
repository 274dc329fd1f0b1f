//! Forking from inside a test's child process: run a closure in a forked
//! child, talk to it through a pipe, wait for it with a deadline.
//!
//! The forked child is killed when its parent dies (`PR_SET_PDEATHSIG`), so
//! a failed test leaves nothing behind.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A forked child: its pid and the read end of a pipe it can write to.
pub struct Forked {
    pub pid: libc::pid_t,
    pub from_child: File,
}

/// How a forked child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `_exit(code)` or a return from `main`.
    Exited(i32),
    /// Killed by this signal.
    Signalled(i32),
    /// Still running at the deadline: killed with SIGKILL.
    Hung,
}

/// Forks; the child runs `body` with the write end of a pipe and ends with
/// `_exit` of what `body` returns (a panic in it ends the child with 101).
/// Nothing the parent registered with `atexit` runs in the child.
pub fn fork(body: impl FnOnce(&mut File) -> i32) -> Forked {
    let mut fds = [0; 2];
    // Close-on-exec: a process another test thread spawns meanwhile must
    // not inherit the write end (the parent would wait for its EOF until
    // that process ends). The forked child keeps it: it does not exec.
    // SAFETY: pipe2 writes two new descriptors into the array.
    let piped = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(piped, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: (test) the C library's fork, so that pthread_atfork hooks run,
    // as in an application that forks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // A child left behind by a failed test must not outlive it (it
        // would hold the test's output pipes open).
        // SAFETY: prctl with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        drop(read_end);
        let mut to_parent = File::from(write_end);
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut to_parent)))
            .unwrap_or(101);
        drop(to_parent);
        // SAFETY: ends the child at once, without the parent's atexit
        // handlers or the test harness.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    Forked {
        pid,
        from_child: File::from(read_end),
    }
}

impl Forked {
    /// Everything the child writes until it closes the pipe (or ends).
    pub fn read_all(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let _ = self.from_child.read_to_end(&mut bytes);
        bytes
    }

    /// Waits for one byte from the child, for at most `timeout`.
    pub fn wait_byte(&mut self, timeout: Duration) -> Option<u8> {
        let mut poll = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.from_child),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, ms) } != 1 {
            return None;
        }
        let mut byte = [0u8; 1];
        match self.from_child.read(&mut byte) {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    /// Waits for the child to end, for at most `timeout`; kills it then.
    pub fn wait(&self, timeout: Duration) -> Ended {
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child, without blocking.
            let got = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
            if got == self.pid {
                return if libc::WIFEXITED(status) {
                    Ended::Exited(libc::WEXITSTATUS(status))
                } else {
                    Ended::Signalled(libc::WTERMSIG(status))
                };
            }
            if Instant::now() >= deadline {
                // SAFETY: kills and reaps our own child.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, &mut status, 0);
                }
                return Ended::Hung;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.pid, signal) }, 0, "kill");
    }
}

/// Writes `bytes` to the parent; a failure ends nothing (the parent judges
/// by what arrives).
pub fn tell(mut to_parent: impl Write, bytes: &[u8]) {
    let _ = to_parent.write_all(bytes);
}

/// The names of this process's threads, from `/proc/self/task/*/comm`
/// (empty where there is no such file).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
