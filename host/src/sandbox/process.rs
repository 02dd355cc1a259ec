//! The `process` capability: runs a program from the stage's `allow.exec` list on the host, in a
//! mounted folder, with a filtered environment, a deadline, and its output captured and logged.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::names::is_program_hook;
use crate::model::events::LogSource;
use crate::sandbox::bindings::sluice::pipeline::process::{Command, Completed};
use crate::sandbox::capture::StageLog;
use crate::sandbox::net::Denials;

/// Captured output beyond this is dropped (it is still logged, up to the log limit).
const MAX_CAPTURE: usize = 16 << 20;

/// A folder the stage sees, and where it is on the host.
#[derive(Debug, Clone)]
pub struct Mount {
    pub guest: String,
    pub host: PathBuf,
}

/// What one stage may run, and where.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    pub programs: Vec<String>,
    pub mounts: Vec<Mount>,
    /// Host environment passed through (`allow.env`), plus PATH and HOME.
    pub env: Vec<(String, String)>,
    /// Variables the plugin may set on its programs (`allow.exec_env`); nothing else.
    pub settable_env: Vec<String>,
    /// No program outlives the stage.
    pub deadline: Instant,
    pub denials: Denials,
    pub log: StageLog,
}

impl ExecPolicy {
    fn mount(&self, guest: &str) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.guest == guest)
    }

    /// A guest path inside a mount, as a host path.
    fn host_path(&self, guest: &str) -> Result<PathBuf, String> {
        let relative_ok = |rest: &str| {
            Path::new(rest)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        };
        for mount in &self.mounts {
            if guest == mount.guest {
                return Ok(mount.host.clone());
            }
            if let Some(rest) = guest.strip_prefix(&format!("{}/", mount.guest))
                && relative_ok(rest)
            {
                return Ok(mount.host.join(rest));
            }
        }
        let guests: Vec<&str> = self.mounts.iter().map(|m| m.guest.as_str()).collect();
        Err(format!(
            "working directory `{guest}` is not inside a mount of this stage ({})",
            guests.join(", ")
        ))
    }

    /// Resolves a granted program to a host path.
    fn program_path(&self, program: &str) -> Result<PathBuf, String> {
        if !self.programs.iter().any(|p| p == program) {
            let what = format!("exec of `{program}`");
            let _ = self.log.message(
                LogSource::Warn,
                &format!("sluice denied {what}: not in this stage's allow.exec"),
            );
            self.denials.record(what);
            return Err(format!(
                "`{program}` is not in this stage's allow.exec ({})",
                if self.programs.is_empty() {
                    "nothing is granted".to_string()
                } else {
                    self.programs.join(", ")
                }
            ));
        }
        if program.contains('/') {
            // pipeline.toml only grants absolute paths; a relative one would depend on the cwd.
            return if program.starts_with('/') {
                Ok(PathBuf::from(program))
            } else {
                Err(format!("`{program}` is not an absolute path"))
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            // A relative PATH entry (`.`) would resolve against wherever the program runs.
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| format!("`{program}` was not found on the host's PATH"))
    }

    /// `${workspace}`, `${out}`, `${in}` → host folders.
    fn expand(&self, arg: &str) -> String {
        let mut arg = arg.to_string();
        for (token, guest) in [
            ("${workspace}", "/workspace"),
            ("${out}", "/out"),
            ("${in}", "/in"),
        ] {
            if arg.contains(token)
                && let Some(mount) = self.mount(guest)
            {
                arg = arg.replace(token, &mount.host.display().to_string());
            }
        }
        arg
    }

    /// Refuses (and records) any variable the plugin sets that its stage does not grant in
    /// `allow.exec_env`, and every loader or interpreter hook whatever the grants say.
    fn check_env(&self, command: &Command) -> Result<(), String> {
        for (name, _) in &command.env {
            let granted = self.settable_env.iter().any(|g| g == name);
            if granted && !is_program_hook(name) {
                continue;
            }
            let what = format!("setting `{name}` for `{}`", command.program);
            let _ = self.log.message(
                LogSource::Warn,
                &format!("sluice denied {what}: not in this stage's allow.exec_env"),
            );
            self.denials.record(what);
            return Err(if is_program_hook(name) {
                format!("`{name}` makes programs load or run other code; a plugin may never set it")
            } else {
                format!(
                    "`{name}` is not in this stage's allow.exec_env ({})",
                    if self.settable_env.is_empty() {
                        "nothing is granted".to_string()
                    } else {
                        self.settable_env.join(", ")
                    }
                )
            });
        }
        Ok(())
    }

    /// Runs `command`; Err (to the guest) when it is not granted or cannot start.
    pub async fn run(&self, command: Command) -> Result<Completed, String> {
        let program = self.program_path(&command.program)?;
        self.check_env(&command)?;
        let cwd = match &command.cwd {
            Some(guest) => self.host_path(guest)?,
            None => self
                .mount("/workspace")
                .or_else(|| self.mount("/out"))
                .map(|m| m.host.clone())
                .ok_or("this stage has no folder to run a program in")?,
        };
        let args: Vec<String> = command.args.iter().map(|a| self.expand(a)).collect();
        let mut child = tokio::process::Command::new(&program);
        child
            .args(&args)
            .current_dir(&cwd)
            .env_clear()
            .envs(self.env.iter().cloned())
            .envs(command.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that everything it starts can be killed with it.
            .process_group(0)
            .kill_on_drop(true);
        for (token, guest) in [("SLUICE_WORKSPACE", "/workspace"), ("SLUICE_OUT", "/out")] {
            if let Some(mount) = self.mount(guest) {
                child.env(token, &mount.host);
            }
        }
        let shown = format!("{} {}", command.program, command.args.join(" "));
        let _ = self.log.message(LogSource::Info, &format!("exec: {shown}"));
        let started = Instant::now();
        let mut child = child
            .spawn()
            .map_err(|err| format!("cannot start `{}`: {err}", program.display()))?;
        let group = ProcessGroup::of(child.id());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let limit = command
            .timeout_ms
            .map_or(remaining, |ms| Duration::from_millis(ms).min(remaining));
        let collect = async {
            // When the program ends, what it left running in the background goes with it (and
            // so do the pipes it held open).
            let ended = async {
                let status = child.wait().await;
                group.kill();
                status
            };
            let (out, err, status) = tokio::join!(
                pump(stdout, &self.log, LogSource::Stdout, &group),
                pump(stderr, &self.log, LogSource::Stderr, &group),
                ended
            );
            (out, err, status)
        };
        let (stdout, stderr, exit_code, timed_out) =
            match tokio::time::timeout(limit, collect).await {
                Ok((out, err, status)) => {
                    let code = status.ok().and_then(|s| s.code());
                    (out, err, code, false)
                }
                Err(_) => {
                    let _ = child.kill().await;
                    (Vec::new(), Vec::new(), None, true)
                }
            };
        let _ = self.log.message(
            LogSource::Info,
            &format!(
                "exec: {} {} after {:.2}s",
                command.program,
                match (exit_code, timed_out) {
                    (_, true) => "timed out".to_string(),
                    (Some(code), _) => format!("exited with {code}"),
                    (None, _) => "was killed".to_string(),
                },
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(Completed {
            exit_code,
            timed_out,
            stdout,
            stderr,
        })
    }
}

/// Streams a child's output into the stage log (lines bounded, secrets masked) and captures
/// it. Output past the log limit kills the program's group, as it stops the stage.
async fn pump(
    stream: Option<impl AsyncRead + Unpin>,
    log: &StageLog,
    source: LogSource,
    group: &ProcessGroup,
) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut captured = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = MAX_CAPTURE.saturating_sub(captured.len());
        captured.extend_from_slice(&buf[..n.min(room)]);
        if log.write_bytes(source, &buf[..n]).is_err() {
            group.kill();
            break;
        }
    }
    log.end_line(source);
    captured
}

/// PATH and HOME from the host, then the granted variables: what a program needs to find its
/// tools, and nothing a stage was not given.
pub fn base_env(granted: &[String]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            env.push((name.to_string(), value));
        }
    }
    for name in granted {
        if let Ok(value) = std::env::var(name) {
            env.push((name.clone(), value));
        }
    }
    env
}

