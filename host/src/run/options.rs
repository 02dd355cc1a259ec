//! How a run is set up beyond what the pipeline file says: runs folder, approvals, interrupts.

use std::path::PathBuf;
use std::sync::Arc;

use crate::model::report::RunReport;

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
}

/// A request to stop the run, shared between a signal handler and the runner.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<tokio::sync::watch::Sender<bool>>);

impl Interrupt {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }

    /// Asks the run to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once triggered.
    pub(crate) async fn triggered(&self) {
        let mut receiver = self.0.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("runs_dir", &self.runs_dir)
            .field("approve", &self.approve)
            .field("approver", &self.approver.is_some())
            .field("interrupt", &self.interrupt.is_some())
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
