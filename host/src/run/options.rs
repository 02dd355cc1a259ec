//! How a run is set up beyond what the pipeline file says: runs folder, approvals, interrupts.

use std::path::PathBuf;
use std::sync::Arc;

use crate::model::report::RunReport;
pub use crate::stage::Interrupt;

/// How a run is set up beyond what the pipeline file says.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Where run folders go; default [`crate::model::layout::default_runs_root`].
    pub runs_dir: Option<PathBuf>,
    /// The plugin store in use, kept out of every stage's reach like the runs folder.
    pub plugin_store: Option<PathBuf>,
    /// Stages approved in advance (`--approve STAGE`).
    pub approve: Vec<String>,
    /// Asks a person about the other gated stages; without one, the run stops at the gate.
    pub approver: Option<Arc<dyn Approver>>,
    /// Set (e.g. on Ctrl-C) to stop the running stage; the run is still recorded.
    pub interrupt: Option<Interrupt>,
    /// Stages run at once, at most (`--jobs`); default: the machine's cores.
    pub jobs: Option<usize>,
    /// The stage cache's folder; `None` runs every stage (`--no-stage-cache`).
    pub stage_cache: Option<PathBuf>,
    /// Send the stages to agents through NATS instead of running them here (`--nats`).
    pub remote: Option<Arc<crate::cluster::Remote>>,
    /// The stage cache shared between machines, behind the local one (`--shared-cache`).
    pub shared_cache: Option<Arc<dyn crate::stage::cache::SharedStageCache>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("runs_dir", &self.runs_dir)
            .field("approve", &self.approve)
            .field("approver", &self.approver.is_some())
            .field("interrupt", &self.interrupt.is_some())
            .field(
                "shared_cache",
                &self.shared_cache.as_ref().map(|s| s.describe()),
            )
            .finish()
    }
}

/// Decides a manual gate (`approval = "manual"`) when it was not approved in advance.
pub trait Approver: Send + Sync {
    /// True to run `stage` now; false leaves the run waiting for approval.
    fn approve(&self, pipeline: &str, stage: &str) -> bool;
}

/// What a finished run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    pub report_path: PathBuf,
}
