//! The run's live events from its agents, taken only for stages out on an agent now, each
//! string made display-safe before any reporter sees it.

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{MAX_EVENT_LINE, Notice, Running};
use crate::cluster::wire::{RunEvent, StageEvent};
use crate::model::events::{Event, EventSink, LogSource};
use crate::model::layout::is_artifact_rel;
use crate::model::text::{MAX_FIELD_BYTES, one_line};

/// Takes the run's live events from the agents: only for stages out on an agent now, every
/// string made display-safe before any reporter sees it (anyone on NATS can publish here).
pub(super) async fn listen(
    mut subscription: async_nats::Subscriber,
    notify: broadcast::Sender<Notice>,
    running: Running,
    events: EventSink,
) {
    while let Some(message) = subscription.next().await {
        let Ok(RunEvent { stage, event }) = serde_json::from_slice(&message.payload) else {
            continue;
        };
        if !running.lock().is_ok_and(|r| r.contains(&stage)) {
            continue;
        }
        match event {
            StageEvent::Taken { agent, delivery } => {
                let _ = notify.send(Notice::Taken(stage.clone()));
                let agent = one_line(&agent, MAX_FIELD_BYTES);
                events.emit(Event::Log {
                    stage,
                    source: LogSource::Info,
                    line: if delivery > 1 {
                        format!("sluice: running on agent {agent} (delivery {delivery}: the agent before stopped)")
                    } else {
                        format!("sluice: running on agent {agent}")
                    },
                });
            }
            StageEvent::Log { source, line } => events.emit(Event::Log {
                stage,
                source,
                line: one_line(&line, MAX_EVENT_LINE),
            }),
            StageEvent::Artifact { artifact } => {
                if artifact.stage == stage
                    && is_artifact_rel(&artifact.stage, &artifact.name, &artifact.path)
                    && crate::model::text::is_display_safe(&artifact.name)
                {
                    events.emit(Event::ArtifactWritten { stage, artifact });
                }
            }
            StageEvent::Recorded => {
                let _ = notify.send(Notice::Recorded(stage));
            }
        }
    }
}

/// A stage's name in the set of stages out on agents while this lives.
pub(super) struct OutOnAgent {
    running: Running,
    stage: String,
}

impl OutOnAgent {
    pub(super) fn new(running: &Running, stage: &str) -> Self {
        if let Ok(mut set) = running.lock() {
            set.insert(stage.to_string());
        }
        Self {
            running: running.clone(),
            stage: stage.to_string(),
        }
    }
}

impl Drop for OutOnAgent {
    fn drop(&mut self) {
        if let Ok(mut set) = self.running.lock() {
            set.remove(&self.stage);
        }
    }
}
