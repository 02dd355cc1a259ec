//! Where distributed runs are listed: every coordinator keeps its run's latest state on a
//! JetStream stream (one subject per run, only the last message kept), so `sluice runs --nats`
//! shows the runs of every machine — which are going on, which stopped, where their folders are.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

pub use super::wire::RunState;

/// The stream run states are kept in.
pub const STREAM: &str = "SLUICE_RUNS";
const SUBJECT_ROOT: &str = "sluice.runs";

#[derive(Clone)]
pub struct RunBoard {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl std::fmt::Debug for RunBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunBoard")
    }
}

impl RunBoard {
    /// The board (made when missing).
    pub async fn open(client: async_nats::Client) -> Result<Self> {
        let js = jetstream::new(client);
        let stream = super::one_per_subject(
            &js,
            STREAM,
            SUBJECT_ROOT,
            "sluice runs, the latest state of each",
            false,
        )
        .await?;
        Ok(Self { js, stream })
    }

    /// Replaces the run's state on the board.
    pub async fn post(&self, state: &RunState) -> Result<()> {
        let subject = format!("{SUBJECT_ROOT}.{}", super::wire::token(&state.run_id));
        self.js
            .publish(subject, serde_json::to_vec(state)?.into())
            .await
            .context("cannot post the run's state")?
            .await
            .context("the run board did not confirm the run's state")?;
        Ok(())
    }

    /// Every run on the board, newest first.
    pub async fn list(&self) -> Result<Vec<RunState>> {
        let pending = self.stream.get_info().await?.state.messages;
        let mut runs = Vec::new();
        if pending == 0 {
            return Ok(runs);
        }
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::LastPerSubject,
                filter_subject: format!("{SUBJECT_ROOT}.>"),
                ..Default::default()
            })
            .await
            .context("cannot read the run board")?;
        let mut messages = consumer
            .messages()
            .await
            .context("cannot read the run board")?;
        while let Some(message) = messages.next().await {
            let message =
                message.map_err(|err| anyhow::anyhow!("cannot read the run board: {err}"))?;
            if let Ok(state) = serde_json::from_slice::<RunState>(&message.payload) {
                runs.push(state);
            }
            let left = message.info().map(|info| info.pending).unwrap_or(0);
            if left == 0 {
                break;
            }
        }
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        Ok(runs)
    }
}
