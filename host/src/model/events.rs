//! The one event stream a run produces. The runner only emits these; every reporter (terminal,
//! plain CI log, JSON lines) renders them, so all views of a run agree.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::artifacts::ArtifactRecord;
use crate::model::report::{RunStatus, StageStatus};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Stdout,
    Stderr,
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// `sha256:0123456789ab`: enough of a digest to recognise it.
pub fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

impl Event {
    /// For `PluginResolved`: its stage and one line about the pin, for the human reporters.
    pub(crate) fn resolution_line(&self) -> Option<(&str, String)> {
        let Event::PluginResolved {
            stage,
            reference,
            manifest_digest,
            fetched,
            signed_by,
        } = self
        else {
            return None;
        };
        let source = if *fetched {
            "fetched"
        } else {
            "from the local store"
        };
        let signed = if signed_by.is_empty() {
            String::new()
        } else {
            format!(", signed by {}", signed_by.join(", "))
        };
        Some((
            stage,
            format!(
                "{reference} → {} ({source}{signed})",
                short_digest(manifest_digest)
            ),
        ))
    }
}

impl LogSource {
    pub fn label(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// Trace and debug lines are stored but shown only with `--verbose`.
    pub fn is_chatty(self) -> bool {
        matches!(self, Self::Trace | Self::Debug)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        run_id: String,
        pipeline: String,
        run_dir: PathBuf,
        stages: Vec<String>,
        #[serde(with = "humantime_serde_compat")]
        at: SystemTime,
    },
    /// A registry plugin was pinned before the run: from pipeline.lock and the local plugin
    /// store, or fetched from its registry.
    PluginResolved {
        stage: String,
        reference: String,
        manifest_digest: String,
        fetched: bool,
        /// Trusted keys whose signatures verified (empty when none are required).
        signed_by: Vec<String>,
    },
    /// pipeline.lock was written; one line per added, updated or removed pin.
    LockWritten {
        path: PathBuf,
        changes: Vec<String>,
    },
    /// The stage's plugin is compiled (or loaded from the cache) and ready to instantiate.
    PluginReady {
        stage: String,
        plugin: String,
        cache_hit: bool,
        #[serde(with = "duration_ms")]
        load_time: Duration,
    },
    StageStarted {
        stage: String,
    },
    Log {
        stage: String,
        source: LogSource,
        line: String,
    },
    ArtifactWritten {
        stage: String,
        artifact: ArtifactRecord,
    },
    StageFinished {
        stage: String,
        status: StageStatus,
        #[serde(with = "duration_ms")]
        elapsed: Duration,
        /// The plugin's summary on success, the reason otherwise.
        message: Option<String>,
    },
    RunFinished {
        status: RunStatus,
        /// The stage that did not succeed, when the run stopped early.
        stopped_by: Option<String>,
        #[serde(with = "duration_ms")]
        elapsed: Duration,
        report: PathBuf,
        /// What was written about the release's provenance, when the run released something.
        provenance: Option<String>,
    },
}

/// Where the runner sends events. Sending never blocks and never fails the run: a reporter
/// that went away must not stop a pipeline.
#[derive(Debug, Clone)]
pub struct EventSink(Option<mpsc::Sender<Event>>);

impl EventSink {
    pub fn new(sender: mpsc::Sender<Event>) -> Self {
        Self(Some(sender))
    }

    /// A sink that drops every event (benchmarks, embedding).
    pub fn discard() -> Self {
        Self(None)
    }

    pub fn emit(&self, event: Event) {
        if let Some(sender) = &self.0 {
            let _ = sender.send(event);
        }
    }
}

pub(crate) mod duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
    }
}

pub(crate) mod humantime_serde_compat {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }
}
