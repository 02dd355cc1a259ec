//! Stage jobs on a JetStream work queue. A job needing labels (`runs_on = ["linux", "cargo"]`)
//! is published on a subject made of its sorted labels; every set of labels has one durable pull
//! consumer, shared by all the agents that carry those labels, so a job reaches only an agent
//! that can run it and is taken by exactly one. An agent acks a job when done and heartbeats it
//! meanwhile; a job whose agent dies is delivered again after the ack wait, up to a limit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;

/// The work-queue stream.
pub const STREAM: &str = "SLUICE_JOBS";
const SUBJECT_ROOT: &str = "sluice.jobs";

/// How the queue treats a job nobody finishes.
#[derive(Debug, Clone, Copy)]
pub struct Redelivery {
    /// A job not acked (nor heartbeaten) within this is given to another agent.
    pub ack_wait: Duration,
    /// Deliveries before the job is left for the coordinator to report as an error.
    pub max_deliver: i64,
}

impl Default for Redelivery {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 3,
        }
    }
}

/// Labels as one subject token each: lower-case letters, digits, `-` and `_`.
pub fn check_label(label: &str) -> Result<()> {
    if label.is_empty()
        || !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        bail!("label {label:?} must be lower-case letters, digits, `-` or `_`");
    }
    Ok(())
}

/// The subject for jobs needing `labels` (`sluice.jobs.any` when none).
fn subject(labels: &BTreeSet<String>) -> String {
    if labels.is_empty() {
        format!("{SUBJECT_ROOT}.any")
    } else {
        let joined: Vec<&str> = labels.iter().map(String::as_str).collect();
        format!("{SUBJECT_ROOT}.set.{}", joined.join("."))
    }
}

/// The durable consumer for jobs needing exactly `labels` (named by its subject's digest: a
/// consumer name cannot hold dots).
fn consumer_name(labels: &BTreeSet<String>) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(subject(labels).as_bytes());
    format!("jobs-{}", hex::encode(&digest[..12]))
}

/// Every subset of `labels`: the requirement sets an agent with them can serve.
fn subsets(labels: &BTreeSet<String>) -> Result<Vec<BTreeSet<String>>> {
    let all: Vec<&String> = labels.iter().collect();
    if all.len() > 8 {
        bail!("an agent takes at most 8 labels ({} given)", all.len());
    }
    Ok((0u32..(1 << all.len()))
        .map(|mask| {
            all.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, l)| (*l).clone())
                .collect()
        })
        .collect())
}

/// The job queue, as the coordinator and the agents see it.
#[derive(Clone)]
pub struct JobQueue {
    js: jetstream::Context,
    stream: stream::Stream,
    redelivery: Redelivery,
    /// Consumers opened so far, by name: opened once, not on every poll.
    consumers: Arc<tokio::sync::Mutex<HashMap<String, Consumer>>>,
}

type Consumer = consumer::Consumer<consumer::pull::Config>;

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("redelivery", &self.redelivery)
            .finish()
    }
}

/// A job taken by an agent: its payload, how many times it was delivered, and the handle to
/// heartbeat and finish it.
pub struct TakenJob {
    message: jetstream::Message,
    pub payload: Vec<u8>,
    pub delivered: i64,
    /// The queue's delivery limit: the job is not delivered after this one.
    pub max_deliver: i64,
    /// Its place in the queue's stream: the same for every delivery of one published job.
    pub sequence: u64,
}

impl std::fmt::Debug for TakenJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakenJob")
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl TakenJob {
    /// Still working on it: the ack wait starts again.
    pub async fn heartbeat(&self) -> Result<()> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|err| anyhow::anyhow!("cannot heartbeat the job: {err}"))
    }

    /// Done (whatever the stage's outcome): the job leaves the queue.
    pub async fn finish(&self) -> Result<()> {
        self.message
            .double_ack()
            .await
            .map_err(|err| anyhow::anyhow!("cannot acknowledge the job: {err}"))
    }
}

impl JobQueue {
    /// The queue (made when missing).
    pub async fn open(client: async_nats::Client, redelivery: Redelivery) -> Result<Self> {
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{SUBJECT_ROOT}.>")],
                retention: stream::RetentionPolicy::WorkQueue,
                description: Some("sluice stage jobs".into()),
                ..Default::default()
            })
            .await
            .context("cannot open the sluice job queue: is JetStream enabled (nats-server -js)?")?;
        Ok(Self {
            js,
            stream,
            redelivery,
            consumers: Arc::default(),
        })
    }

    /// Queues a job for an agent that has every one of `labels`.
    pub async fn publish(&self, labels: &BTreeSet<String>, payload: Vec<u8>) -> Result<()> {
        self.publish_once(labels, None, payload).await
    }

    /// Queues a job; with `id`, a job with the same id queued in the last two minutes is not
    /// queued again (the server's duplicate window: a coordinator that restarts does not give
    /// an agent the same stage twice).
    pub async fn publish_once(
        &self,
        labels: &BTreeSet<String>,
        id: Option<&str>,
        payload: Vec<u8>,
    ) -> Result<()> {
        for label in labels {
            check_label(label)?;
        }
        // The consumer exists before the job, so the job is kept for it.
        self.consumer(labels).await?;
        let mut message = jetstream::message::PublishMessage::build().payload(payload.into());
        if let Some(id) = id {
            message = message.message_id(id);
        }
        self.js
            .send_publish(subject(labels), message)
            .await
            .context("cannot queue the job")?
            .await
            .context("the job queue did not confirm the job")?;
        Ok(())
    }

    async fn consumer(&self, labels: &BTreeSet<String>) -> Result<Consumer> {
        let name = consumer_name(labels);
        if let Some(consumer) = self.consumers.lock().await.get(&name) {
            return Ok(consumer.clone());
        }
        let consumer = self
            .stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: subject(labels),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.redelivery.ack_wait,
                    max_deliver: self.redelivery.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot open the job consumer {name}"))?;
        self.consumers.lock().await.insert(name, consumer.clone());
        Ok(consumer)
    }

    /// The next job an agent with `labels` can run, waiting at most `wait`.
    pub async fn take(
        &self,
        labels: &BTreeSet<String>,
        wait: Duration,
    ) -> Result<Option<TakenJob>> {
        let sets = subsets(labels)?;
        let deadline = tokio::time::Instant::now() + wait;
        // One long poll when the agent has no labels; with labels, a short one per label set,
        // so a round over all of them stays near a fifth of a second.
        let poll = (Duration::from_millis(200) / sets.len() as u32)
            .clamp(Duration::from_millis(20), Duration::from_millis(200));
        loop {
            for set in &sets {
                let consumer = self.consumer(set).await?;
                let max_deliver = consumer.cached_info().config.max_deliver;
                let mut batch = consumer
                    .fetch()
                    .max_messages(1)
                    .expires(poll)
                    .messages()
                    .await
                    .map_err(|err| anyhow::anyhow!("cannot fetch a job: {err}"))?;
                if let Some(message) = batch.next().await {
                    let message =
                        message.map_err(|err| anyhow::anyhow!("cannot fetch a job: {err}"))?;
                    let (delivered, sequence) = message
                        .info()
                        .map(|info| (info.delivered, info.stream_sequence))
                        .unwrap_or((1, 0));
                    return Ok(Some(TakenJob {
                        payload: message.payload.to_vec(),
                        delivered,
                        max_deliver,
                        sequence,
                        message,
                    }));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}
