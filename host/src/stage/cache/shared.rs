//! A stage cache shared between machines, behind this machine's own: what the stage layer asks
//! of it (the cluster layer keeps it in JetStream). A hit there is only taken when the entry is
//! signed by a key this machine trusts and every output hashes to what the entry says; the
//! outputs are then kept in the local cache too, so the next run does not ask again.

use std::path::Path;

use super::Entry;

/// An entry the shared cache served, and who wrote it.
#[derive(Debug, Clone)]
pub struct SharedHit {
    pub entry: Entry,
    /// The key id of the machine that signed the entry.
    pub signer: String,
}

/// The shared cache, as the stage layer uses it.
#[async_trait::async_trait]
pub trait SharedStageCache: Send + Sync {
    /// Where it is, for messages.
    fn describe(&self) -> String;

    /// Puts the outputs of the entry under `key` into `out_dir` (each fetched by digest and
    /// verified) when a trusted entry is there; `None` on a miss.
    async fn fetch(&self, key: &str, out_dir: &Path) -> anyhow::Result<Option<SharedHit>>;

    /// Shares `entry` and its outputs (files in `out_dir`); `false` when this run writes nothing
    /// to the shared cache (read-only).
    async fn share(&self, entry: &Entry, out_dir: &Path) -> anyhow::Result<bool>;
}
