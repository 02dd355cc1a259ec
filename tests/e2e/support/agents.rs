//! Distributed-run tests' parts: `sluice agent` processes started against a test's NATS server with
//! their own work folders and logs, killed (SIGKILL) on demand or when dropped; and a listener
//! that keeps every message on every NATS subject, to look for what must never travel; `sluice run
//! --nats` coordinators started and awaited; a stage that sleeps, findable by its process.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use sluice::model::report::RunReport;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Sandbox, Stage};

pub struct Agent {
    pub name: String,
    pub work_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// `sluice agent --nats URL --name NAME EXTRA...`, with `env` (the agent's own secrets).
    pub fn start(
        sandbox: &Sandbox,
        url: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_apart(sandbox, url, name, extra, env, &[])
    }

    /// Like [`Agent::start`], in a mount namespace of its own where each of `hidden` (the
    /// coordinator's checkout, its runs folder) is an empty tmpfs: an agent on another machine.
    pub fn start_apart(
        sandbox: &Sandbox,
        url: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        hidden: &[&Path],
    ) -> Result<Self> {
        let work_dir = sandbox.path().join("agents").join(name);
        std::fs::create_dir_all(&work_dir)?;
        let log = sandbox.path().join(format!("agent-{name}.log"));
        let out = std::fs::File::create(&log)?;
        let work = work_dir.display().to_string();
        let mut args = vec!["agent", "--nats", url, "--name", name, "--work-dir", &work];
        args.extend_from_slice(extra);
        let mut command = sandbox.command(&args);
        if !hidden.is_empty() {
            command = apart(command, hidden);
        }
        let child = command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start sluice agent")?;
        let agent = Self {
            name: name.to_string(),
            work_dir,
            log,
            child: Some(child),
        };
        agent.wait_for("serving", Duration::from_secs(30))?;
        Ok(agent)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The stages this agent recorded a result for: `(run id, stage)` per line it printed.
    pub fn ran(&self) -> Vec<(String, String)> {
        self.output()
            .lines()
            .filter_map(|line| {
                let (run, rest) = line.split_once(' ')?;
                let (stage, _) = rest.split_once(": ")?;
                run.starts_with("20")
                    .then(|| (run.to_string(), stage.to_string()))
            })
            .collect()
    }

    /// Waits until the agent printed `text`.
    pub fn wait_for(&self, text: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.output().contains(text) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "agent {} did not print {text:?}:\n{}",
            self.name,
            self.output()
        )
    }

    /// Waits until the agent is running a job (its job folder exists).
    pub fn wait_until_busy(&self, within: Duration) -> Result<()> {
        let jobs = self.work_dir.join("jobs");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if std::fs::read_dir(&jobs).is_ok_and(|mut d| d.next().is_some()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("agent {} took no job:\n{}", self.name, self.output())
    }

    /// SIGKILL: no goodbye, no ack.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `command` run by `unshare --mount` with an empty tmpfs over each of `hidden` first (as root,
/// which CI is): the process sees none of those folders' content.
fn apart(command: std::process::Command, hidden: &[&Path]) -> std::process::Command {
    let mut outer = std::process::Command::new("unshare");
    outer.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        r#"while [ "$1" != "--" ]; do mount -t tmpfs -o size=1m sluice-hidden "$1" || exit 97; shift; done; shift; exec "$@""#,
        "hide",
    ]);
    outer.args(hidden).arg("--");
    outer.arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => outer.env(name, value),
            None => outer.env_remove(name),
        };
    }
    outer
}

