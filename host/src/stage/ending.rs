//! How a stage's attempt ended, before it is written into its record.

use crate::model::report::StageStatus;

/// How a stage ended, before it is written into its record.
pub struct Ending {
    pub status: StageStatus,
    pub message: Option<String>,
}

impl Ending {
    pub fn succeeded() -> Self {
        Self {
            status: StageStatus::Succeeded,
            message: None,
        }
    }

    pub fn error(message: String) -> Self {
        Self {
            status: StageStatus::Error,
            message: Some(message),
        }
    }

    /// Adds what sluice refused the stage, which is often why it failed.
    pub fn explained_by(mut self, denied: &[String]) -> Self {
        if !denied.is_empty()
            && let Some(message) = self.message.as_mut()
        {
            message.push_str(&format!(" (sluice denied: {})", denied.join("; ")));
        }
        self
    }
}
