//! What an agent says to, and hears from, the coordinator while a stage runs: live events (log
//! lines, artifacts, "taken") out on the run's events subject, and signed stops in.

use std::sync::mpsc;

use anyhow::{Context, Result};
use futures_util::StreamExt;

use super::Agent;
use crate::cluster::sealed::open;
use crate::cluster::wire::{
    KIND_STOP, RunEvent, StageEvent, StopStage, cancel_subject, events_subject,
};
use crate::model::events::{Event, EventSink};
use crate::model::text::{MAX_MESSAGE_BYTES, one_line};
use crate::stage::Interrupt;
use crate::trust::signing::TrustedKey;

impl Agent<'_> {
    pub(super) async fn publish(&self, run_id: &str, stage: &str, event: StageEvent) {
        let event = RunEvent {
            stage: stage.to_string(),
            event,
        };
        if let Ok(bytes) = serde_json::to_vec(&event) {
            let _ = self
                .remote
                .client()
                .publish(events_subject(run_id), bytes.into())
                .await;
        }
    }

    /// Cancels the stage when its coordinator says so (fail-fast, Ctrl-C there).
    pub(super) async fn listen_for_cancel(
        &self,
        run_id: &str,
        stage: &str,
        cancel: &Interrupt,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let mut subscription = self
            .remote
            .client()
            .subscribe(cancel_subject(run_id))
            .await
            .context("cannot listen for the run being stopped")?;
        let (run_id, stage, cancel) = (run_id.to_string(), stage.to_string(), cancel.clone());
        let trusted = self.remote.trust().coordinators.clone();
        Ok(self.handle.spawn(async move {
            let trusted: Vec<&TrustedKey> = trusted.iter().collect();
            while let Some(message) = subscription.next().await {
                // Only the run's coordinator (a key this agent trusts) stops a stage.
                let Ok(stop) = open::<StopStage>(&message.payload, KIND_STOP, &trusted) else {
                    continue;
                };
                let stop = stop.value;
                if stop.stage == stage && stop.run_id == run_id {
                    let reason = stop
                        .reason
                        .as_deref()
                        .map_or("stopped by the coordinator".into(), |r| {
                            one_line(r, MAX_MESSAGE_BYTES)
                        });
                    cancel.trigger_because(&reason);
                }
            }
        }))
    }

    /// An event sink whose log lines and artifacts go to the run's coordinator as they happen.
    pub(super) fn forward_events(&self, run_id: &str) -> (EventSink, std::thread::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel::<Event>();
        let client = self.remote.client().clone();
        let subject = events_subject(run_id);
        let handle = self.handle.clone();
        let forwarder = std::thread::spawn(move || {
            for event in receiver {
                let (stage, event) = match event {
                    Event::Log {
                        stage,
                        source,
                        line,
                    } => (stage, StageEvent::Log { source, line }),
                    Event::ArtifactWritten { stage, artifact } => {
                        (stage, StageEvent::Artifact { artifact })
                    }
                    _ => continue,
                };
                if let Ok(bytes) = serde_json::to_vec(&RunEvent { stage, event }) {
                    let _ = handle.block_on(client.publish(subject.clone(), bytes.into()));
                }
            }
            let _ = handle.block_on(client.flush());
        });
        (EventSink::new(sender), forwarder)
    }
}
