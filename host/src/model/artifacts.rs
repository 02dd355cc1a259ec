//! Artifacts are files: naming rules, hashing, handing inputs to a stage read-only, and turning
//! what a stage declares into checked, hashed records.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::names::check_relative_name;

/// A file a stage published, as recorded in the run report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// The stage that produced it.
    pub stage: String,
    /// Its name within that stage's outputs.
    pub name: String,
    /// Where it is on the host, relative to the run directory.
    pub path: String,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
}

impl ArtifactRecord {
    /// `stage/name`, the way `inputs` refer to it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.stage, self.name)
    }
}

pub use super::digests::{sha256_bytes, sha256_file};

/// Makes `source` visible at `dest`. A stage that only sees its inputs through a read-only
/// preopen gets a hard link (`writable_by_programs` false): it cannot write through it. A stage
/// whose host programs are handed `${in}` gets its own copy (a reflink where the filesystem
/// has them), since a program could write through a link into the published artifact.
pub fn hand_over(source: &Path, dest: &Path, writable_by_programs: bool) -> Result<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if !writable_by_programs && fs::hard_link(source, dest).is_ok() {
        return Ok(());
    }
    fs::copy(source, dest)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", source.display(), dest.display()))
}

/// Checks a recorded artifact against its file in `run_dir`: the path is the one sluice gives
/// (`artifacts/<stage>/<name>`, nothing that leads elsewhere), the file is a regular file, and
/// its content still hashes to the recorded digest. Returns the file.
pub fn verify_recorded(run_dir: &Path, artifact: &ArtifactRecord) -> Result<PathBuf, String> {
    let shown = artifact.reference();
    if !super::layout::is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path) {
        return Err(format!(
            "the record of artifact `{shown}` names the path `{}`, which is not where sluice keeps it; the run record was edited",
            artifact.path
        ));
    }
    let path = run_dir.join(&artifact.path);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        _ => {
            return Err(format!(
                "artifact `{shown}` is missing or not a regular file"
            ));
        }
    }
    let (sha256, _) = super::digests::sha256_file_once(&path).map_err(|err| format!("{err:#}"))?;
    if sha256 != artifact.sha256 {
        return Err(format!(
            "artifact `{shown}` changed after it was published (recorded sha256 {}, now {sha256})",
            artifact.sha256
        ));
    }
    Ok(path)
}

/// Why a declared output was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("declared output `{name}` has an invalid name: {why}")]
    BadName { name: String, why: &'static str },
    #[error("declared output `{name}` was not written to the output directory")]
    Missing { name: String },
    #[error(
        "declared output `{name}` is not a regular file (symlinks and directories are refused)"
    )]
    NotAFile { name: String },
    #[error("output `{name}` is declared twice")]
    Duplicate { name: String },
}

/// Checks one declared output inside `out_dir`: a valid name of a regular file that exists.
pub fn check_output(out_dir: &Path, name: &str) -> Result<(), OutputError> {
    check_relative_name(name).map_err(|why| OutputError::BadName {
        name: name.to_string(),
        why,
    })?;
    let mut path = out_dir.to_path_buf();
    let parts: Vec<&str> = name.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = fs::symlink_metadata(&path).map_err(|_| OutputError::Missing {
            name: name.to_string(),
        })?;
        let last = i + 1 == parts.len();
        let ok = if last { meta.is_file() } else { meta.is_dir() };
        if !ok || meta.file_type().is_symlink() {
            return Err(OutputError::NotAFile {
                name: name.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_must_be_regular_files_inside() -> Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("ok.txt"), b"hi")?;
        fs::create_dir(dir.path().join("sub"))?;
        fs::write(dir.path().join("sub/x"), b"x")?;
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link"))?;
        assert!(check_output(dir.path(), "ok.txt").is_ok());
        assert!(check_output(dir.path(), "sub/x").is_ok());
        assert!(matches!(
            check_output(dir.path(), "nope"),
            Err(OutputError::Missing { .. })
        ));
        assert!(matches!(
            check_output(dir.path(), "link"),
            Err(OutputError::NotAFile { .. })
        ));
        assert!(matches!(
            check_output(dir.path(), "sub"),
            Err(OutputError::NotAFile { .. })
        ));
        assert!(matches!(
            check_output(dir.path(), "../ok.txt"),
            Err(OutputError::BadName { .. })
        ));
        Ok(())
    }

    #[test]
    fn hashes_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        fs::write(&p, b"abc")?;
        let (digest, size) = sha256_file(&p)?;
        assert_eq!(size, 3);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_bytes(b"abc"), digest);
        Ok(())
    }
}
