//! The stage cache shared through the cluster's JetStream: an entry (the stage's outputs by
//! digest, what it said, its key's parts) is a signed message on a subject of its own under its
//! key, the outputs are blobs in the object store. A reader takes only an entry signed by a key it
//! trusts (its own, and the writers it was told to trust), and only outputs whose bytes hash to
//! their names — so a client that can write to the stream can make a miss, never a wrong hit;
//! and, one message per subject with the server refusing a second, it can neither replace an
//! entry nor take the subject an honest one will use. A read-only run (a pull request's) takes
//! entries and writes none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use sha2::{Digest, Sha256};

use super::sealed::{open, seal};
use super::{Blobs, NatsOptions};
use crate::stage::cache::{Entry, SharedHit, SharedStageCache};
use crate::trust::signing::{SigningKey, TrustedKey, short_key_id};

/// The stream entries are kept in.
pub const STREAM: &str = "SLUICE_STAGE_CACHE";
const SUBJECT_ROOT: &str = "sluice.cache";
/// What an entry is sealed as.
const KIND: &str = "cache-entry";
/// Entries of one key read at most (each needs a round trip).
const MAX_CANDIDATES: usize = 32;

pub struct SharedCache {
    url: String,
    js: jetstream::Context,
    stream: stream::Stream,
    blobs: Blobs,
    own: Arc<SigningKey>,
    /// Whose entries are taken: this machine's key first.
    trusted: Vec<TrustedKey>,
    read_only: bool,
}

/// How a run uses the shared cache.
#[derive(Debug, Clone)]
pub struct SharedCacheOptions {
    pub nats: NatsOptions,
    /// Fetched outputs are kept here, by digest.
    pub blob_cache: PathBuf,
    /// Signs what this machine writes; trusted for reading.
    pub own: Arc<SigningKey>,
    /// The public key files of other writers whose entries are taken.
    pub writers: Vec<TrustedKey>,
    /// Take entries, write none.
    pub read_only: bool,
}

/// The subjects of the entries under `key` (a sha256 in hex).
fn key_subjects(key: &str) -> String {
    format!("{SUBJECT_ROOT}.{key}")
}

impl SharedCache {
    /// Connects and opens the entries' stream and the blob store (made when missing; a stream
    /// made with other settings is refused).
    pub async fn open(options: SharedCacheOptions) -> Result<Self> {
        let client = options.nats.connect().await?;
        let js = jetstream::new(client.clone());
        let (stream, blobs) = tokio::try_join!(
            super::one_per_subject(
                &js,
                STREAM,
                SUBJECT_ROOT,
                "sluice's shared stage cache: signed entries, one per subject",
                true,
            ),
            Blobs::open(client, &options.blob_cache),
        )?;
        let mut trusted = vec![options.own.public(Path::new("(this machine)"))];
        trusted.extend(options.writers);
        Ok(Self {
            url: options.nats.url,
            js,
            stream,
            blobs,
            own: options.own,
            trusted,
            read_only: options.read_only,
        })
    }

    /// The sealed entries recorded under `key`, oldest first.
    async fn candidates(&self, key: &str) -> Result<Vec<Vec<u8>>> {
        let filter = format!("{}.*", key_subjects(key));
        let found = super::messages_since(&self.stream, &filter, 1, MAX_CANDIDATES)
            .await
            .context("cannot read the shared cache's entries")?;
        Ok(found.into_iter().map(|(bytes, _)| bytes).collect())
    }

    /// Puts every output of `entry` into `out_dir`, each fetched by digest (verified).
    async fn place(&self, entry: &Entry, out_dir: &Path) -> Result<()> {
        for output in &entry.outputs {
            crate::config::names::check_relative_name(&output.name)
                .map_err(|err| anyhow::anyhow!("the entry names an output {err}"))?;
            let dest = out_dir.join(&output.name);
            self.blobs.place(&output.sha256, &dest).await?;
            let size = std::fs::metadata(&dest)
                .with_context(|| format!("cannot read {}", dest.display()))?
                .len();
            anyhow::ensure!(
                size == output.size,
                "output {} is {size} bytes, the entry says {}",
                output.name,
                output.size
            );
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SharedStageCache for SharedCache {
    fn describe(&self) -> String {
        format!(
            "{} ({STREAM}{})",
            self.url,
            if self.read_only { ", read-only" } else { "" }
        )
    }

    async fn fetch(&self, key: &str, out_dir: &Path) -> Result<Option<SharedHit>> {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let trusted: Vec<&TrustedKey> = self.trusted.iter().collect();
        let mut last_error = None;
        for sealed in self.candidates(key).await? {
            // Unsigned, untrusted, or about another key: not an entry this machine takes.
            let Ok(opened) = open::<Entry>(&sealed, KIND, &trusted) else {
                continue;
            };
            if opened.value.key != key {
                continue;
            }
            match self.place(&opened.value, out_dir).await {
                Ok(()) => {
                    return Ok(Some(SharedHit {
                        entry: opened.value,
                        signer: short_key_id(&opened.signer.id),
                    }));
                }
                Err(err) => {
                    clear_folder(out_dir);
                    last_error = Some(err);
                }
            }
        }
        match last_error {
            Some(err) => Err(err.context("a trusted entry's outputs could not be fetched")),
            None => Ok(None),
        }
    }

    async fn share(&self, entry: &Entry, out_dir: &Path) -> Result<bool> {
        if self.read_only {
            return Ok(false);
        }
        for output in &entry.outputs {
            let stored = self.blobs.put_file(&out_dir.join(&output.name)).await?;
            anyhow::ensure!(
                stored.sha256 == output.sha256,
                "output {} changed while it was being shared",
                output.name
            );
        }
        // The local tag is this machine's business; the signature says who wrote the entry.
        let shared = Entry {
            tag: String::new(),
            ..entry.clone()
        };
        let sealed = seal(&self.own, KIND, &shared)?;
        let digest = Sha256::digest(&sealed);
        let subject = format!(
            "{}.{}",
            key_subjects(&entry.key),
            hex::encode(&digest[..16])
        );
        let publish = PublishMessage::build()
            .payload(sealed.into())
            .expected_last_subject_sequence(0);
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .context("cannot write to the shared cache")?;
        match ack.await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(true)
            }
            Err(err) => Err(anyhow::anyhow!("cannot write to {STREAM}: {err}")),
        }
    }
}

/// Empties `folder`, keeping it.
fn clear_folder(folder: &Path) {
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}
