//! Distributed runs on NATS JetStream, both ends and the transport between them: connecting
//! with the options a NATS deployment asks for; blobs (plugins, artifacts) stored and fetched by
//! digest; stage jobs on a work queue, routed by labels and given again when an agent dies;
//! stage results recorded at most once; a stage cache shared between machines; every message a type in [`wire`]. The [`coordinator`]
//! sends a run's stages out; an [`agent`] runs them.

pub mod agent;
pub mod blobs;
pub mod board;
pub mod connect;
pub mod coordinator;
pub mod identity;
pub mod jobs;
pub mod remote;
pub mod results;
pub mod sealed;
pub mod shared_cache;
pub mod shippable;
pub mod wire;
pub mod workspace;

pub use blobs::{Blobs, Stored};
pub use board::{RunBoard, RunState};
pub use connect::NatsOptions;
pub use identity::ClusterTrust;
pub use jobs::{JobQueue, Redelivery, TakenJob};
pub use remote::Remote;
pub use results::Results;
pub use shared_cache::{SharedCache, SharedCacheOptions};

/// A stream keeping one message per subject under `subject_root` (made when missing): what the
/// results and the run board are, one subject per stage or per run. With `refuse_second`, the
/// server refuses a second message on a subject (nothing recorded can be replaced). A stream
/// someone made beforehand with other settings is refused, not used.
pub(crate) async fn one_per_subject(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject_root: &str,
    description: &str,
    refuse_second: bool,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    use anyhow::Context as _;
    use async_nats::jetstream::stream::DiscardPolicy;
    let wanted = async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![format!("{subject_root}.>")],
        description: Some(description.into()),
        max_messages_per_subject: 1,
        discard: if refuse_second {
            DiscardPolicy::New
        } else {
            DiscardPolicy::Old
        },
        discard_new_per_subject: refuse_second,
        ..Default::default()
    };
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .with_context(|| {
            format!("cannot open the NATS stream {name}: is JetStream enabled (nats-server -js)?")
        })?;
    let have = stream
        .info()
        .await
        .with_context(|| format!("cannot read the settings of the NATS stream {name}"))?
        .config
        .clone();
    check_stream(&have, &wanted)?;
    Ok(stream)
}

/// The payloads and sequences of the messages on `filter` in `stream`, from sequence `from` on,
/// in stream order, at most `max` of them: how the results and the shared cache walk the
/// messages recorded under one stage or one key.
pub(crate) async fn messages_since(
    stream: &async_nats::jetstream::stream::Stream,
    filter: &str,
    from: u64,
    max: usize,
) -> anyhow::Result<Vec<(Vec<u8>, u64)>> {
    use async_nats::jetstream::stream::RawMessageErrorKind;
    let mut found = Vec::new();
    let mut next = from.max(1);
    while found.len() < max {
        match stream.get_first_raw_message_by_subject(filter, next).await {
            Ok(message) => {
                next = message.sequence + 1;
                found.push((message.payload.to_vec(), message.sequence));
            }
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => break,
            Err(err) => anyhow::bail!("{err}"),
        }
    }
    Ok(found)
}

/// Refuses a stream whose settings are not the ones sluice makes it with: one message per
/// subject, the same discard rule, nothing aged out, the same subjects.
pub(crate) fn check_stream(
    have: &async_nats::jetstream::stream::Config,
    wanted: &async_nats::jetstream::stream::Config,
) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    if have.subjects != wanted.subjects {
        wrong.push(format!("subjects {:?}", have.subjects));
    }
    if have.max_messages_per_subject != wanted.max_messages_per_subject {
        wrong.push(format!(
            "max_messages_per_subject {}",
            have.max_messages_per_subject
        ));
    }
    if have.discard != wanted.discard
        || have.discard_new_per_subject != wanted.discard_new_per_subject
    {
        wrong.push(format!(
            "discard {:?} (per subject: {})",
            have.discard, have.discard_new_per_subject
        ));
    }
    if have.retention != wanted.retention {
        wrong.push(format!("retention {:?}", have.retention));
    }
    if !have.max_age.is_zero() {
        wrong.push(format!("max_age {:?}", have.max_age));
    }
    if have.max_messages > 0 || have.max_bytes > 0 {
        wrong.push(format!(
            "max_messages {} / max_bytes {}",
            have.max_messages, have.max_bytes
        ));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the NATS stream {} exists with settings sluice does not make it with ({}); refusing to use it\n  = help: if nobody else uses it, remove it (`nats stream rm {}`) and sluice makes it again",
        wanted.name,
        wrong.join(", "),
        wanted.name
    )
}
