//! Stage results on a JetStream stream, written at most once per stage of a run: the first agent
//! to finish a stage records it, and an agent that comes back late (its job was given to another
//! after it stopped heartbeating) cannot overwrite what was recorded. Each stage has its own
//! subject, and a result is published only if that subject has nothing yet
//! (`Nats-Expected-Last-Subject-Sequence: 0`) — the server decides, so two agents racing cannot
//! both win. (A plain stream rather than a key-value bucket: Debian's nats-server 2.9 answers
//! the client's key-value setup in a form the client cannot read.)

use anyhow::{Context, Result};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use sha2::{Digest, Sha256};

/// The stream results are kept in.
pub const STREAM: &str = "SLUICE_RESULTS";
const SUBJECT_ROOT: &str = "sluice.results";

pub struct Results {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Results")
    }
}

/// A subject for any run id and stage name (matrix names hold spaces and `=`): hashed.
fn subject(run_id: &str, stage: &str) -> String {
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0])
        .chain_update(stage.as_bytes())
        .finalize();
    format!("{SUBJECT_ROOT}.{}", hex::encode(&digest[..16]))
}

impl Results {
    /// The results stream (made when missing).
    pub async fn open(client: async_nats::Client) -> Result<Self> {
        let js = jetstream::new(client);
        let stream = super::one_per_subject(
            &js,
            STREAM,
            SUBJECT_ROOT,
            "sluice stage results, one per stage of a run",
        )
        .await?;
        Ok(Self { js, stream })
    }

    /// Records `stage`'s result for `run_id` unless one is recorded already; whether this one
    /// was.
    pub async fn record_once(&self, run_id: &str, stage: &str, result: Vec<u8>) -> Result<bool> {
        let publish = PublishMessage::build()
            .payload(result.into())
            .expected_last_subject_sequence(0);
        let sent = self
            .js
            .send_publish(subject(run_id, stage), publish)
            .await
            .with_context(|| format!("cannot record the result of `{stage}`"))?;
        match sent.await {
            Ok(_) => Ok(true),
            // The server refuses a second result for the subject.
            Err(err) if err.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(false)
            }
            Err(err) => Err(anyhow::anyhow!(
                "cannot record the result of `{stage}` in {STREAM}: {err}"
            )),
        }
    }

    /// The recorded result of `stage` in `run_id`, if any.
    pub async fn get(&self, run_id: &str, stage: &str) -> Result<Option<Vec<u8>>> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self
            .stream
            .get_last_raw_message_by_subject(&subject(run_id, stage))
            .await
        {
            Ok(message) => Ok(Some(message.payload.to_vec())),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(anyhow::anyhow!(
                "cannot read the result of `{stage}` from {STREAM}: {err}"
            )),
        }
    }
}
