//! Shared helpers: locating built plugins, isolated folders, running the binary, reading reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sluice::model::report::{RunReport, StageStatus};

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

/// An isolated place for one test: its own compile cache, runs folder and pipeline files.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// A compile cache shared between tests (for the large Python and JS components).
    shared_cache: Option<PathBuf>,
}

/// One finished `sluice` process.
pub struct Ran {
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
}

impl Ran {
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
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
            shared_cache: None,
        })
    }

    /// A sandbox whose compile cache is shared with other tests that ask for it, so each large
    /// component is compiled once per test run.
    pub fn with_shared_cache() -> Result<Self> {
        let mut sandbox = Self::new()?;
        sandbox.shared_cache =
            Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-compile-cache"));
        Ok(sandbox)
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

/// The digest of a file, recomputed independently of the host.
pub fn sha256_of(path: &Path) -> Result<String> {
    Ok(sluice::model::artifacts::sha256_file(path)?.0)
}

pub fn statuses(report: &RunReport) -> Vec<StageStatus> {
    report.stages.iter().map(|s| s.status).collect()
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

pub const EMIT: &str = r#"
[[stage]]
name = "code"
plugin = "{plugin:emit}"
[stage.config.files]
"a.txt" = "alpha\n"
"#;

pub const AFTER: &str = r#"
[[stage]]
name = "release"
plugin = "{plugin:checksum}"
"#;

pub fn three_stage(sandbox: &Sandbox, middle: &str) -> Result<std::path::PathBuf> {
    sandbox.pipeline(
        "pipeline.toml",
        &format!("version = 1\n[pipeline]\nname = \"t\"\n{EMIT}\n{middle}\n{AFTER}"),
    )
}

/// `three_stage` with extra top-level TOML (e.g. a `[secrets]` table) after `[pipeline]`.
pub fn three_stage_with(sandbox: &Sandbox, top: &str, middle: &str) -> Result<std::path::PathBuf> {
    sandbox.pipeline(
        "pipeline.toml",
        &format!("version = 1\n[pipeline]\nname = \"t\"\n{top}\n{EMIT}\n{middle}\n{AFTER}"),
    )
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
