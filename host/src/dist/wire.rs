//! What the coordinator and the agents say to each other over NATS, as JSON: a stage job, its
//! result, the live events of a run, and the subjects they travel on. No secret value is ever
//! part of any of them: a job carries the pipeline file (which names where secrets come from,
//! never what they are), and what an agent sends back was masked on the agent.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::artifacts::ArtifactRecord;
use crate::model::events::LogSource;
use crate::model::report::StageRecord;

/// One stage of one run, for an agent to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageJob {
    pub run_id: String,
    /// Where the pipeline file is on the coordinator: relative paths in it (the workspace,
    /// granted folders) mean the same folders on the agent.
    pub pipeline_file: PathBuf,
    /// The pipeline file's text, exactly as the coordinator checked it.
    pub pipeline_text: String,
    pub pipeline_sha256: String,
    /// The stage's name (a matrix instance's full name).
    pub stage: String,
    /// The plugin, by the sha256 of its component (a blob).
    pub plugin_sha256: String,
    /// The artifacts the stage may read, each a blob named by its sha256.
    pub available: Vec<ArtifactRecord>,
    /// The records of the stages it depends on (what the plugin is told about earlier stages).
    pub earlier: Vec<StageRecord>,
    /// The stage's record so far (its plugin, grants, inputs as the coordinator prepared them).
    pub record: StageRecord,
}

/// How a stage ended, recorded once per stage of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageResult {
    pub record: StageRecord,
    /// The stage's log, a blob, when it has one too big to travel in the result.
    pub log_sha256: Option<String>,
    /// The stage's log itself, when it is small (most are): two fewer trips to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_text: Option<String>,
    /// Who decided it: an agent's name, or `coordinator` (cancelled, given up).
    pub by: String,
    /// Which delivery of the job this was (1 the first time).
    pub delivery: i64,
}

/// The largest log sent inside its result rather than as a blob.
pub const INLINE_LOG_BYTES: u64 = 64 * 1024;

/// A live event of a run, sent by the agent running the stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StageEvent {
    /// An agent took the stage's job.
    Taken {
        agent: String,
        delivery: i64,
    },
    Log {
        source: LogSource,
        line: String,
    },
    Artifact {
        artifact: ArtifactRecord,
    },
    /// The stage's result was recorded (or refused as a second one): read it.
    Recorded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEvent {
    pub stage: String,
    #[serde(flatten)]
    pub event: StageEvent,
}

/// Live events of a run (core NATS: seen by whoever listens now, kept by no one).
pub fn events_subject(run_id: &str) -> String {
    format!("sluice.events.{}", token(run_id))
}

/// Told to every agent running a stage of the run when the run stops (fail-fast, Ctrl-C).
pub fn cancel_subject(run_id: &str) -> String {
    format!("sluice.cancel.{}", token(run_id))
}

/// A run id as one subject token (they are letters, digits and `-`; anything else is `_`).
pub(crate) fn token(run_id: &str) -> String {
    run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hold_one_token_whatever_the_run_id() {
        assert_eq!(
            events_subject("20261130T1-ab"),
            "sluice.events.20261130T1-ab"
        );
        assert_eq!(cancel_subject("a.b *>"), "sluice.cancel.a_b___");
    }

    #[test]
    fn an_event_round_trips() {
        let event = RunEvent {
            stage: "build".into(),
            event: StageEvent::Log {
                source: LogSource::Stderr,
                line: "x".into(),
            },
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        assert!(json.contains("\"kind\":\"log\""), "{json}");
        let back: RunEvent = serde_json::from_str(&json).expect("parses");
        assert!(matches!(
            back.event,
            StageEvent::Log {
                source: LogSource::Stderr,
                ..
            }
        ));
    }
}
