//! Plugins and artifacts in the JetStream object store, named by their sha256: stored once
//! however many runs send them, fetched into a local cache, and verified on every read — a blob
//! whose bytes do not hash to its name is never used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, object_store};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The object store bucket sluice keeps blobs in.
pub const BUCKET: &str = "sluice-blobs";

/// No bytes of a blob for this long: its chunks are gone (stored again meanwhile).
const STALL: std::time::Duration = std::time::Duration::from_secs(5);
/// Reads of one blob before giving up.
const FETCH_ATTEMPTS: u32 = 4;

/// A read that got no bytes for [`STALL`].
#[derive(Debug, thiserror::Error)]
#[error("the blob's bytes stopped coming for {} s (it was being stored again); tried {FETCH_ATTEMPTS} times", STALL.as_secs())]
struct Stalled;

/// A blob put into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    /// False when the store already had it (nothing was sent).
    pub uploaded: bool,
}

pub struct Blobs {
    store: object_store::ObjectStore,
    /// Where fetched blobs are kept, one file per digest (read-only files).
    cache: PathBuf,
    /// Cached blobs this process has hashed, by file identity: not hashed again while the
    /// file's device, inode, size and mtime stay the same.
    verified: std::sync::Mutex<std::collections::HashMap<String, Identity>>,
}

/// What says a cached file is the one that was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Identity {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.is_file().then(|| Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("cache", &self.cache).finish()
    }
}

fn object_name(sha256: &str) -> String {
    format!("sha256-{sha256}")
}

