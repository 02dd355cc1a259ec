//! Nothing a granted program starts outlives its call: the program runs in the process group of
//! a watchman started before it, and the group is killed when the call ends, when sluice dies,
//! and when the program kills its watchman.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// Kills its own process group (the program's) unless told `done` before its input closes.
const WATCHMAN: &str = r#"read line; [ "$line" = done ] || kill -9 -$$ 2>/dev/null"#;

/// The watchman: a tiny `sh`, leader of the group the program then joins, waiting on a pipe
/// only sluice holds. The kernel closes the pipe when sluice dies, however it dies (`kill -9`
/// included); the watchman then kills the group. It is in place before the program exists:
/// there is no moment when the program runs unwatched.
pub struct Watchman {
    group: Pid,
    pipe: std::fs::File,
    process: tokio::process::Child,
}

impl Watchman {
    /// Starts a watchman in a group of its own; `None` when `/bin/sh` cannot start (the program
    /// then gets a group of its own, killed by sluice but not after sluice dies).
    pub fn start() -> Option<Self> {
        let mut process = tokio::process::Command::new("/bin/sh")
            .args(["-c", WATCHMAN, "sluice-watchman"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's group: Ctrl-C reaches sluice, which kills the program.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .ok()?;
        let group = process
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)?;
        let pipe = process.stdin.take()?.into_owned_fd().ok()?;
        Some(Self {
            group,
            pipe: std::fs::File::from(pipe),
            process,
        })
    }

    /// The group the program joins (`Command::process_group`).
    pub fn group(&self) -> i32 {
        self.group.as_raw_nonzero().get()
    }

    /// Splits into the group (killed on drop, the watchman told `done` first) and the watchman's
    /// process, whose end before the program's means the program (or something it started)
    /// killed it.
    pub fn into_parts(self) -> (ProcessGroup, tokio::process::Child) {
        (
            ProcessGroup {
                group: Some(self.group),
                watchman: Some(self.pipe),
            },
            self.process,
        )
    }
}

/// A program's process group, killed when this is dropped: when the program ends, at its
/// timeout, and when the stage is stopped mid-call (the call's future is dropped). Nothing the
/// program started in the background outlives the call, unless it left the group (`setsid`).
pub struct ProcessGroup {
    group: Option<Pid>,
    watchman: Option<std::fs::File>,
}

impl ProcessGroup {
    /// The group led by the program itself (`pid`), with no watchman.
    pub fn unwatched(pid: Option<u32>) -> Self {
        let group = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw);
        Self {
            group,
            watchman: None,
        }
    }

    /// Kills the group and waits (up to 2 s) until none of its processes still runs: SIGKILL
    /// lands asynchronously, and a program caught mid-call (a file being created) would
    /// otherwise still act after its stage was stopped and its output folder emptied.
    pub fn kill(&self) {
        let Some(group) = self.group else { return };
        // ESRCH (the group is already gone) is the usual, fine outcome.
        if rustix::process::kill_process_group(group, Signal::KILL).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && group_still_runs(group) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // The watchman first: it is in the group, and would otherwise see its pipe close.
        if let Some(mut watchman) = self.watchman.take() {
            use std::io::Write;
            let _ = watchman.write_all(b"done\n");
        }
        self.kill();
    }
}

/// Whether a process of `group` is still running (not a zombie waiting to be reaped), from
/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`.
fn group_still_runs(group: Pid) -> bool {
    let wanted = group.as_raw_nonzero().get().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // The command name may hold spaces and parentheses: fields follow the last `)`.
        let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).unwrap_or("");
        pgrp == wanted && !matches!(state, "Z" | "X")
    })
}
