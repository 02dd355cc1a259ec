//! `sluice plugin build`: tells a scaffold's language from its files, makes sure what that
//! language needs is in place (the wasm32-wasip2 target and the SDK for Rust; the pinned
//! Python, JavaScript or C toolchain, installed on first use), then runs the plugin's `build.sh`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sluice_toolchains::{Toolchain, Toolchains};

use super::{Lang, rust_cargo_config, sdk};

/// The language of the plugin in `dir`, from the files `sluice plugin new` writes.
pub fn detect(dir: &Path) -> Result<Lang> {
    let has = |file: &str| dir.join(file).is_file();
    let has_c = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "c"))
    });
    Ok(if has("Cargo.toml") {
        Lang::Rust
    } else if has("app.py") {
        Lang::Python
    } else if has("stage.js") {
        Lang::Js
    } else if has_c {
        Lang::C
    } else {
        bail!(
            "{} does not look like a plugin made by `sluice plugin new` (no Cargo.toml, app.py, stage.js or .c file)",
            dir.display()
        )
    })
}

/// Builds the plugin in `dir` with its `build.sh`; returns the component it built.
pub fn build_plugin(dir: &Path, toolchains: &Toolchains) -> Result<PathBuf> {
    let script = dir.join("build.sh");
    if !script.is_file() {
        bail!(
            "{} has no build.sh; run this in a folder made by `sluice plugin new` (or name that folder)",
            dir.display()
        );
    }
    match detect(dir)? {
        Lang::Rust => {
            sluice_toolchains::ensure_rust_wasm_target()?;
            refresh_sdk(dir)?;
        }
        Lang::Python => toolchains.ensure(Toolchain::Python)?,
        Lang::Js => toolchains.ensure(Toolchain::JavaScript)?,
        Lang::C => toolchains.ensure(Toolchain::C)?,
    }
    // The script is run from its own folder, so it is named by its file name there: a relative
    // `dir` (`sluice plugin build ./shout`) would otherwise be resolved twice.
    let status = std::process::Command::new("sh")
        .arg("build.sh")
        .current_dir(dir)
        .env("SLUICE_TOOLCHAINS", toolchains.dir())
        .status()
        .context("cannot run sh")?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    let name = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let component = dir.join(format!("{name}.wasm"));
    if !component.is_file() {
        bail!("build.sh succeeded but {} is missing", component.display());
    }
    Ok(component)
}

/// Writes this binary's SDK (when it is missing or older) and points the plugin's
/// `.cargo/config.toml` at it, if that file is still the one `sluice plugin new` wrote: a plugin
/// moved to another machine or user builds there too. A plugin whose config was removed (to
/// take a published sluice-sdk from crates.io) or rewritten by hand is left alone.
fn refresh_sdk(dir: &Path) -> Result<()> {
    let sdk = sdk::install()?;
    let config = dir.join(".cargo").join("config.toml");
    let Ok(current) = std::fs::read_to_string(&config) else {
        return Ok(());
    };
    let wanted = rust_cargo_config(&sdk);
    let ours = current.starts_with(first_line(&wanted));
    if ours && current != wanted {
        std::fs::write(&config, wanted)
            .with_context(|| format!("cannot write {}", config.display()))?;
    }
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
