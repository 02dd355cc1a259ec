//! Where a run keeps its things: `<runs>/<run-id>/` with artifacts by stage, logs, the report.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};

/// Where runs of a pipeline go unless told otherwise: `$SLUICE_RUNS_DIR`, else a folder per
/// pipeline under the user's state folder (`~/.local/state/sluice/runs/<name>-<hash of its
/// folder>`) — outside the pipeline's folder, so outside the workspace stages are given.
pub fn default_runs_root(pipeline_dir: &Path, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_RUNS_DIR") {
        return PathBuf::from(dir);
    }
    match runs_home() {
        Some(home) => {
            let folder =
                std::path::absolute(pipeline_dir).unwrap_or_else(|_| pipeline_dir.to_path_buf());
            let digest = super::digests::sha256_bytes(folder.as_os_str().as_encoded_bytes());
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect();
            home.join(format!("{safe}-{}", &digest[..12]))
        }
        None => pipeline_dir.join(".sluice").join("runs"),
    }
}

/// The folder holding every pipeline's default runs folder.
pub fn runs_home() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("sluice").join("runs"))
}

const LOCK_FILE: &str = "run.lock";

/// Takes the run's lock, or says who holds it.
fn lock(dir: &Path, run_id: &str) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow::anyhow!(
                "run {run_id} is being run by another sluice right now; wait for it to finish"
            )
        },
    )?;
    Ok(file)
}

/// Where the run folder keeps output `name` of stage `stage`, relative to it, as recorded in
/// the report: the one place this path is spelled.
pub fn artifact_rel(stage: &str, name: &str) -> String {
    format!("artifacts/{stage}/{name}")
}

/// Whether `path` (from a record: a report, a job, a result) is exactly where the run folder
/// keeps output `name` of stage `stage`, with names that cannot lead elsewhere.
pub fn is_artifact_rel(stage: &str, name: &str, path: &str) -> bool {
    crate::config::names::check_stage_name(stage).is_ok()
        && crate::config::names::check_relative_name(name).is_ok()
        && path == artifact_rel(stage, name)
}

/// The folders of one run, and the lock that says a sluice is running it.
#[derive(Debug, Clone)]
pub struct RunLayout {
    pub run_id: String,
    pub dir: PathBuf,
    /// `run.lock`, held (flock) while this process runs the run; the kernel lets go when the
    /// process dies, however it dies.
    _lock: Arc<std::fs::File>,
}

impl RunLayout {
    /// Creates a fresh, uniquely named run folder under `runs_root`.
    pub fn create(runs_root: &Path) -> Result<Self> {
        std::fs::create_dir_all(runs_root)
            .with_context(|| format!("cannot create the runs folder {}", runs_root.display()))?;
        let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        for _ in 0..16 {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            let run_id = format!("{stamp}-{:06x}", hasher.finish() & 0xff_ffff);
            let dir = runs_root.join(&run_id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let layout = Self {
                        _lock: Arc::new(lock(&dir, &run_id)?),
                        run_id,
                        dir,
                    };
                    for sub in ["artifacts", "logs"] {
                        std::fs::create_dir_all(layout.dir.join(sub)).with_context(|| {
                            format!("cannot create {}", layout.dir.join(sub).display())
                        })?;
                    }
                    layout.point_latest_here(runs_root);
                    return Ok(layout);
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot create {}", dir.display()));
                }
            }
        }
        anyhow::bail!("cannot find a free run id under {}", runs_root.display())
    }

    /// An existing run folder (to resume a run); refused while another sluice runs it.
    pub fn open(dir: &Path, run_id: &str) -> Result<Self> {
        Ok(Self {
            _lock: Arc::new(lock(dir, run_id)?),
            run_id: run_id.to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// Whether a sluice process is running the run in `dir` right now.
    pub fn is_locked(dir: &Path) -> bool {
        let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else {
            return false;
        };
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
    }

    /// `<runs>/latest` → this run, for humans; best effort.
    fn point_latest_here(&self, runs_root: &Path) {
        let latest = runs_root.join("latest");
        let tmp = runs_root.join(format!(".latest-{}", self.run_id));
        if std::os::unix::fs::symlink(&self.run_id, &tmp).is_ok()
            && std::fs::rename(&tmp, &latest).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Where stage `stage` writes its outputs (its `/out`).
    pub fn artifacts_of(&self, stage: &str) -> PathBuf {
        self.dir.join("artifacts").join(stage)
    }

    /// Relative to the run folder, as recorded in the report.
    pub fn log_rel(&self, stage: &str) -> String {
        format!("logs/{stage}.log")
    }

    /// Scratch space for staging a stage's inputs; removed after the stage.
    pub fn work_of(&self, stage: &str) -> PathBuf {
        self.dir.join("work").join(stage)
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    /// Where a distributed run keeps the signed job it sent for `stage`: a resumed run sends
    /// the same job again (and adopts only a result bound to it) while it has not expired.
    pub fn sent_job_of(&self, stage: &str) -> PathBuf {
        // By digest: a matrix instance's name can hold any character.
        let name = crate::model::digests::sha256_bytes(stage.as_bytes());
        self.dir
            .join("jobs")
            .join(format!("{}.sha256", &name[..32]))
    }
}
