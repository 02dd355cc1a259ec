//! Pinned crates.io tools (`wit-bindgen`, `wkg`), each installed by `cargo install --locked`
//! into the toolchains folder: shared by the C bindings and the polyglot plugins.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::sh;

/// A pinned crates.io tool (`cargo install --locked`) under `toolchains/cargo/bin`, installed
/// again when the one there reports another version.
pub fn pinned(
    root: &Path,
    toolchains: &Path,
    krate: &str,
    version: &str,
    bin_name: &str,
) -> Result<PathBuf> {
    let cargo_root = toolchains.join("cargo");
    let bin = cargo_root.join("bin").join(bin_name);
    let installed = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(version));
    if installed {
        return Ok(bin);
    }
    sh(
        root,
        "cargo",
        &[
            "install",
            krate,
            "--version",
            version,
            "--locked",
            "--root",
            &cargo_root.display().to_string(),
        ],
    )?;
    Ok(bin)
}
