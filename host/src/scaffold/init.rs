//! `sluice init`: a starter `pipeline.toml` for the project in a folder, using the stages that
//! ship with sluice. A Rust crate (a `Cargo.toml`) gets code → build → test: `checkout` packs
//! the sources, `exec` runs `cargo build --release`, `cargo-test` runs the tests and writes
//! JUnit. The shipped stages the binary carries are written to `.sluice/stages/` beside the
//! pipeline (commit them with it: they are what `sluice check` and every run use).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

include!(concat!(env!("OUT_DIR"), "/shipped_stages.rs"));

/// Where the shipped stages go, relative to the project.
pub const STAGES_DIR: &str = ".sluice/stages";

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    pub pipeline: PathBuf,
    pub kind: &'static str,
    pub stages: Vec<PathBuf>,
    /// Steps taken on the project beyond writing files (e.g. `cargo generate-lockfile`).
    pub notes: Vec<String>,
}

/// Writes `dir/pipeline.toml` and the stages it uses; refuses to overwrite a pipeline unless
/// `force`.
pub fn init(dir: &Path, force: bool) -> Result<Initialized> {
    let pipeline = dir.join("pipeline.toml");
    if pipeline.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            pipeline.display()
        );
    }
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} holds no project sluice init knows: it starts pipelines for Rust crates (a Cargo.toml); \
             for anything else, start from the examples in sluice's README",
            dir.display()
        );
    }
    let name = crate_name(&manifest).unwrap_or_else(|| folder_name(dir));
    let mut notes = Vec::new();
    // The stages run cargo with --locked, in a workspace they may only read.
    if !dir.join("Cargo.lock").is_file() {
        let made = std::process::Command::new("cargo")
            .arg("generate-lockfile")
            .current_dir(dir)
            .status()
            .context("cannot run cargo (the pipeline's stages run it too: install Rust first)")?;
        if !made.success() {
            bail!(
                "`cargo generate-lockfile` failed in {} ({made})",
                dir.display()
            );
        }
        notes.push(
            "wrote Cargo.lock (cargo generate-lockfile): the stages build with --locked".into(),
        );
    }
    let stages = write_stages(dir, &["checkout", "exec", "cargo-test"])?;
    let text = RUST_PIPELINE.replace("{{name}}", &toml_string(&name));
    crate::atomic_file::write(&pipeline, text.as_bytes())?;
    Ok(Initialized {
        pipeline,
        kind: "Rust crate",
        stages,
        notes,
    })
}

fn write_stages(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let folder = dir.join(STAGES_DIR);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut written = Vec::new();
    for name in names {
        let Some((_, bytes)) = SHIPPED_STAGES.iter().find(|(n, _)| n == name) else {
            bail!(
                "this sluice was built without its shipped stages (`{name}` is missing): install it with \
                 `cargo xtask install`, which builds them first"
            );
        };
        let path = folder.join(format!("{name}.wasm"));
        crate::atomic_file::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// `[package] name` of a Cargo.toml, if it has one (a virtual workspace has not).
fn crate_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn folder_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into())
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

const RUST_PIPELINE: &str = r#"# Written by `sluice init` for a Rust crate: code → build → test, with the stages that ship
# with sluice (in .sluice/stages/). cargo runs on this machine through the `exec` grant, in this
# folder (read-only to the stages); its results come back as artifacts.
#   sluice check pipeline.toml     what each stage is and may do
#   sluice run pipeline.toml       run it
version = 1

[pipeline]
name = {{name}}
workspace = "."
limits = { timeout = "20m" }

[[stage]]
name = "code"
plugin = ".sluice/stages/checkout.wasm"
phase = "code"
[stage.allow]
workspace = "read"
[stage.config]
exclude = ["target/", ".sluice/"]

[[stage]]
name = "build"
plugin = ".sluice/stages/exec.wasm"
phase = "build"
needs = ["code"]
inputs = []
[stage.allow]
workspace = "read"
exec = ["cargo"]
exec_env = ["CARGO_TERM_COLOR"]
[stage.config]
program = "cargo"
args = ["build", "--release", "--locked", "--target-dir", "${out}/target"]
remove = ["target"]
env = { CARGO_TERM_COLOR = "never" }

[[stage]]
name = "test"
plugin = ".sluice/stages/cargo-test.wasm"
phase = "test"
needs = ["build"]
inputs = []
[stage.allow]
workspace = "read"
exec = ["cargo"]
exec_env = ["CARGO_TERM_COLOR"]
"#;
