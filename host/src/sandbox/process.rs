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
use crate::sandbox::net::{Denials, GrantKey};
use crate::sandbox::process_group::{ProcessGroup, Watchman};

/// Captured output beyond this is dropped (it is still logged, up to the log limit).
const MAX_CAPTURE: usize = 16 << 20;

/// A folder the stage sees, and where it is on the host.
#[derive(Debug, Clone)]
pub struct Mount {
    pub guest: String,
    pub host: PathBuf,
    /// Plugins fill this folder (the stage's output, the inputs earlier stages wrote, a cache
    /// volume): a program never runs in it, since a config file planted there
    /// (`.cargo/config.toml`, `.npmrc`, `.git/config`) would make the program run code.
    pub filled_by_plugins: bool,
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

    /// The working folder the plugin asked for, as a host path: inside a mount whose content
    /// the pipeline's author chose (the workspace, a granted dir), never one plugins fill.
    fn working_folder(&self, program: &str, guest: &str) -> Result<PathBuf, String> {
        let relative_ok = |rest: &str| {
            Path::new(rest)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        };
        let found = self.mounts.iter().find_map(|mount| {
            if guest == mount.guest {
                return Some((mount, mount.host.clone()));
            }
            guest
                .strip_prefix(&format!("{}/", mount.guest))
                .filter(|rest| relative_ok(rest))
                .map(|rest| (mount, mount.host.join(rest)))
        });
        let places: Vec<&str> = self
            .mounts
            .iter()
            .filter(|m| !m.filled_by_plugins)
            .map(|m| m.guest.as_str())
            .collect();
        let places = if places.is_empty() {
            "this stage has none: leave the working folder unset and the program runs in a fresh empty folder".to_string()
        } else {
            places.join(", ")
        };
        match found {
            Some((mount, host)) if !mount.filled_by_plugins => Ok(host),
            Some((mount, _)) => {
                let what = format!("running `{program}` in `{guest}`");
                let _ = self.log.message(
                    LogSource::Warn,
                    &format!(
                        "sluice denied {what}: plugins write `{}`, and a config file put there first would run code through the program",
                        mount.guest
                    ),
                );
                self.denials.record(what);
                Err(format!(
                    "programs do not run in `{}`: plugins write there, and a config file planted in it (.cargo/config.toml, .npmrc, .git/config) would make `{program}` run code; pass the program `${{out}}`/`${{in}}` paths instead and run it in a folder the pipeline chose ({places})",
                    mount.guest
                ))
            }
            None => {
                if is_in_workspace(guest) {
                    self.want_workspace(format!("running `{program}` in `{guest}`"));
                }
                Err(format!(
                    "working directory `{guest}` is not inside a folder this stage may run programs in ({places})"
                ))
            }
        }
    }

    /// Records that the stage asked for the workspace it is not granted (`workspace = "read"`
    /// would have given it: the least that does).
    fn want_workspace(&self, what: String) {
        let _ = self.log.message(
            LogSource::Warn,
            &format!("sluice denied {what}: this stage is not granted the workspace"),
        );
        self.denials
            .record_wanted(what, GrantKey::Workspace, "read");
    }

    /// Resolves a granted program to a host path.
    fn program_path(&self, program: &str) -> Result<PathBuf, String> {
        if !self.programs.iter().any(|p| p == program) {
            let what = format!("exec of `{program}`");
            let _ = self.log.message(
                LogSource::Warn,
                &format!("sluice denied {what}: not in this stage's allow.exec"),
            );
            self.denials.record_wanted(what, GrantKey::Exec, program);
            return Err(format!(
                "`{program}` is not in this stage's allow.exec ({})",
                if self.programs.is_empty() {
                    "nothing is granted".to_string()
                } else {
                    self.programs.join(", ")
                }
            ));
        }
        if let Some(inside) = crate::config::names::workspace_program(program) {
            // What the stages that write the workspace put there (a virtual environment's
            // interpreter): the pipeline's author granted that path, not what it holds.
            let workspace = self.mount("/workspace").ok_or_else(|| {
                self.want_workspace(format!("exec of `{program}` in the workspace"));
                format!("`{program}` is in the workspace, which this stage does not see")
            })?;
            let path = workspace.host.join(inside);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "`{program}` is not there: no file `{inside}` in the workspace (a stage before this one makes it?)"
                ))
            };
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
            if is_program_hook(name) {
                self.denials.record(what);
            } else {
                self.denials.record_wanted(what, GrantKey::ExecEnv, name);
            }
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
        // Every check runs, so that each refusal of one call is recorded (`--learn` sees them
        // all); the first one is the answer.
        let program = self.program_path(&command.program);
        let env = self.check_env(&command);
        let asked_cwd = command
            .cwd
            .as_ref()
            .map(|guest| self.working_folder(&command.program, guest));
        let program = program?;
        env?;
        // Without a working folder: the workspace, or a fresh empty folder no plugin has seen
        // (kept until the program ends).
        let mut fresh = None;
        let cwd = match asked_cwd {
            Some(folder) => folder?,
            None => match self.mount("/workspace") {
                Some(workspace) => workspace.host.clone(),
                None => fresh
                    .insert(
                        tempfile::Builder::new()
                            .prefix("sluice-exec-")
                            .tempdir()
                            .map_err(|e| format!("cannot make a working folder: {e}"))?,
                    )
                    .path()
                    .to_path_buf(),
            },
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
            .kill_on_drop(true);
        // The watchman's process group (or one of its own), so that everything it starts can
        // be killed with it.
        let watchman = Watchman::start();
        child.process_group(watchman.as_ref().map_or(0, Watchman::group));
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
        let (group, mut watchman) = match watchman {
            Some(watchman) => {
                let (group, process) = watchman.into_parts();
                (group, Some(process))
            }
            None => (ProcessGroup::unwatched(child.id()), None),
        };
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
                let watchman_gone = async {
                    match watchman.as_mut() {
                        Some(watchman) => drop(watchman.wait().await),
                        None => std::future::pending().await,
                    }
                };
                let status = tokio::select! {
                    status = child.wait() => status,
                    () = watchman_gone => {
                        // Only the program (or what it started) can have killed it: stop it
                        // now, as it would not be stopped if sluice died next.
                        let what = format!("killing the watchman of `{}`", command.program);
                        let _ = self.log.message(
                            LogSource::Warn,
                            &format!(
                                "sluice stopped `{}`: its watchman (which stops it if sluice dies) was killed",
                                command.program
                            ),
                        );
                        self.denials.record(what);
                        group.kill();
                        child.wait().await
                    }
                };
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

/// Whether guest path `guest` is the workspace or inside it.
fn is_in_workspace(guest: &str) -> bool {
    guest == "/workspace" || guest.starts_with("/workspace/")
}
