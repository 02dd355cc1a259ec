//! What the coordinator and the agents say to each other over NATS, as JSON: a stage job, its
//! result, the coordinator's decision, the request to stop a stage, the live events of a run, and
//! the subjects they travel on. Every message between machines is a type here; jobs, results,
//! decisions and stops travel sealed ([`super::sealed`]) under the `KIND_*` names. No secret value is ever part of any of
//! them: a job carries the locked stage (which names where its secrets come from, never what
//! they are), and what an agent sends back was masked on the agent.

use serde::{Deserialize, Serialize};

use crate::model::artifacts::ArtifactRecord;
use crate::model::events::LogSource;
use crate::model::report::StageRecord;
use crate::stage::LockedStage;

/// A job, signed by its coordinator.
pub const KIND_JOB: &str = "job";
/// A stage's result, signed by the agent that ran it (or by the coordinator that gave it up).
pub const KIND_RESULT: &str = "result";
/// The coordinator took a result as the stage's: agents stop running it.
pub const KIND_DECIDED: &str = "decided";
/// Stop a running stage, signed by the run's coordinator.
pub const KIND_STOP: &str = "stop";

/// One stage of one run, for an agent to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageJob {
    pub run_id: String,
    /// Random, once per job sent: a job seen again under another queue message is a replay.
    pub job_id: String,
    /// Seconds since 1970 after which no agent runs it.
    pub expires_at: u64,
    /// The sha256 of the pipeline text the run was started from.
    pub pipeline_sha256: String,
    /// The stage as the coordinator locked it: the plugin (a blob) by the sha256 of its
    /// component, config, grants, limits, phase, input selection, where its secrets come from.
    /// Relative paths in it (the workspace, granted folders) mean the same folders, relative to
    /// the agent's working folder.
    pub stage: LockedStage,
    /// The workspace's content tree, a blob named by its sha256, when the stage is granted the
    /// workspace: the agent builds its copy from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_tree: Option<String>,
    /// The artifacts the stage may read, each a blob named by its sha256.
    pub available: Vec<ArtifactRecord>,
    /// The records of the stages it depends on (what the plugin is told about earlier stages).
    pub earlier: Vec<StageRecord>,
    /// The stage's record so far (its plugin, grants, inputs as the coordinator prepared them).
    pub record: StageRecord,
}

/// How a stage ended, as the agent that ran it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageResult {
    /// The sha256 of the sealed job it answers: a result for another job (another run, an
    /// older send) is not this stage's.
    pub job_sha256: String,
    pub record: StageRecord,
    /// The whole record, a blob, when it is too big to travel in one message (thousands of
    /// outputs): `record` then holds it without its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sha256: Option<String>,
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

/// The coordinator took the result with digest `result_sha256` as stage `stage`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageDecided {
    pub run_id: String,
    pub stage: String,
    pub result_sha256: String,
}

/// Told to the agents of a run (on [`cancel_subject`]): stop running stage `stage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopStage {
    pub run_id: String,
    pub stage: String,
    /// Why, as the stage's record will say.
    pub reason: Option<String>,
}

/// A run as the board shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub pipeline: String,
    /// `running`, `succeeded`, `failed`, … (the run status's label).
    pub status: String,
    /// The machine the coordinator runs on, and its run folder there.
    pub coordinator: String,
    pub run_dir: String,
    pub started_at: String,
    pub updated_at: String,
    /// Each stage's name and status label, in file order.
    pub stages: Vec<(String, String)>,
}

/// The largest record sent inside its result rather than as a blob: with the largest inline
/// log, the signed result stays well under NATS's default 1 MiB message.
pub const INLINE_RECORD_BYTES: usize = 256 * 1024;

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
    fn a_stop_round_trips() -> anyhow::Result<()> {
        let stop = StopStage {
            run_id: "r1".into(),
            stage: "test".into(),
            reason: Some("cancelled: stage `build` failed (fail_fast)".into()),
        };
        let back: StopStage = serde_json::from_slice(&serde_json::to_vec(&stop)?)?;
        assert_eq!(back, stop);
        Ok(())
    }

    #[test]
    fn a_job_and_its_result_round_trip() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let text = "version = 1\n[pipeline]\nname = \"p\"\n[[stage]]\nname = \"build\"\nplugin = \"b.wasm\"\n[stage.allow]\nworkspace = \"read\"\n";
        let pipeline = crate::config::pipeline::parse(&dir.path().join("p.toml"), text)
            .map_err(|d| anyhow::anyhow!("{d}"))?;
        let spec = &pipeline.stages[0];
        let record = crate::stage::pending_record(spec, None);
        let job = StageJob {
            run_id: "r1".into(),
            job_id: "j1".into(),
            expires_at: 1,
            workspace_tree: None,
            pipeline_sha256: pipeline.sha256.clone(),
            stage: LockedStage::new(&pipeline, spec, "cafe"),
            available: Vec::new(),
            earlier: Vec::new(),
            record: record.clone(),
        };
        let back: StageJob = serde_json::from_slice(&serde_json::to_vec(&job)?)?;
        assert_eq!(back.stage.name, "build");
        assert_eq!(back.stage.plugin_sha256, "cafe");
        assert_eq!(back.stage.grants, spec.grants);
        assert_eq!(back.pipeline_sha256, pipeline.sha256);
        let result = StageResult {
            job_sha256: "abc".into(),
            record_sha256: None,
            record,
            log_sha256: None,
            log_text: Some("line\n".into()),
            by: "agent-1".into(),
            delivery: 2,
        };
        let back: StageResult = serde_json::from_slice(&serde_json::to_vec(&result)?)?;
        assert_eq!((back.by.as_str(), back.delivery), ("agent-1", 2));
        assert_eq!(back.log_text.as_deref(), Some("line\n"));
        Ok(())
    }

    #[test]
    fn a_run_state_round_trips() -> anyhow::Result<()> {
        let state = RunState {
            run_id: "r1".into(),
            pipeline: "p".into(),
            status: "running".into(),
            coordinator: "ci-1".into(),
            run_dir: "/runs/r1".into(),
            started_at: "2026-12-07T06:00:00.000Z".into(),
            updated_at: "2026-12-07T06:00:01.000Z".into(),
            stages: vec![("build".into(), "succeeded".into())],
        };
        let back: RunState = serde_json::from_slice(&serde_json::to_vec(&state)?)?;
        assert_eq!(back, state);
        Ok(())
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
