//! The guest plugins: the wasm32-wasip2 target, the Rust guest workspace (optionally linted by
//! clippy in the same build, see [`clippy_env`]) and the copies of every component in
//! `plugins/dist/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build_env::{clippy_env, remap_env_for};
use crate::{plugin_target_dir, polyglot, sh_env, toolchains_dir};

/// Whether a build also runs clippy (`-D warnings`) over the workspace's own crates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lint {
    Yes,
    No,
}

/// Guests build for wasm32-wasip2, which emits components directly.
pub fn ensure_wasm_target(_root: &Path) -> Result<()> {
    sluice_toolchains::ensure_rust_wasm_target()
}

/// Builds every guest (Rust, then Python, JavaScript and C) into `plugins/dist/<name>.wasm`.
pub fn build(root: &Path, lint: Lint) -> Result<()> {
    let mut count = build_rust(root, lint)?;
    count += build_polyglot(root)?;
    eprintln!(
        "xtask: {count} plugin components in {}",
        root.join("plugins/dist").display()
    );
    Ok(())
}

/// The Python, JavaScript and C plugins; returns how many components are in place.
pub fn build_polyglot(root: &Path) -> Result<usize> {
    let dist = dist_dir(root)?;
    polyglot::build_all(root, &dist, &toolchains_dir(root))
}

fn dist_dir(root: &Path) -> Result<PathBuf> {
    let dist = root.join("plugins").join("dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("cannot create {}", dist.display()))?;
    Ok(dist)
}

/// Builds the Rust guest workspace (linting it with clippy when asked) and copies each crate's
/// component to `plugins/dist/`; returns how many.
pub fn build_rust(root: &Path, lint: Lint) -> Result<usize> {
    ensure_wasm_target(root)?;
    let plugins = root.join("plugins");
    let target_dir = plugin_target_dir(root);
    let target_arg = target_dir.display().to_string();
    let mut env = match lint {
        Lint::Yes => clippy_env()?,
        Lint::No => Vec::new(),
    };
    // The host binary carries some of these (the stages `sluice init` writes): they name no
    // folder of the build machine either.
    env.extend(remap_env_for(&target_dir));
    sh_env(
        &plugins,
        "cargo",
        &[
            "build",
            "--workspace",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
            &target_arg,
        ],
        &env,
    )?;
    let built = target_dir.join("wasm32-wasip2").join("release");
    let dist = dist_dir(root)?;
    let mut count = 0;
    for group in ["stages", "hostile", "fixtures"] {
        let dir = plugins.join(group);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.path().join("Cargo.toml").is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // cdylibs are named with underscores; bins keep the package name.
            let candidates = [
                built.join(format!("{}.wasm", name.replace('-', "_"))),
                built.join(format!("{name}.wasm")),
            ];
            let Some(source) = candidates.iter().find(|p| p.is_file()) else {
                bail!(
                    "plugins/{group}/{name} built no component; its package name must match its folder name"
                );
            };
            std::fs::copy(source, dist.join(format!("{name}.wasm")))
                .with_context(|| format!("cannot copy {}", source.display()))?;
            count += 1;
        }
    }
    Ok(count)
}
