//! Which run folders this user's sluice started: a tag under the per-user key over the run's id
//! and the pipeline its record names. A run folder from elsewhere (downloaded from CI, shared)
//! carries no valid tag, so `resume` never takes the pipeline path its record names — which
//! would run a file of this machine on that folder's artifacts — without `--pipeline`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::pipeline::Pipeline;
use crate::trust::local_key;

/// The tag's file in a run folder.
pub const FILE: &str = "origin.tag";

/// The pipeline path a run's record holds: the file's absolute path.
pub fn recorded_pipeline_file(pipeline: &Pipeline) -> String {
    std::path::absolute(&pipeline.file)
        .unwrap_or_else(|_| pipeline.file.clone())
        .display()
        .to_string()
}

fn expected(run_id: &str, pipeline_file: &str, pipeline_sha256: &str) -> Result<Vec<u8>> {
    let path = local_key::path(None).context("no folder for sluice's per-user key")?;
    let key = local_key::load(&path, "run folders")?;
    let tag = local_key::tag(
        &key,
        &[
            b"sluice run origin 1",
            run_id.as_bytes(),
            pipeline_file.as_bytes(),
            pipeline_sha256.as_bytes(),
        ],
    );
    Ok(tag.as_ref().to_vec())
}

/// Marks `run_dir` as started here, for `pipeline`.
pub fn write(run_dir: &Path, run_id: &str, pipeline: &Pipeline) -> Result<()> {
    let tag = expected(run_id, &recorded_pipeline_file(pipeline), &pipeline.sha256)?;
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(run_dir.join(FILE), hex + "\n")
        .with_context(|| format!("cannot write {}", run_dir.join(FILE).display()))
}

/// Whether `run_dir` was started by this user's sluice for the pipeline its record names.
pub fn started_here(
    run_dir: &Path,
    run_id: &str,
    pipeline_file: &str,
    pipeline_sha256: &str,
) -> bool {
    let Ok(stored) = std::fs::read_to_string(run_dir.join(FILE)) else {
        return false;
    };
    let Ok(tag) = expected(run_id, pipeline_file, pipeline_sha256) else {
        return false;
    };
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    local_key::same_tag(hex.as_bytes(), stored.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_run_and_pipeline_tagged_here_verify() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pipeline.toml");
        std::fs::write(
            &file,
            "version = 1\n[pipeline]\nname = \"p\"\n[[stage]]\nname = \"a\"\nplugin = \"a.wasm\"\n",
        )?;
        let pipeline = crate::config::pipeline::load(&file)?;
        let recorded = recorded_pipeline_file(&pipeline);
        write(dir.path(), "run-1", &pipeline)?;
        assert!(started_here(
            dir.path(),
            "run-1",
            &recorded,
            &pipeline.sha256
        ));
        assert!(!started_here(
            dir.path(),
            "run-2",
            &recorded,
            &pipeline.sha256
        ));
        assert!(!started_here(
            dir.path(),
            "run-1",
            "/home/me/other.toml",
            &pipeline.sha256
        ));
        assert!(!started_here(dir.path(), "run-1", &recorded, "0000"));
        std::fs::write(dir.path().join(FILE), "00\n")?;
        assert!(!started_here(
            dir.path(),
            "run-1",
            &recorded,
            &pipeline.sha256
        ));
        Ok(())
    }
}
