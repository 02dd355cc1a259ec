//! Shared helpers: locating built plugins, isolated folders, building pipeline files, running the
//! binary, and checking how a run ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sluice::model::report::{RunReport, StageStatus};

pub mod agents;
mod home;
use home::{isolate, make_home, shared_cache_key, warm_shared_cache};
mod nats;
mod outcome;
mod pipeline;
mod servers;

pub use nats::NatsServer;
pub use outcome::Outcome;
pub use pipeline::{
    Pipeline, Stage, Toml, all_succeeded, refused_before_running, stopped_at, table,
};
pub use servers::{CredentialLure, Listener, RegistryServer, free_port};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A component from `plugins/dist/`, which `cargo xtask plugins` fills.
pub fn plugin(name: &str) -> Result<PathBuf> {
    let path = repo_root()
        .join("plugins/dist")
        .join(format!("{name}.wasm"));
    if !path.is_file() {
        bail!(
            "{} is missing: build the plugins with `cargo xtask plugins` (or run `cargo xtask test`)",
            path.display()
        );
    }
    Ok(path)
}

/// An isolated place for one test: its own runs folder, pipeline files, HOME and temp folder.
///
/// Every process the tests start through it (`command`, `program`) gets `HOME` (`home`), the
/// `XDG_*` folders (`xdg`), `CARGO_HOME` and `TMPDIR` (`tmp`) inside the sandbox, and the
/// programs sluice runs for stages get that HOME too (sluice hands them its own): nothing a test
/// does writes into the real home folder. The sandbox's HOME links `.rustup` to the real
/// toolchains (only read: the `cargo` proxies on PATH find them there) and has a `.cargo` of its
/// own (cargo's package-cache locks and cache tracker), with the real `.cargo/config.toml`
/// linked in when there is one.
pub struct Sandbox {
    /// Shared with the `Outcome`s of its runs, so their run folders outlive a temporary sandbox.
    dir: Arc<tempfile::TempDir>,
    /// The compile cache shared by all tests; `None`: one of its own, in `dir`.
    shared_cache: Option<PathBuf>,
}

/// One finished `sluice` process.
pub struct Ran {
    /// The command line, for failure messages.
    pub command: String,
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
}

impl Ran {
    /// The process exited with `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.describe());
        self
    }

    /// stderr contains every fragment.
    #[track_caller]
    pub fn assert_stderr(&self, fragments: &[&str]) -> &Self {
        for fragment in fragments {
            assert!(
                self.stderr.contains(fragment),
                "`{fragment}` not in stderr\n{}",
                self.describe()
            );
        }
        self
    }

    /// stdout contains every fragment.
    #[track_caller]
    pub fn assert_stdout(&self, fragments: &[&str]) -> &Self {
        for fragment in fragments {
            assert!(
                self.stdout.contains(fragment),
                "`{fragment}` not in stdout\n{}",
                self.describe()
            );
        }
        self
    }

    fn describe(&self) -> String {
        format!(
            "{}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// No Rust panic or backtrace reached the user.
    pub fn assert_no_panic(&self) {
        // A host panic exits with 101 and prints `thread '…' panicked` at the start of a line;
        // a guest's panic only appears inside prefixed log lines.
        assert_ne!(self.code, 101, "host panicked:\n{}", self.stderr);
        for text in [&self.stderr, &self.stdout] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("thread '") && l.contains("panicked")),
                "host panicked:\n{text}"
            );
        }
    }
}

impl Sandbox {
    /// A sandbox whose compile cache is shared with every other test (entries are written
    /// atomically and keyed by content), so each component is compiled once per test run.
    pub fn new() -> Result<Self> {
        let shared = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-compile-cache");
        warm_shared_cache(&shared);
        Self::made(Some(shared))
    }

    /// A sandbox with a compile cache of its own, for tests about the cache itself.
    pub fn with_own_cache() -> Result<Self> {
        Self::made(None)
    }