impl Blobs {
    /// The blob bucket (made when missing), with fetched blobs cached under `cache`.
    pub async fn open(client: async_nats::Client, cache: &Path) -> Result<Self> {
        let js = jetstream::new(client);
        let store = match js.get_object_store(BUCKET).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: BUCKET.into(),
                    description: Some("sluice plugins and artifacts, by sha256".into()),
                    ..Default::default()
                })
                .await
                .with_context(|| {
                    format!("cannot open the NATS object store {BUCKET}: is JetStream enabled (nats-server -js)?")
                })?,
        };
        std::fs::create_dir_all(cache)
            .with_context(|| format!("cannot create {}", cache.display()))?;
        Ok(Self {
            store,
            cache: cache.to_path_buf(),
            verified: std::sync::Mutex::default(),
        })
    }

    /// Stores the file at `path` under its digest, unless the store has it already.
    pub async fn put_file(&self, path: &Path) -> Result<Stored> {
        let (sha256, size) = hash_file(path).await?;
        let name = object_name(&sha256);
        if let Ok(info) = self.store.info(&name).await
            && !info.deleted
            && info.size as u64 == size
        {
            return Ok(Stored {
                sha256,
                size,
                uploaded: false,
            });
        }
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        self.store
            .put(name.as_str(), &mut file)
            .await
            .with_context(|| format!("cannot store {} in {BUCKET}", path.display()))?;
        Ok(Stored {
            sha256,
            size,
            uploaded: true,
        })
    }

    /// The blob named `sha256` as a local file: from the cache when the file there still hashes
    /// to its name, otherwise fetched from the store (streamed, hashed as it arrives).
    pub async fn fetch(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{sha256:?} is not a sha256 digest");
        }
        let cached = self.cache.join(sha256);
        if self.still_verified(sha256, &cached) {
            return Ok(cached);
        }
        if cached.is_file() && hash_file(&cached).await.is_ok_and(|(d, _)| d == sha256) {
            self.remember(sha256, &cached);
            return Ok(cached);
        }
        // Two machines storing the same blob at once is harmless (same bytes), but the second
        // store drops the first one's chunks, and a read of those chunks then waits for ever:
        // a read that stalls starts over from the object's current chunks.
        let mut attempt = 1;
        loop {
            match self.download(sha256, &cached).await {
                Err(err) if err.is::<Stalled>() && attempt < FETCH_ATTEMPTS => attempt += 1,
                done => {
                    done?;
                    self.remember(sha256, &cached);
                    return Ok(cached);
                }
            }
        }
    }

    async fn download(&self, sha256: &str, cached: &Path) -> Result<()> {
        let mut object = self.store.get(object_name(sha256)).await.with_context(|| {
            format!("no blob sha256:{sha256} in the NATS object store {BUCKET}")
        })?;
        let temp = tempfile::NamedTempFile::new_in(&self.cache)
            .with_context(|| format!("cannot write into {}", self.cache.display()))?;
        let mut out = tokio::fs::File::from_std(temp.reopen()?);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = tokio::time::timeout(STALL, object.read(&mut buffer))
                .await
                .map_err(|_| Stalled)?
                .with_context(|| format!("cannot read blob sha256:{sha256} from {BUCKET}"))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read]).await?;
        }
        out.flush().await?;
        let got = hex::encode(hasher.finalize());
        if got != sha256 {
            bail!(
                "blob sha256:{sha256} from {BUCKET} hashes to {got}: refused (the store's copy is damaged or was replaced)"
            );
        }
        keep_read_only(temp, cached)
    }

    /// Whether the cached file for `sha256` was hashed by this process and has not changed since.
    fn still_verified(&self, sha256: &str, cached: &Path) -> bool {
        let Ok(verified) = self.verified.lock() else {
            return false;
        };
        verified
            .get(sha256)
            .is_some_and(|known| Identity::of(cached).as_ref() == Some(known))
    }

    fn remember(&self, sha256: &str, cached: &Path) {
        if let (Some(identity), Ok(mut verified)) = (Identity::of(cached), self.verified.lock()) {
            verified.insert(sha256.to_string(), identity);
        }
    }

    /// Where blob `sha256` is kept in the cache (whether or not it is there).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.cache.join(sha256)
    }

    /// The cached file for `sha256` when it is there and verified (no fetch).
    pub async fn cached(&self, sha256: &str) -> Option<PathBuf> {
        let cached = self.cache.join(sha256);
        if self.still_verified(sha256, &cached) {
            return Some(cached);
        }
        if cached.is_file() && hash_file(&cached).await.is_ok_and(|(d, _)| d == sha256) {
            self.remember(sha256, &cached);
            return Some(cached);
        }
        None
    }

    /// Keeps the files of a fetched pack in the cache — each `(sha256, range)` of `bytes` only
    /// when it hashes to its name, refused otherwise — on a blocking thread (hashing and
    /// writing many files is CPU and disk work).
    pub async fn adopt(
        &self,
        bytes: Vec<u8>,
        files: Vec<(String, std::ops::Range<usize>)>,
    ) -> Result<()> {
        let cache = self.cache.clone();
        let kept = tokio::task::spawn_blocking(move || -> Result<Vec<(String, Identity)>> {
            let mut kept = Vec::with_capacity(files.len());
            for (sha256, range) in files {
                let slice = bytes
                    .get(range)
                    .context("a pack is shorter than its index")?;
                let got = hex::encode(Sha256::digest(slice));
                if got != sha256 {
                    bail!("a packed file named sha256:{sha256} hashes to {got}: refused");
                }
                let cached = cache.join(&sha256);
                write_new_read_only(&cached, slice)?;
                if let Some(identity) = Identity::of(&cached) {
                    kept.push((sha256, identity));
                }
            }
            Ok(kept)
        })
        .await
        .context("unpacking a pack stopped")??;
        if let Ok(mut verified) = self.verified.lock() {
            verified.extend(kept);
        }
        Ok(())
    }

    /// Where the last shipment of the workspace at `folder` is remembered (beside the cache).
    pub fn memo_of(&self, folder: &Path) -> PathBuf {
        let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        let name = crate::model::digests::sha256_bytes(absolute.as_os_str().as_encoded_bytes());
        self.cache
            .with_file_name(format!(
                "{}-shipments",
                self.cache
                    .file_name()
                    .map_or("blobs".into(), |n| n.to_string_lossy())
            ))
            .join(&name[..32])
    }

    /// Whether the store holds an object named `name` (a pack) or `sha256-…` (a blob).
    pub async fn holds(&self, name: &str) -> bool {
        self.store.info(name).await.is_ok_and(|info| !info.deleted)
    }

    /// Stores `bytes` as object `name` (a pack of files, named by its index) unless the store
    /// has it; whether it was sent.
    pub async fn put_pack(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        if self.holds(name).await {
            return Ok(false);
        }
        let mut reader = bytes;
        self.store
            .put(name, &mut reader)
            .await
            .with_context(|| format!("cannot store {name} in {BUCKET}"))?;
        Ok(true)
    }

    /// The bytes of object `name` (a pack), at most `max` of them. Not verified here: every
    /// file taken out of it is ([`Self::adopt`]).
    pub async fn fetch_pack(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let mut object = self
            .store
            .get(name)
            .await
            .with_context(|| format!("no {name} in the NATS object store {BUCKET}"))?;
        let mut bytes = Vec::new();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = tokio::time::timeout(STALL, object.read(&mut buffer))
                .await
                .map_err(|_| Stalled)?
                .with_context(|| format!("cannot read {name} from {BUCKET}"))?;
            if read == 0 {
                return Ok(bytes);
            }
            if bytes.len() as u64 + read as u64 > max {
                bail!("{name} in {BUCKET} is larger than its index says");
            }
            bytes.extend_from_slice(&buffer[..read]);
        }
    }

    /// Puts a copy of blob `sha256` at `dest` (its folder made): the bytes were verified when
    /// fetched, and the copy is the caller's to hand out — the cache stays untouched.
    pub async fn place(&self, sha256: &str, dest: &Path) -> Result<()> {
        let source = self.fetch(sha256).await?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        tokio::fs::copy(&source, dest)
            .await
            .with_context(|| format!("cannot write {}", dest.display()))?;
        // The cache's files are read-only; the copy is the caller's.
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o644)).await?;
        Ok(())
    }

    /// How many blobs the store holds.
    pub async fn count(&self) -> Result<usize> {
        use futures_util::StreamExt;
        let mut list = self.store.list().await.context("cannot list the blobs")?;
        let mut count = 0;
        while let Some(entry) = list.next().await {
            if entry.is_ok_and(|info| !info.deleted) {
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Writes verified `bytes` as the new read-only cache file `cached`, straight under its name (one
/// file made, not a temporary one renamed: a half-written file left by a crash hashes wrong and
/// is fetched again). A file already there is replaced.
fn write_new_read_only(cached: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(cached)
    };
    let mut file = match create() {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(cached)
                .with_context(|| format!("cannot replace {}", cached.display()))?;
            create()
        }
        other => other,
    }
    .with_context(|| format!("cannot write {}", cached.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("cannot write {}", cached.display()))?;
    Ok(())
}

/// Puts a verified temporary file in the cache as `cached`, read-only: jobs get hard links to
/// it, so nothing that runs there may change it.
fn keep_read_only(temp: tempfile::NamedTempFile, cached: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o444))?;
    temp.persist(cached)
        .map_err(|err| err.error)
        .with_context(|| format!("cannot keep {}", cached.display()))?;
    Ok(())
}

async fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}
