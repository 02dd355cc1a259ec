//! Guarding what comes back from a registry: downloads are capped in size, and every byte must
//! hash to the digest it was fetched by.

use crate::model::artifacts::sha256_bytes;

/// The largest blob sluice downloads: a hostile registry must not fill memory or disk.
pub const MAX_BLOB_BYTES: usize = 512 << 20;

/// The largest manifest sluice reads (the size the OCI distribution spec says registries should
/// accept): a plugin's manifest is well under 2 KiB.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Collects a download, refusing to grow past [`MAX_BLOB_BYTES`].
#[derive(Default)]
pub(crate) struct CappedBuffer {
    pub bytes: Vec<u8>,
    pub exceeded: bool,
}

impl tokio::io::AsyncWrite for CappedBuffer {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > MAX_BLOB_BYTES {
            self.exceeded = true;
            return std::task::Poll::Ready(Err(std::io::Error::other("blob too large")));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Bytes from the registry that do not hash to the digest they were fetched by.
#[derive(Debug, thiserror::Error)]
#[error(
    "the registry returned {what} {expected} with content whose digest is {actual}: it was changed after it was published (or corrupted); refusing it"
)]
pub struct DigestMismatch {
    pub what: &'static str,
    pub expected: String,
    pub actual: String,
}

impl DigestMismatch {
    /// Refuses `bytes` unless they hash to `digest`.
    pub(crate) fn check(what: &'static str, digest: &str, bytes: &[u8]) -> Result<(), Self> {
        let actual = format!("sha256:{}", sha256_bytes(bytes));
        if actual == digest {
            Ok(())
        } else {
            Err(Self {
                what,
                expected: digest.to_string(),
                actual,
            })
        }
    }
}