/// Every message on every subject of a NATS server, while it lives.
pub struct Wiretap {
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl Wiretap {
    pub fn start(url: &str) -> Result<Self> {
        Self::start_with(url, None)
    }

    /// On a server that asks for a user and password.
    pub fn start_with_login(url: &str, user: &str, password: &str) -> Result<Self> {
        Self::start_with(url, Some((user.to_string(), password.to_string())))
    }

    fn start_with(url: &str, login: Option<(String, String)>) -> Result<Self> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (url, kept) = (url.to_string(), seen.clone());
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use futures_util::StreamExt;
                let options = match login {
                    Some((user, password)) => {
                        async_nats::ConnectOptions::with_user_and_password(user, password)
                    }
                    None => async_nats::ConnectOptions::new(),
                };
                let Ok(client) = options.connect(url).await else {
                    return;
                };
                let Ok(mut all) = client.subscribe(">").await else {
                    return;
                };
                let _ = client.flush().await;
                let _ = ready_tx.send(());
                while let Some(message) = all.next().await {
                    let mut bytes = message.subject.as_bytes().to_vec();
                    bytes.push(b' ');
                    bytes.extend_from_slice(&message.payload);
                    if let Ok(mut seen) = kept.lock() {
                        seen.push(bytes);
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the wiretap could not subscribe")?;
        Ok(Self {
            seen,
            _thread: thread,
        })
    }

    /// The messages seen so far (subject, a space, payload).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

/// The JSON inside a signed sluice message seen on the wire as `subject payload` (empty for any
/// other message): signed, not encrypted, so anything in it travelled in the clear.
pub fn sealed_payload(message: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let Some(start) = message.iter().position(|&b| b == b' ') else {
        return Vec::new();
    };
    serde_json::from_slice::<serde_json::Value>(&message[start + 1..])
        .ok()
        .and_then(|envelope| {
            let payload = envelope.get("payload")?.as_str()?;
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .ok()
        })
        .unwrap_or_default()
}

/// Where a file under `dir` contains `needle`, if anywhere.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

/// A `sluice run --nats` process; what it prints goes to a file (a pipe nobody reads would
/// stop it once full).
pub struct Coordinator {
    child: Child,
    output: PathBuf,
}

impl Coordinator {
    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn printed(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

/// `sluice run FILE --nats URL`, started, with its report at `report` (and what it prints
/// beside it).
pub fn coordinator(
    sandbox: &Sandbox,
    file: &Path,
    url: &str,
    report: &Path,
    extra: &[&str],
) -> Result<Coordinator> {
    let output = report.with_extension("out");
    let (file, report) = (file.display().to_string(), report.display().to_string());
    let mut args = vec![
        "run", &file, "--nats", url, "--format", "plain", "--report", &report,
    ];
    args.extend_from_slice(extra);
    let out = std::fs::File::create(&output)?;
    let child = sandbox
        .command(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("cannot start sluice run --nats")?;
    Ok(Coordinator { child, output })
}

/// Waits for a coordinator (at most `seconds`), returning its exit code and what it printed.
pub fn finish(mut coordinator: Coordinator, seconds: u64) -> Result<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = coordinator.child.try_wait()? {
            return Ok((status.code().unwrap_or(-1), coordinator.printed()));
        }
        if Instant::now() > deadline {
            coordinator.kill();
            bail!(
                "the coordinator did not finish within {seconds} s:\n{}",
                coordinator.printed()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read_report(path: &Path) -> Result<RunReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("no report {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

pub fn report_dir(report: &RunReport) -> Result<PathBuf> {
    anyhow::ensure!(!report.run_dir.is_empty(), "the report names no run folder");
    Ok(PathBuf::from(&report.run_dir))
}

/// Waits until a process whose command line holds `marker` runs.
pub fn wait_for_process(marker: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let running = std::fs::read_dir("/proc")?.flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|line| line.windows(marker.len()).any(|w| w == marker.as_bytes()))
        });
        if running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no process with {marker} started")
}

/// A stage that takes a while on whichever agent runs it, marked so its process can be found.
pub fn slow(name: &str, seconds: &str) -> Stage {
    Stage::new(name, "exec")
        .allow("exec", ["sleep"])
        .config("program", "sleep")
        .config("args", [seconds])
}