/// A program's process group, killed when this is dropped: when the program ends, at its
/// timeout, and when the stage is stopped mid-call (the call's future is dropped). Nothing the
/// program started in the background outlives the call, unless it left the group (`setsid`).
///
/// If sluice itself dies (`kill -9`), a watchman kills the group: a tiny `sh` that waits on a
/// pipe only this process holds. The kernel closes the pipe when sluice dies, however it dies;
/// on a normal end sluice first tells it `done`.
struct ProcessGroup {
    group: Option<rustix::process::Pid>,
    watchman: Option<std::fs::File>,
}

/// Kills process group `$1` unless told `done` before its input closes.
const WATCHMAN: &str = r#"read line; [ "$line" = done ] || kill -9 "-$1" 2>/dev/null"#;

impl ProcessGroup {
    fn of(pid: Option<u32>) -> Self {
        let group = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw);
        let watchman = group.and_then(|group| {
            let mut child = tokio::process::Command::new("/bin/sh")
                .args(["-c", WATCHMAN, "sluice-watchman"])
                .arg(group.as_raw_nonzero().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Out of the terminal's group: Ctrl-C reaches sluice, which kills the program.
                .process_group(0)
                .spawn()
                .ok()?;
            // Dropping the child leaves it to tokio, which reaps it once it exits.
            let pipe = child.stdin.take()?.into_owned_fd().ok()?;
            Some(std::fs::File::from(pipe))
        });
        Self { group, watchman }
    }

    /// Kills the group and waits (up to 2 s) until none of its processes still runs: SIGKILL
    /// lands asynchronously, and a program caught mid-call (a file being created) would
    /// otherwise still act after its stage was stopped and its output folder emptied.
    fn kill(&self) {
        if let Some(group) = self.group {
            // ESRCH (the group is already gone) is the usual, fine outcome.
            if rustix::process::kill_process_group(group, rustix::process::Signal::KILL).is_ok() {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                while std::time::Instant::now() < deadline && group_still_runs(group) {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
    }
}

/// Whether a process of `group` is still running (not a zombie waiting to be reaped), from
/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`.
fn group_still_runs(group: rustix::process::Pid) -> bool {
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

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut watchman) = self.watchman.take() {
            use std::io::Write;
            let _ = watchman.write_all(b"done\n");
        }
    }
}
