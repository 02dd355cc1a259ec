//! Shared helpers: locating built plugins, isolated folders, building pipeline files, running the
//! binary, and checking how a run ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sluice::model::report::{RunReport, StageRecord, StageStatus};

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

/// An isolated place for one test: its own runs folder and pipeline files.
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
        Ok(Self {
            dir: Arc::new(tempfile::tempdir()?),
            shared_cache: Some(
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-compile-cache"),
            ),
        })
    }

    /// A sandbox with a compile cache of its own, for tests about the cache itself.
    pub fn with_own_cache() -> Result<Self> {
        Ok(Self {
            dir: Arc::new(tempfile::tempdir()?),
            shared_cache: None,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
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
        Ok(Outcome {
            ran,
            report,
            _sandbox: Some(self.dir.clone()),
        })
    }

    /// Runs `sluice ARGS` with this sandbox's cache.
    pub fn sluice(&self, args: &[&str]) -> Result<Ran> {
        self.sluice_with_env(args, &[])
    }

    /// Runs `sluice ARGS` with extra environment variables.
    pub fn sluice_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Ran> {
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .envs(env.iter().copied())
            .env("SLUICE_CACHE_DIR", self.cache_dir())
            .env("SLUICE_PLUGIN_STORE", self.path().join("plugin-store"))
            .env_remove("RUST_BACKTRACE")
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

    /// `sluice run PIPELINE` in plain format, returning the process and its `--report`.
    pub fn run(&self, pipeline: &Path) -> Result<(Ran, RunReport)> {
        self.run_with_env(pipeline, &[])
    }

    /// `run` with extra environment variables for the sluice process.
    pub fn run_with_env(&self, pipeline: &Path, env: &[(&str, &str)]) -> Result<(Ran, RunReport)> {
        let report_path = self.path().join("report.json");
        let _ = std::fs::remove_file(&report_path);
        let ran = self.sluice_with_env(
            &[
                "run",
                &pipeline.display().to_string(),
                "--format",
                "plain",
                "--runs-dir",
                &self.runs_dir().display().to_string(),
                "--report",
                &report_path.display().to_string(),
            ],
            env,
        )?;
        let text = std::fs::read_to_string(&report_path)
            .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
        let report: RunReport = serde_json::from_str(&text)?;
        Ok((ran, report))
    }
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

// ---------------------------------------------------------------------------------------------
// Pipelines, built instead of spelled out: `Pipeline` and `Stage` mirror pipeline.toml's keys and
// render the file a user would write:
//
//     Pipeline::three_stage(
//         Stage::new("attack", "escape")          // plugins/dist/escape.wasm
//             .limit("timeout", "1s")             // limits = { timeout = "1s" }
//             .allow("workspace", "read")         // [stage.allow]
//             .config("path", "/workspace/fifo"), // [stage.config]
//     )
//     .set("workspace", "ws")                     // [pipeline]
//     .secret("TOKEN", table([("env", "VAR")]))   // [secrets]

/// A TOML value as a pipeline file spells it. Tables keep the order they were given in.
#[derive(Clone, Debug)]
pub enum Toml {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Toml>),
    Table(Vec<(String, Toml)>),
}

impl From<&str> for Toml {
    fn from(value: &str) -> Self {
        Self::Str(value.to_string())
    }
}

impl From<String> for Toml {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

impl From<&Path> for Toml {
    fn from(value: &Path) -> Self {
        Self::Str(value.display().to_string())
    }
}

impl From<&PathBuf> for Toml {
    fn from(value: &PathBuf) -> Self {
        value.as_path().into()
    }
}

impl From<i32> for Toml {
    fn from(value: i32) -> Self {
        Self::Int(value.into())
    }
}

impl From<bool> for Toml {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl<T: Into<Toml>> From<Vec<T>> for Toml {
    fn from(items: Vec<T>) -> Self {
        Self::Array(items.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Toml>, const N: usize> From<[T; N]> for Toml {
    fn from(items: [T; N]) -> Self {
        Self::Array(items.into_iter().map(Into::into).collect())
    }
}

/// An inline table: `table([("host", "data"), ("guest", "/data")])`.
pub fn table<V: Into<Toml>, const N: usize>(pairs: [(&str, V); N]) -> Toml {
    Toml::Table(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_string(), value.into()))
            .collect(),
    )
}

impl Toml {
    /// The value written inline, as after `key = `.
    fn inline(&self) -> String {
        match self {
            Self::Str(text) => quoted(text),
            Self::Int(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
            Self::Array(items) => {
                let items: Vec<String> = items.iter().map(Self::inline).collect();
                format!("[{}]", items.join(", "))
            }
            Self::Table(pairs) if pairs.is_empty() => "{}".to_string(),
            Self::Table(pairs) => format!("{{ {} }}", key_values(pairs, ", ")),
        }
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `key = value` pairs joined by `separator`; keys that are not bare are quoted.
fn key_values(pairs: &[(String, Toml)], separator: &str) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            let bare = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let key = if bare { key.clone() } else { quoted(key) };
            format!("{key} = {}", value.inline())
        })
        .collect::<Vec<_>>()
        .join(separator)
}

/// One `[[stage]]`. `config`, `allow` and `limit` take pipeline.toml's own keys.
#[derive(Clone, Debug)]
pub struct Stage {
    name: String,
    plugin: String,
    inputs: Vec<String>,
    limits: Vec<(String, Toml)>,
    allow: Vec<(String, Toml)>,
    config: Vec<(String, Toml)>,
}

impl Stage {
    /// A stage running the built plugin `plugins/dist/PLUGIN.wasm`.
    pub fn new(name: &str, plugin: &str) -> Self {
        Self::with_plugin(name, format!("{{plugin:{plugin}}}"))
    }

    /// A stage whose `plugin = ` is written as given: a path or an `oci://` reference.
    pub fn with_plugin(name: &str, plugin: impl std::fmt::Display) -> Self {
        Self {
            name: name.to_string(),
            plugin: plugin.to_string(),
            inputs: Vec::new(),
            limits: Vec::new(),
            allow: Vec::new(),
            config: Vec::new(),
        }
    }

    /// `inputs = [...]`.
    pub fn inputs<const N: usize>(mut self, inputs: [&str; N]) -> Self {
        self.inputs.extend(inputs.iter().map(|i| i.to_string()));
        self
    }

    /// One key of `[stage.config]`.
    pub fn config(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.config.push((key.to_string(), value.into()));
        self
    }

    /// One key of `[stage.allow]`: `net`, `exec`, `env`, `dirs`, `workspace`, `secrets`.
    pub fn allow(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.allow.push((key.to_string(), value.into()));
        self
    }

    /// One key of `limits = { ... }`: `timeout`, `memory`, `log`, `outputs`, `output_size`.
    pub fn limit(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.limits.push((key.to_string(), value.into()));
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[stage]]\n");
        out.push_str(&key_values(
            &[
                ("name".into(), self.name.as_str().into()),
                ("plugin".into(), self.plugin.as_str().into()),
            ],
            "\n",
        ));
        out.push('\n');
        if !self.inputs.is_empty() {
            let inputs = Toml::Array(self.inputs.iter().map(|i| i.as_str().into()).collect());
            out.push_str(&format!("inputs = {}\n", inputs.inline()));
        }
        if !self.limits.is_empty() {
            out.push_str(&format!(
                "limits = {}\n",
                Toml::Table(self.limits.clone()).inline()
            ));
        }
        for (header, pairs) in [("allow", &self.allow), ("config", &self.config)] {
            if !pairs.is_empty() {
                out.push_str(&format!("[stage.{header}]\n{}\n", key_values(pairs, "\n")));
            }
        }
    }
}

/// A pipeline.toml: `[pipeline]` settings, `[secrets]` and stages, in order.
#[derive(Clone, Debug)]
pub struct Pipeline {
    settings: Vec<(String, Toml)>,
    secrets: Vec<(String, Toml)>,
    stages: Vec<Stage>,
}

impl Pipeline {
    pub fn new(name: &str) -> Self {
        Self {
            settings: vec![("name".into(), name.into())],
            secrets: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// `code` (emit writes `a.txt`), then `middle`, then `release` (checksum): the shape for
    /// checking that a stage's outcome stops the chain and leaves earlier artifacts alone.
    pub fn three_stage(middle: Stage) -> Self {
        Self::around([middle])
    }

    /// `three_stage` with several stages in the middle.
    pub fn around(middle: impl IntoIterator<Item = Stage>) -> Self {
        let code = Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")]));
        let mut pipeline = Self::new("t").stage(code);
        pipeline.stages.extend(middle);
        pipeline.stage(Stage::new("release", "checksum"))
    }

    /// One key of `[pipeline]`: `workspace`, `trusted_keys`, `provenance_key`.
    pub fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.settings.push((key.to_string(), value.into()));
        self
    }

    /// One entry of `[secrets]`, e.g. `table([("env", "VAR")])`.
    pub fn secret(mut self, name: &str, source: Toml) -> Self {
        self.secrets.push((name.to_string(), source));
        self
    }

    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(stage);
        self
    }

    /// The file's text; built plugins are `{plugin:NAME}`, which `Sandbox::pipeline` resolves.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "version = 1\n\n[pipeline]\n{}\n",
            key_values(&self.settings, "\n")
        );
        if !self.secrets.is_empty() {
            out.push_str(&format!(
                "\n[secrets]\n{}\n",
                key_values(&self.secrets, "\n")
            ));
        }
        for stage in &self.stages {
            stage.render(&mut out);
        }
        out
    }
}

/// `code`, `middle`, `release` (as in `Pipeline::three_stage`), stopped at `middle` with `status`.
pub fn stopped_at(middle: &str, status: StageStatus) -> [(&str, StageStatus); 3] {
    use StageStatus::{Skipped, Succeeded};
    [("code", Succeeded), (middle, status), ("release", Skipped)]
}

/// `code`, `middle`, `release`, with `middle` refused before anything ran.
pub fn refused_before_running(middle: &str) -> [(&str, StageStatus); 3] {
    use StageStatus::{Error, Skipped};
    [("code", Skipped), (middle, Error), ("release", Skipped)]
}

/// `code`, `middle`, `release`, all succeeded.
pub fn all_succeeded(middle: &str) -> [(&str, StageStatus); 3] {
    use StageStatus::Succeeded;
    [
        ("code", Succeeded),
        (middle, Succeeded),
        ("release", Succeeded),
    ]
}

// ---------------------------------------------------------------------------------------------
// Outcomes: one place that checks how a run ended and says everything when it did not end so.

/// A finished `sluice run` with its report.
pub struct Outcome {
    pub ran: Ran,
    pub report: RunReport,
    /// The sandbox the run folder is in, kept while the outcome is looked at.
    _sandbox: Option<Arc<tempfile::TempDir>>,
}

impl From<(Ran, RunReport)> for Outcome {
    fn from((ran, report): (Ran, RunReport)) -> Self {
        Self {
            ran,
            report,
            _sandbox: None,
        }
    }
}

impl Outcome {
    /// The process exited with `exit_code` (as the report records) and the stages, in order,
    /// ended with these statuses.
    #[track_caller]
    pub fn assert_stages(&self, exit_code: i32, expected: &[(&str, StageStatus)]) -> &Self {
        let actual: Vec<(&str, StageStatus)> = self
            .report
            .stages
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert!(
            self.ran.code == exit_code && self.report.exit_code == exit_code && actual == expected,
            "expected exit {exit_code} with {expected:?}\n{}",
            self.describe()
        );
        self
    }

    /// The stage's message contains every fragment.
    #[track_caller]
    pub fn assert_message(&self, stage: &str, fragments: &[&str]) -> &Self {
        let message = self.message(stage);
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "`{fragment}` not in the message of stage `{stage}`\n{}",
                self.describe()
            );
        }
        self
    }

    /// The stage's record.
    #[track_caller]
    pub fn stage(&self, name: &str) -> &StageRecord {
        match self.report.stage(name) {
            Some(stage) => stage,
            None => panic!("no stage `{name}`\n{}", self.describe()),
        }
    }

    /// The stage's message (empty when it has none).
    #[track_caller]
    pub fn message(&self, stage: &str) -> &str {
        self.stage(stage).message.as_deref().unwrap_or_default()
    }

    pub fn run_dir(&self) -> &Path {
        Path::new(&self.report.run_dir)
    }

    /// A file in the run folder (`artifacts/STAGE/NAME`, `logs/STAGE.log`), as text.
    pub fn file(&self, relative: &str) -> Result<String> {
        let path = self.run_dir().join(relative);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// Exit code, every stage's status and message, and stderr: what a failed assertion shows.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}\nexit {} (report: {:?}, exit {})\n",
            self.ran.command, self.ran.code, self.report.status, self.report.exit_code
        );
        for stage in &self.report.stages {
            text.push_str(&format!(
                "  {:<12} {:<12} {}\n",
                stage.name,
                stage.status.label(),
                stage.message.as_deref().unwrap_or_default()
            ));
        }
        text.push_str(&format!("stderr:\n{}", self.ran.stderr));
        text
    }
}

