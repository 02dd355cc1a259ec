//! Shared helpers: locating built plugins, isolated folders, running the binary, reading reports.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sluice::report::RunReport;

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
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path().join("cache")
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
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_CACHE_DIR", self.cache_dir())
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
        let report_path = self.path().join("report.json");
        let _ = std::fs::remove_file(&report_path);
        let ran = self.sluice(&[
            "run",
            &pipeline.display().to_string(),
            "--format",
            "plain",
            "--runs-dir",
            &self.runs_dir().display().to_string(),
            "--report",
            &report_path.display().to_string(),
        ])?;
        let text = std::fs::read_to_string(&report_path)
            .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
        let report: RunReport = serde_json::from_str(&text)?;
        Ok((ran, report))
    }
}

/// The digest of a file, recomputed independently of the host.
pub fn sha256_of(path: &Path) -> Result<String> {
    Ok(sluice::artifacts::sha256_file(path)?.0)
}
