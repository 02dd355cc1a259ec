//! Distributed runs on NATS JetStream, both ends and the transport between them: connecting
//! with the options a NATS deployment asks for; blobs (plugins, artifacts) stored and fetched by
//! digest; stage jobs on a work queue, routed by labels and given again when an agent dies;
//! stage results recorded at most once; every message a type in [`wire`]. The [`coordinator`]
//! sends a run's stages out; an [`agent`] runs them.

pub mod agent;
pub mod blobs;
pub mod board;
pub mod connect;
pub mod coordinator;
pub mod jobs;
pub mod remote;
pub mod results;
pub mod wire;

pub use blobs::{Blobs, Stored};
pub use board::{RunBoard, RunState};
pub use connect::NatsOptions;
pub use jobs::{JobQueue, Redelivery, TakenJob};
pub use remote::Remote;
pub use results::Results;

/// A stream keeping one message per subject under `subject_root` (made when missing): what the
/// results and the run board are, one subject per stage or per run.
pub(crate) async fn one_per_subject(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject_root: &str,
    description: &str,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    use anyhow::Context as _;
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{subject_root}.>")],
        description: Some(description.into()),
        max_messages_per_subject: 1,
        ..Default::default()
    })
    .await
    .with_context(|| {
        format!("cannot open the NATS stream {name}: is JetStream enabled (nats-server -js)?")
    })
}