    fn made(shared_cache: Option<PathBuf>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        make_home(dir.path())?;
        Ok(Self {
            dir: Arc::new(dir),
            shared_cache,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `program` (cargo, npm, a server…) with this sandbox's HOME, XDG folders and TMPDIR, not
    /// started yet: whatever it keeps per user, or leaves in the temp folder, stays in the
    /// sandbox.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        isolate(&mut command, self.path());
        command
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.shared_cache
            .clone()
            .unwrap_or_else(|| self.path().join("cache"))
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.path().join("runs")
    }

    /// Writes a pipeline file; `{plugin:NAME}` is replaced by the built plugin's path.
    pub fn pipeline(&self, file: &str, text: &str) -> Result<PathBuf> {
        let mut text = text.to_string();
        while let Some(start) = text.find("{plugin:") {
            let end = start + text[start..].find('}').context("unclosed {plugin:")?;
            let name = &text[start + 8..end];
            let path = plugin(name)?;
            text.replace_range(start..=end, &path.display().to_string());
        }
        let path = self.path().join(file);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Writes `pipeline` to `pipeline.toml`.
    pub fn write(&self, pipeline: &Pipeline) -> Result<PathBuf> {
        self.pipeline("pipeline.toml", &pipeline.to_toml())
    }

    /// Writes `pipeline` and runs it.
    pub fn run_pipeline(&self, pipeline: &Pipeline) -> Result<Outcome> {
        self.run_pipeline_with_env(pipeline, &[])
    }

    /// `run_pipeline` with extra environment variables for the sluice process.
    pub fn run_pipeline_with_env(
        &self,
        pipeline: &Pipeline,
        env: &[(&str, &str)],
    ) -> Result<Outcome> {
        let file = self.write(pipeline)?;
        let (ran, report) = self.run_with_env(&file, env)?;
        Ok(Outcome::kept(ran, report, self.dir.clone()))
    }

    /// Runs `sluice ARGS` with this sandbox's cache.
    pub fn sluice(&self, args: &[&str]) -> Result<Ran> {
        self.sluice_with_env(args, &[])
    }

    /// Runs `sluice ARGS` with extra environment variables.
    pub fn sluice_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Ran> {
        let output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .context("cannot start sluice")?;
        let ran = Ran {
            command: format!("sluice {}", args.join(" ")),
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        };
        ran.assert_no_panic();
        Ok(ran)
    }

    /// `sluice ARGS`, killed if it has not finished within `seconds` (then it fails the test):
    /// for inputs that used to make sluice read or wait forever.
    pub fn sluice_within(&self, args: &[&str], seconds: u64) -> Result<Ran> {
        use std::io::Read;
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot start sluice")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "sluice {} did not finish within {seconds} s",
                    args.join(" ")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let ran = Ran {
            command: format!("sluice {}", args.join(" ")),
            code: status.code().unwrap_or(-1),
            stderr,
            stdout,
        };
        ran.assert_no_panic();
        Ok(ran)
    }

    /// `sluice ARGS` with this sandbox's cache, store and HOME, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.program(env!("CARGO_BIN_EXE_sluice"));
        command
            .args(args)
            .env("SLUICE_CACHE_DIR", self.cache_dir())
            .env("SLUICE_PLUGIN_STORE", self.path().join("plugin-store"))
            // Runs and the stage cache stay in the sandbox even when a test does not say where.
            .env("SLUICE_RUNS_DIR", self.runs_dir())
            .env("SLUICE_STAGE_CACHE", self.path().join("stage-cache"))
            .env("SLUICE_VOLUMES", self.path().join("volumes"))
            // What sluice keeps per user (the cluster key, blob caches) stays in the sandbox's
            // XDG folders; the compiled-code cache key is the one the shared cache was warmed
            // with, so that cache verifies in every sluice the tests start.
            .env("SLUICE_CACHE_KEY", shared_cache_key())
            .env_remove("RUST_BACKTRACE");
        // A developer's own tracing setup does not reach the tests (the trace tests set theirs).
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "TRACEPARENT",
        ] {
            command.env_remove(name);
        }
        command
    }

    /// `sluice run PIPELINE` in plain format, returning the process and its `--report`.
    pub fn run(&self, pipeline: &Path) -> Result<(Ran, RunReport)> {
        self.run_with_env(pipeline, &[])
    }

    /// `run` with extra environment variables for the sluice process.
    /// The arguments of `sluice run PIPELINE` in plain format, into this sandbox's runs folder,
    /// with its record written to `report`.
    pub fn run_args(&self, pipeline: &Path, report: &Path) -> Vec<String> {
        vec![
            "run".into(),
            pipeline.display().to_string(),
            "--format".into(),
            "plain".into(),
            "--runs-dir".into(),
            self.runs_dir().display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ]
    }

    pub fn run_with_env(&self, pipeline: &Path, env: &[(&str, &str)]) -> Result<(Ran, RunReport)> {
        let report_path = self.path().join("report.json");
        let _ = std::fs::remove_file(&report_path);
        let args = self.run_args(pipeline, &report_path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = self.sluice_with_env(&args, env)?;
        let text = std::fs::read_to_string(&report_path)
            .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
        let report: RunReport = serde_json::from_str(&text)?;
        Ok((ran, report))
    }
}

/// Gives `command` the environment changes of `template` (what [`Sandbox::command`] sets and
/// removes), to run sluice under another program (`unshare`).
pub fn take_env_of(command: &mut Command, template: &Command) {
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
}

/// Asks `check` every 20 ms until it answers `Some`, fails, or `within` has passed; then fails
/// saying what did not happen: the way to wait for something to happen (a server listening, a
/// file appearing) instead of sleeping and hoping it did.
pub fn eventually<T>(
    within: std::time::Duration,
    what: impl std::fmt::Display,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if std::time::Instant::now() > deadline {
            bail!("no {what} within {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits out sluice's racy-clean window (`SETTLE`, a few times over) so that files just written
/// count as settled: a file's times must lie that far before sluice reads it for its identity
/// to stand for its content. Part of a scenario (the next run may trust what the last one
/// wrote), not a wait for something to happen.
pub fn settle() {
    std::thread::sleep(sluice::model::identity::SETTLE * 3);
}

/// The digest of a file, computed with the `sha2` crate rather than the host's own code, so a bug
/// in how sluice hashes cannot hide itself.
pub fn sha256_of(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(bytes)))
}

/// The first stage's outputs are on disk with the digests recorded for them.
pub fn assert_first_stage_intact(report: &RunReport) -> Result<()> {
    let first = report.stages.first().context("no stages")?;
    assert_eq!(first.status, StageStatus::Succeeded);
    assert!(!first.outputs.is_empty());
    for artifact in &first.outputs {
        let file = std::path::Path::new(&report.run_dir).join(&artifact.path);
        assert_eq!(
            sha256_of(&file)?,
            artifact.sha256,
            "{} damaged",
            artifact.reference()
        );
    }
    Ok(())
}

/// Each stage's name and status, in the report's order.
pub fn statuses(report: &RunReport) -> Vec<(&str, StageStatus)> {
    report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect()
}

/// The stages the stage cache served, in the report's order.
pub fn cache_hits(report: &RunReport) -> Vec<&str> {
    report
        .stages
        .iter()
        .filter(|s| s.cache.as_ref().is_some_and(|c| c.hit))
        .map(|s| s.name.as_str())
        .collect()
}

/// The stage's status and message.
pub fn stage_outcome(report: &RunReport, stage: &str) -> (StageStatus, String) {
    report
        .stage(stage)
        .map(|s| (s.status, s.message.clone().unwrap_or_default()))
        .unwrap_or((StageStatus::Pending, String::new()))
}

/// Every file under `dir`, read as text (lossy).
pub fn all_text_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Where `cargo xtask plugins` put the toolchains (the test command passes it on).
pub fn toolchains() -> PathBuf {
    std::env::var_os("SLUICE_TOOLCHAINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/toolchains"))
}

/// Processes whose command line holds `marker`, after giving killed ones up to 2 s to go.
pub fn processes_with(marker: &str) -> Vec<String> {
    // A scan that cannot see processes would find none and prove nothing: it must see this one.
    let own = std::process::id().to_string();
    let scan = || -> Vec<String> {
        let entries = std::fs::read_dir("/proc")
            .unwrap_or_else(|err| panic!("cannot list /proc to look for processes: {err}"));
        let mut seen_self = false;
        let found = entries
            .flatten()
            .filter_map(|entry| {
                let bytes = std::fs::read(entry.path().join("cmdline")).ok()?;
                seen_self |= entry.file_name() == own.as_str() && !bytes.is_empty();
                Some(bytes)
            })
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .filter(|line| line.contains(marker))
            .collect();
        assert!(
            seen_self,
            "/proc lists no command line for this test process: processes cannot be seen here"
        );
        found
    };
    for _ in 0..20 {
        if scan().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    scan()
}

/// `sluice plugin push FILE REF --force` from `publisher`; the manifest digest it printed.
pub fn push(publisher: &Sandbox, file: &Path, reference: &str) -> Result<String> {
    let file = file.display().to_string();
    let ran = publisher.sluice(&["plugin", "push", &file, reference, "--force"])?;
    anyhow::ensure!(ran.code == 0, "push failed: {}{}", ran.stdout, ran.stderr);
    ran.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest  "))
        .map(str::to_string)
        .context("push printed no manifest digest")
}

/// Reads the JUnit file at `path` after checking it with `xmllint` against the JUnit schema
/// Jenkins and GitLab read (vendored in `fixtures/junit-10.xsd`); its text.
pub fn valid_junit(path: &Path) -> Result<String> {
    let xml =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let checked = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(repo_root().join("tests/e2e/fixtures/junit-10.xsd"))
        .arg(path)
        .output()
        .context("xmllint is needed (Debian libxml2-utils; `cargo xtask setup` installs it)")?;
    assert!(
        checked.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&checked.stderr)
    );
    Ok(xml)
}
