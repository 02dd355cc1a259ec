//! A request to stop a run or one stage, shared between whoever asks — a signal handler, the
//! dispatcher cancelling a sibling, an agent told by its coordinator — and the stage running.

use std::sync::Arc;

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
