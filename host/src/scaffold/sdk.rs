//! The Rust SDK that comes inside the sluice binary: written to a folder per version under the
//! user's data folder, where a Rust plugin's `.cargo/config.toml` patches `sluice-sdk` to, so a
//! plugin builds on any machine with sluice installed and no checkout of sluice's repository.
//! The plugin itself depends on `sluice-sdk = "<version>"`, so a published crate can replace the
//! copy by deleting that one file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The SDK's version: the same workspace version as this binary.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The SDK's files as they are written, beside its Cargo.toml (generated from a template because
/// the repository's one inherits from its workspace).
const SOURCES: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/context.rs",
        include_str!("../../../plugins/sdk/src/context.rs"),
    ),
    (
        "src/exec.rs",
        include_str!("../../../plugins/sdk/src/exec.rs"),
    ),
    (
        "src/failure.rs",
        include_str!("../../../plugins/sdk/src/failure.rs"),
    ),
    (
        "src/junit.rs",
        include_str!("../../../plugins/sdk/src/junit.rs"),
    ),
    (
        "src/links.rs",
        include_str!("../../../plugins/sdk/src/links.rs"),
    ),
    (
        "src/stream.rs",
        include_str!("../../../plugins/sdk/src/stream.rs"),
    ),
];

const MANIFEST: &str = include_str!("../../templates/sdk/Cargo.toml");

/// Where this version's SDK is written: `$SLUICE_SDK_DIR`, else `sluice/sdk/<version>` in the
/// user's data folder (`$XDG_DATA_HOME` or `~/.local/share`).
pub fn dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_SDK_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::data_dir()
        .map(|data| data.join("sluice").join("sdk").join(VERSION))
        .context("cannot tell where your data folder is (HOME is not set): set SLUICE_SDK_DIR to a folder for sluice's Rust SDK")
}

/// Writes the SDK into [`dir`] (only the files whose content differs, so cargo's incremental
/// builds stay warm); returns the folder.
pub fn install() -> Result<PathBuf> {
    let dir = dir()?;
    write_if_changed(
        &dir.join("Cargo.toml"),
        MANIFEST.replace("{{version}}", VERSION).as_bytes(),
    )?;
    for (file, text) in SOURCES {
        write_if_changed(&dir.join(file), text.as_bytes())?;
    }
    for (file, text) in super::WIT {
        write_if_changed(&dir.join("wit").join(file), text.as_bytes())?;
    }
    Ok(dir)
}

/// Replaces `path` whole (temporary file, then rename) unless it already holds `contents`: a
/// build reading the SDK at the same time sees the old file or the new one.
fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    std::io::Write::write_all(&mut temp, contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    #[test]
    fn every_source_file_of_the_sdk_is_carried() -> anyhow::Result<()> {
        let mut on_disk = BTreeSet::new();
        for entry in std::fs::read_dir(repo().join("plugins/sdk/src"))? {
            on_disk.insert(format!("src/{}", entry?.file_name().to_string_lossy()));
        }
        let carried: BTreeSet<String> = super::SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(carried, on_disk);
        Ok(())
    }

    /// The written manifest asks for the dependencies (and versions) the repository's SDK
    /// builds with, and the SDK's version is this binary's.
    #[test]
    fn the_written_manifest_matches_the_repository_sdk() -> anyhow::Result<()> {
        let workspace: toml::Table =
            toml::from_str(&std::fs::read_to_string(repo().join("plugins/Cargo.toml"))?)?;
        let sdk: toml::Table = toml::from_str(&std::fs::read_to_string(
            repo().join("plugins/sdk/Cargo.toml"),
        )?)?;
        let written: toml::Table =
            toml::from_str(&super::MANIFEST.replace("{{version}}", "0.0.0"))?;
        let shared = &workspace["workspace"]["dependencies"];
        let wanted: BTreeSet<String> = sdk["dependencies"]
            .as_table()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let ours = written["dependencies"]
            .as_table()
            .cloned()
            .unwrap_or_default();
        assert_eq!(ours.keys().cloned().collect::<BTreeSet<_>>(), wanted);
        for (name, spec) in &ours {
            assert_eq!(Some(spec), shared.get(name), "dependency {name}");
        }
        assert_eq!(
            workspace["workspace"]["package"]["version"].as_str(),
            Some(super::VERSION)
        );
        Ok(())
    }
}
