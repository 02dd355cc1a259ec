//! Stage results on a JetStream stream, where nothing recorded can be replaced and nobody can
//! block a stage by writing first. Every message about a stage of a run — an agent's signed
//! result, the coordinator's signed decision — goes on a subject of its own under the stage's
//! prefix, named by the digest of the message itself; the stream keeps one message per subject
//! and the server refuses a second (`discard_new_per_subject`), so a plain publish can neither
//! overwrite a result nor take the subject an honest one will use. Readers walk the stage's
//! messages in stream order and take the first that opens under the keys they trust and is bound
//! to the job they know. (A plain stream rather than a key-value bucket: Debian's nats-server 2.9
//! answers the client's key-value setup in a form the client cannot read.)

use anyhow::{Context, Result};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use sha2::{Digest, Sha256};

/// The stream results are kept in.
pub const STREAM: &str = "SLUICE_RESULTS";
const SUBJECT_ROOT: &str = "sluice.results";

/// How many of a stage's messages one look reads at most (the rest wait for the next look).
const MAX_READ: usize = 1000;

pub struct Results {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Results")
    }
}

/// The prefix of a stage's subjects for any run id and stage name (matrix names hold spaces
/// and `=`): hashed.
fn prefix(run_id: &str, stage: &str) -> String {
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0])
        .chain_update(stage.as_bytes())
        .finalize();
    format!("{SUBJECT_ROOT}.{}", hex::encode(&digest[..16]))
}

/// One message on a stage's subjects, and where the next look starts.
#[derive(Debug)]
pub struct Recorded {
    pub bytes: Vec<u8>,
    pub sequence: u64,
}

impl Results {
    /// The results stream (made when missing; refused when made otherwise).
    pub async fn open(client: async_nats::Client) -> Result<Self> {
        let js = jetstream::new(client);
        let stream = super::one_per_subject(
            &js,
            STREAM,
            SUBJECT_ROOT,
            "sluice stage results, each message on a subject of its own",
            true,
        )
        .await?;
        Ok(Self { js, stream })
    }

    /// Records a sealed message about `stage` of `run_id`.
    pub async fn record(&self, run_id: &str, stage: &str, sealed: Vec<u8>) -> Result<()> {
        let digest = Sha256::digest(&sealed);
        let subject = format!("{}.{}", prefix(run_id, stage), hex::encode(&digest[..16]));
        let publish = PublishMessage::build()
            .payload(sealed.into())
            .expected_last_subject_sequence(0);
        let sent = self
            .js
            .send_publish(subject, publish)
            .await
            .with_context(|| format!("cannot record the result of `{stage}`"))?;
        match sent.await {
            Ok(_) => Ok(()),
            // The same bytes recorded already (a retry after a lost acknowledgement).
            Err(err) if err.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(())
            }
            Err(err) => Err(anyhow::anyhow!(
                "cannot record the result of `{stage}` in {STREAM}: {err}"
            )),
        }
    }

    /// The messages about `stage` of `run_id` from stream sequence `from` on, in order.
    pub async fn since(&self, run_id: &str, stage: &str, from: u64) -> Result<Vec<Recorded>> {
        let filter = format!("{}.*", prefix(run_id, stage));
        let found = super::messages_since(&self.stream, &filter, from, MAX_READ)
            .await
            .with_context(|| format!("cannot read the results of `{stage}` from {STREAM}"))?;
        Ok(found
            .into_iter()
            .map(|(bytes, sequence)| Recorded { bytes, sequence })
            .collect())
    }
}
