//! `cargo xtask install`: a release `sluice` on PATH that names nothing of the machine it was
//! built on — no path of this checkout, of its target folder or of the cargo home (rustc is told
//! to rewrite those prefixes; the code generator's generated sources would otherwise be named by
//! their absolute paths in panic locations). The same flags build the binary CI tests, which the
//! README test installs and checks with [`check_names_no_build_folder`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build_env::{cargo_home, remap_env};
use crate::{sh_env, target_dir};

/// `cargo xtask install [--root DIR]`: the Rust guest plugins (the shipped stages the binary
/// carries), then `cargo install --path host --locked` with [`remap_env`], then the check that
/// the installed binary names no build folder.
pub fn install(root: &Path, args: &[String]) -> Result<()> {
    let mut cargo_args = vec!["install", "--path", "host", "--locked"];
    let mut install_root = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--root" => {
                let dir = rest.next().context("--root needs a folder")?;
                cargo_args.extend(["--root", dir]);
                install_root = Some(PathBuf::from(dir));
            }
            other => bail!("unknown argument `{other}` (usage: cargo xtask install [--root DIR])"),
        }
    }
    // The binary carries the shipped stages `sluice init` writes (host/build.rs).
    crate::plugins::build_rust(root, crate::plugins::Lint::No)?;
    sh_env(root, "cargo", &cargo_args, &remap_env())?;
    let bin = match install_root {
        Some(dir) => dir.join("bin"),
        None => cargo_home()
            .map(|home| home.join("bin"))
            .context("cannot tell where cargo installed sluice (set CARGO_HOME)")?,
    };
    let binary = bin.join("sluice");
    check_names_no_build_folder(root, &binary)?;
    eprintln!(
        "xtask: installed {}; it names no folder of this build",
        binary.display()
    );
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir == bin));
    if !on_path {
        eprintln!(
            "xtask: {} is not on your PATH; add it: export PATH=\"{}:$PATH\"",
            bin.display(),
            bin.display()
        );
    }
    Ok(())
}

/// Fails if `binary` contains the path of the checkout, of the target folder or of the cargo
/// home.
pub fn check_names_no_build_folder(root: &Path, binary: &Path) -> Result<()> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let mut folders = vec![root.to_path_buf(), target_dir(root)];
    folders.extend(cargo_home());
    if let Ok(real) = root.canonicalize() {
        folders.push(real);
    }
    for folder in folders {
        let needle = folder.display().to_string();
        if let Some(at) = find(&bytes, needle.as_bytes()) {
            let end = (at + 160).min(bytes.len());
            bail!(
                "{} names the build folder {needle} (at byte {at}: {:?})",
                binary.display(),
                String::from_utf8_lossy(&bytes[at..end])
            );
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