/// A real TCP listener on 127.0.0.1 that counts connections; with `http`, it answers each with
/// `200 ok`. Stops when dropped.
pub struct Listener {
    pub addr: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    pub fn start(http: bool) -> Result<Self> {
        Self::start_answering(http, 200)
    }

    /// An HTTP listener that answers every request with `status`.
    pub fn start_answering(http: bool, status: u16) -> Result<Self> {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (count, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        if http {
                            let _ = stream.set_nonblocking(false);
                            let _ =
                                stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                            let mut request = Vec::new();
                            let mut buf = [0u8; 1024];
                            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                                match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => request.extend_from_slice(&buf[..n]),
                                }
                            }
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                                if status == 200 { "OK" } else { "Not OK" }
                            );
                        }
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            connections,
            stop,
        })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
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

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A real OCI registry (Debian's `docker-registry`, distribution v2) on 127.0.0.1, started from
/// the repository's `registry/config.yml` with its own storage folder; stopped when dropped.
pub struct RegistryServer {
    child: Option<std::process::Child>,
    pub port: u16,
    pub storage: tempfile::TempDir,
}

impl RegistryServer {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// A registry that lets only `user` with `password` in (htpasswd, bcrypt).
    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let binary = Path::new("/usr/bin/docker-registry");
        if !binary.is_file() {
            bail!(
                "docker-registry is not installed: run `cargo xtask setup` (the test command does)"
            );
        }
        let port = free_port()?;
        let storage = tempfile::tempdir()?;
        let log = std::fs::File::create(storage.path().join("registry.log"))?;
        let mut command = Command::new(binary);
        if let Some((user, password)) = login {
            let hash = bcrypt::hash(password, 5)?;
            let htpasswd = storage.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            command
                .env("REGISTRY_AUTH", "htpasswd")
                .env("REGISTRY_AUTH_HTPASSWD_REALM", "sluice-tests")
                .env("REGISTRY_AUTH_HTPASSWD_PATH", htpasswd);
        }
        let child = command
            .arg("serve")
            .arg(repo_root().join("registry/config.yml"))
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                storage.path().join("data"),
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start docker-registry")?;
        let mut server = Self {
            child: Some(child),
            port,
            storage,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        server.stop();
        bail!("docker-registry did not listen on 127.0.0.1:{port}")
    }

    /// `oci://127.0.0.1:PORT/PATH`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://127.0.0.1:{}/{path}", self.port)
    }

    /// The file the registry keeps a blob's bytes in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}
