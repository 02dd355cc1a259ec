//! Plugins in Python, JavaScript and C: installs each language's component toolchain under
//! `target/toolchains/` (pinned versions, from PyPI and npm, by the same installer as `sluice plugin build`:
//! the `sluice-toolchains` crate) and builds every plugin folder in
//! `plugins/python`, `plugins/js` and `plugins/c` into `plugins/dist/<name>.wasm`. C plugins
//! compile against the committed bindings in `plugins/c/bindings` (see `c_bindings`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Result, bail};
use sluice_toolchains::Toolchains;

use crate::{c_bindings, cargo_tools, sh};

const WKG: &str = "0.16.1";

/// Builds every non-Rust plugin; returns how many components it produced.
pub fn build_all(root: &Path, dist: &Path, toolchains: &Path) -> Result<usize> {
    let mut count = 0;
    let wit = root.join("wit");
    for dir in plugin_dirs(&root.join("plugins/python"), "app.py") {
        let python = python_tools(toolchains)?;
        let out = output(dist, &dir);
        if fresh(&out, &[&dir, &wit]) {
            count += 1;
            continue;
        }
        sh(
            root,
            &python.join("componentize-py").display().to_string(),
            &[
                "-d",
                &wit.display().to_string(),
                "-w",
                "stage",
                "componentize",
                "-p",
                &dir.display().to_string(),
                "app",
                "-o",
                &out.display().to_string(),
            ],
        )?;
        count += 1;
    }
    for dir in plugin_dirs(&root.join("plugins/js"), "stage.js") {
        let node = node_tools(toolchains)?;
        let out = output(dist, &dir);
        if fresh(&out, &[&dir, &wit]) {
            count += 1;
            continue;
        }
        sh(
            root,
            &node.join("componentize-js").display().to_string(),
            &[
                &dir.join("stage.js").display().to_string(),
                "--wit",
                &wit.display().to_string(),
                "--world-name",
                "stage",
                "-o",
                &out.display().to_string(),
            ],
        )?;
        count += 1;
    }
    let bindings = c_bindings::dir(root);
    for dir in plugin_dirs(&root.join("plugins/c"), "Makefile.sluice") {
        let out = output(dist, &dir);
        if fresh(&out, &[&dir, &bindings]) {
            count += 1;
            continue;
        }
        build_c(root, toolchains, &dir, &out)?;
        count += 1;
    }
    Ok(count)
}

/// Folders under `group` holding `marker`.
fn plugin_dirs(group: &Path, marker: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(group) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(marker).is_file())
        .collect();
    dirs.sort();
    dirs
}

fn output(dist: &Path, dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dist.join(format!("{name}.wasm"))
}

/// Whether `out` is newer than every file under `sources`.
fn fresh(out: &Path, sources: &[&Path]) -> bool {
    let Ok(built) = out.metadata().and_then(|m| m.modified()) else {
        return false;
    };
    sources
        .iter()
        .all(|dir| newest(dir).is_some_and(|t| t <= built))
}

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = path.metadata().ok()?;
    if meta.is_file() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != "node_modules")
        .filter_map(|e| newest(&e.path()))
        .max()
        .or_else(|| meta.modified().ok())
}

/// The Python venv with componentize-py, zig and wasm-tools; returns its bin folder.
pub fn python_tools(toolchains: &Path) -> Result<PathBuf> {
    Toolchains::new(toolchains).python()
}

/// componentize-js and jco from npm (versions in plugins/js/package.json); returns `.bin`.
pub fn node_tools(toolchains: &Path) -> Result<PathBuf> {
    Toolchains::new(toolchains).node()
}

/// `wkg`, the component ecosystem's own registry client: `cargo xtask wkg-interop` shows that a
/// component it pushes is pulled and run by sluice (and the other way round).
pub fn wkg(root: &Path, toolchains: &Path) -> Result<PathBuf> {
    cargo_tools::pinned(root, toolchains, "wkg", WKG, "wkg")
}

/// C: `zig cc` (wasm32-wasi reactor) over the plugin's .c files and the committed bindings →
/// `wasm-tools component new` with the preview1 adapter.
fn build_c(root: &Path, toolchains: &Path, dir: &Path, out: &Path) -> Result<()> {
    let python = python_tools(toolchains)?;
    let adapter = Toolchains::new(toolchains).reactor_adapter()?;
    let bindings = c_bindings::dir(root);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = toolchains.join("c-build").join(&name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut sources: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .map(|p| p.display().to_string())
        .collect();
    sources.sort();
    if sources.is_empty() {
        bail!("{} has no .c files", dir.display());
    }
    let core = work.join("core.wasm").display().to_string();
    let mut args: Vec<String> = [
        "-m",
        "ziglang",
        "cc",
        "--target=wasm32-wasi",
        "-mexec-model=reactor",
        "-O2",
        "-Wall",
        "-I",
        &bindings.display().to_string(),
        "-o",
        &core,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(sources);
    for file in c_bindings::LINKED {
        args.push(bindings.join(file).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sh(root, &python.join("python").display().to_string(), &args)?;
    sh(
        root,
        &python.join("wasm-tools").display().to_string(),
        &[
            "component",
            "new",
            &core,
            "--adapt",
            &format!("wasi_snapshot_preview1={}", adapter.display()),
            "-o",
            &out.display().to_string(),
        ],
    )
}
