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
    /// Stages run at once, at most (`--jobs`); default: the machine's cores.
    pub jobs: Option<usize>,
    /// The stage cache's folder; `None` runs every stage (`--no-stage-cache`).
    pub stage_cache: Option<PathBuf>,
    /// Send the stages to agents through NATS instead of running them here (`--nats`).
    pub remote: Option<Arc<crate::dist::Remote>>,
}

/// A request to stop the run (or one stage), shared between whoever asks — a signal handler,
/// the scheduler cancelling a sibling — and the runner; it carries why.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<tokio::sync::watch::Sender<Option<String>>>);

impl Interrupt {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(None).0))
    }

    /// Asks the run to stop (Ctrl-C, SIGTERM).
    pub fn trigger(&self) {
        self.trigger_because("interrupted and stopped; earlier artifacts are kept");
    }

    /// Asks to stop, saying why; the first reason given is kept.
    pub fn trigger_because(&self, reason: &str) {
        self.0.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason.to_string());
            true
        });
    }

    pub fn is_triggered(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Why it was triggered, once it was.
    pub fn reason(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Resolves once triggered.
    pub(crate) async fn triggered(&self) {
        let mut receiver = self.0.subscribe();
        let _ = receiver.wait_for(Option::is_some).await;
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
