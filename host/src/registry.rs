//! Talks to an OCI registry (distribution v2) for plugin sharing: a plugin travels as a Wasm OCI
//! artifact (CNCF layout: config `application/vnd.wasm.config.v0+json`, one `application/wasm`
//! layer); its signatures travel as DSSE envelopes in a manifest tagged `sha256-<hex>.sig`
//! (the tag scheme cosign uses, since distribution 2.x has no referrers API). Every byte that
//! comes back is hashed here and refused unless it matches the digest asked for.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::artifacts::sha256_bytes;
use crate::signing::Envelope;

pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
pub const DSSE_LAYER_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURES_CONFIG_MEDIA_TYPE: &str = "application/vnd.sluice.signatures.config.v1+json";
/// The scheme of a registry plugin reference in `pipeline.toml`.
pub const SCHEME: &str = "oci://";

/// `oci://registry[:port]/repository[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a manifest digest itself.
    pub digest: Option<String>,
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl PluginRef {
    /// Parses a reference; `oci://` is optional (the CLI accepts both).
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.trim().strip_prefix(SCHEME).unwrap_or(text.trim());
        let (name, digest) = match body.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_string())),
            None => (body, None),
        };
        if let Some(digest) = &digest {
            check_digest(digest)?;
        }
        let (registry, rest) = name.split_once('/').ok_or(
            "a reference names a registry and a repository, e.g. oci://127.0.0.1:5000/acme/checkout:1.2.0",
        )?;
        if registry.is_empty()
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("`{registry}` is not a registry host[:port]"));
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (rest, None),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !repo_ok {
            return Err(format!(
                "`{repository}` is not a repository name (lower-case letters, digits, `.`, `_`, `-`, separated by `/`)"
            ));
        }
        if let Some(tag) = &tag {
            let tag_ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !tag_ok {
                return Err(format!(
                    "`{tag}` is not a tag (letters, digits, `.`, `_`, `-`)"
                ));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(
                "the reference has no version: add a tag (`:1.2.0`) or a digest (`@sha256:...`)"
                    .to_string(),
            );
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `registry/repository`, the name a signature's subject carries.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest`.
    fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    fn tagged(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => Ok(()),
        _ => Err(format!(
            "`{digest}` is not a digest; write `sha256:` and 64 hex digits"
        )),
    }
}

/// An OCI image manifest, the fields sluice reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: format!("sha256:{}", sha256_bytes(bytes)),
            size: bytes.len() as u64,
        }
    }
}

impl Manifest {
    /// The single `application/wasm` layer of a Wasm OCI artifact, or why this is not one.
    pub fn wasm_layer(&self) -> Result<&Descriptor, String> {
        if self.config.media_type != WASM_CONFIG_MEDIA_TYPE {
            return Err(format!(
                "it is not a Wasm OCI artifact: its config media type is `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`",
                self.config.media_type
            ));
        }
        let wasm: Vec<&Descriptor> = self
            .layers
            .iter()
            .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
            .collect();
        match wasm.as_slice() {
            [layer] => {
                check_digest(&layer.digest)?;
                Ok(layer)
            }
            [] => Err(format!("it has no `{WASM_LAYER_MEDIA_TYPE}` layer")),
            _ => Err(format!(
                "it has {} `{WASM_LAYER_MEDIA_TYPE}` layers; a plugin has one",
                wasm.len()
            )),
        }
    }
}

/// The largest blob sluice downloads: a hostile registry must not fill memory or disk.
pub const MAX_BLOB_BYTES: usize = 512 << 20;

/// Collects a download, refusing to grow past [`MAX_BLOB_BYTES`].
#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
    exceeded: bool,
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

/// What publishing a component produced.
#[derive(Debug, Clone)]
pub struct Published {
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
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
    fn check(what: &'static str, digest: &str, bytes: &[u8]) -> Result<(), Self> {
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

/// A connection to one registry.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    registry: String,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("registry", &self.registry)
            .finish()
    }
}

/// Plain HTTP is used only for loopback registries and those listed in
/// `SLUICE_INSECURE_REGISTRIES` (comma-separated host:port); everything else speaks HTTPS.
fn uses_plain_http(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(host, _)| host);
    let loopback = matches!(host, "localhost" | "[::1]") || host.starts_with("127.");
    loopback
        || std::env::var("SLUICE_INSECURE_REGISTRIES").is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|entry| entry == registry)
        })
}

/// Credentials for a registry: `SLUICE_REGISTRY_USER` + `SLUICE_REGISTRY_PASSWORD` when both
/// are set; else what `docker login` stored for that host (`$DOCKER_CONFIG` or
/// `~/.docker/config.json`, credential helpers included; identity tokens are not supported);
/// else anonymous.
pub fn credentials(registry: &str) -> RegistryAuth {
    if let (Ok(user), Ok(password)) = (
        std::env::var("SLUICE_REGISTRY_USER"),
        std::env::var("SLUICE_REGISTRY_PASSWORD"),
    ) {
        return RegistryAuth::Basic(user, password);
    }
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        // Identity tokens (OAuth refresh tokens) and lookup failures: try anonymously; a
        // registry that wants more says so, and the error names both ways to log in.
        Ok(docker_credential::DockerCredential::IdentityToken(_)) | Err(_) => {
            RegistryAuth::Anonymous
        }
    }
}

/// Installs the TLS crypto provider once (rustls with ring, which the wasi-http client uses too).
fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Registry {
    /// A client for `reference`'s registry, with the [`credentials`] for it.
    pub fn for_ref(reference: &PluginRef) -> Self {
        ensure_tls_provider();
        let protocol = if uses_plain_http(&reference.registry) {
            ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        // A registry that stops answering must not hang a pipeline: reads that stall for
        // `SLUICE_REGISTRY_TIMEOUT` seconds (default 30) fail with a message instead.
        let timeout = std::time::Duration::from_secs(
            std::env::var("SLUICE_REGISTRY_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(30),
        );
        let client = Client::new(ClientConfig {
            protocol,
            read_timeout: Some(timeout),
            connect_timeout: Some(timeout.min(std::time::Duration::from_secs(10))),
            ..ClientConfig::default()
        });
        Self {
            client,
            auth: credentials(&reference.registry),
            registry: reference.registry.clone(),
        }
    }

    fn unreachable(&self, err: OciDistributionError) -> anyhow::Error {
        if is_access_denied(&err) {
            return anyhow::anyhow!(
                "registry {} refused access: {err}\n  = help: set SLUICE_REGISTRY_USER and SLUICE_REGISTRY_PASSWORD, or log in with `docker login {}`",
                self.registry,
                self.registry
            );
        }
        anyhow::anyhow!(
            "registry {} did not answer as expected: {err}\n  = help: is the registry running and reachable? (--offline runs from the local plugin store alone)",
            self.registry
        )
    }

    /// The manifest digest a tag points at now.
    pub async fn resolve_tag(&self, reference: &PluginRef, tag: &str) -> Result<String> {
        self.tag_digest(reference, tag).await?.with_context(|| {
            format!(
                "{}/{}:{tag} is not in the registry\n  = help: check the name and version; publish it with `sluice plugin push FILE {reference}`",
                reference.registry, reference.repository
            )
        })
    }

    /// The manifest digest a tag points at now, or `None` when the tag does not exist.
    pub async fn tag_digest(&self, reference: &PluginRef, tag: &str) -> Result<Option<String>> {
        let image = reference.tagged(tag);
        match self.client.fetch_manifest_digest(&image, &self.auth).await {
            Ok(digest) => {
                check_digest(&digest).map_err(anyhow::Error::msg)?;
                Ok(Some(digest))
            }
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.unreachable(err)),
        }
    }

    /// The manifest stored under `digest`, its bytes checked against the digest.
    pub async fn fetch_manifest(&self, reference: &PluginRef, digest: &str) -> Result<Vec<u8>> {
        let image = reference.at(digest);
        let bytes = match self
            .client
            .pull_manifest_raw(&image, &self.auth, &[OCI_MANIFEST_MEDIA_TYPE])
            .await
        {
            Ok((bytes, _)) => bytes.to_vec(),
            Err(err) if is_not_found(&err) => bail!(
                "manifest {digest} of {} is not in the registry (deleted, or never pushed there)\n  = help: `sluice lock --update` re-resolves the pipeline's references on purpose",
                reference.name()
            ),
            Err(err) if digest_mismatch(&err).is_some() => {
                let actual = digest_mismatch(&err).unwrap_or_default();
                return Err(DigestMismatch {
                    what: "manifest",
                    expected: digest.to_string(),
                    actual,
                }
                .into());
            }
            Err(err) => return Err(self.unreachable(err)),
        };
        DigestMismatch::check("manifest", digest, &bytes)?;
        Ok(bytes)
    }

    /// The blob stored under `digest`, its bytes checked against the digest.
    pub async fn fetch_blob(&self, reference: &PluginRef, digest: &str) -> Result<Vec<u8>> {
        let image = reference.at(digest);
        let mut capped = CappedBuffer::default();
        let pulled = self.client.pull_blob(&image, digest, &mut capped).await;
        if capped.exceeded {
            bail!(
                "blob {digest} of {} is larger than {} MiB; refusing to download more",
                reference.name(),
                MAX_BLOB_BYTES >> 20
            );
        }
        let bytes = capped.bytes;
        match pulled {
            Ok(()) => {}
            Err(err) if is_not_found(&err) => bail!(
                "blob {digest} of {} is not in the registry",
                reference.name()
            ),
            Err(err) => {
                if let Some(actual) = digest_mismatch(&err) {
                    return Err(DigestMismatch {
                        what: "blob",
                        expected: digest.to_string(),
                        actual,
                    }
                    .into());
                }
                return Err(self.unreachable(err));
            }
        }
        DigestMismatch::check("blob", digest, &bytes)?;
        Ok(bytes)
    }

    async fn push_blob(&self, image: &Reference, bytes: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", sha256_bytes(bytes));
        self.client
            .push_blob(image, bytes.to_vec(), &digest)
            .await
            .map_err(|err| self.unreachable(err))?;
        Ok(digest)
    }

    async fn push_manifest(&self, image: &Reference, manifest: &Manifest) -> Result<String> {
        let body = serde_json::to_vec(manifest).context("cannot encode the manifest")?;
        let digest = format!("sha256:{}", sha256_bytes(&body));
        let content_type = http::HeaderValue::from_static(OCI_MANIFEST_MEDIA_TYPE);
        self.client
            .push_manifest_raw(image, body, content_type)
            .await
            .map_err(|err| self.unreachable(err))?;
        Ok(digest)
    }

    /// Publishes a component under `reference`'s tag.
    /// Publishes a component under `reference`'s tag. A tag that already names a different
    /// manifest is moved only with `force`: a published version should stay what it was.
    pub async fn push_component(
        &self,
        reference: &PluginRef,
        component: &[u8],
        config: &serde_json::Value,
        annotations: BTreeMap<String, String>,
        force: bool,
    ) -> Result<Published> {
        let tag = reference.tag.as_deref().context(
            "pushing needs a tag to publish under, e.g. oci://127.0.0.1:5000/acme/checkout:1.2.0",
        )?;
        let image = reference.tagged(tag);
        let config_bytes = serde_json::to_vec(config).context("cannot encode the config")?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
            artifact_type: None,
            config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config_bytes),
            layers: vec![Descriptor::of(WASM_LAYER_MEDIA_TYPE, component)],
            annotations,
        };
        let body = serde_json::to_vec(&manifest).context("cannot encode the manifest")?;
        let new_digest = format!("sha256:{}", sha256_bytes(&body));
        if let Some(existing) = self.tag_digest(reference, tag).await?
            && existing != new_digest
            && !force
        {
            bail!(
                "{reference} already names {existing}, a different component (this one would be {new_digest})\n  = help: publish a new version instead, or pass --force to move the tag (pipelines with a pipeline.lock keep the old bytes until `sluice lock --update`)"
            );
        }
        self.client
            .store_auth_if_needed(&self.registry, &self.auth)
            .await;
        let layer_digest = self.push_blob(&image, component).await?;
        self.push_blob(&image, &config_bytes).await?;
        let manifest_digest = self.push_manifest(&image, &manifest).await?;
        Ok(Published {
            manifest_digest,
            layer_digest,
            size: component.len() as u64,
        })
    }

    fn signature_tag(manifest_digest: &str) -> String {
        format!("{}.sig", manifest_digest.replacen(':', "-", 1))
    }

    /// The signature envelopes stored for `manifest_digest` (none is not an error).
    pub async fn fetch_signatures(
        &self,
        reference: &PluginRef,
        manifest_digest: &str,
    ) -> Result<Vec<Envelope>> {
        let image = reference.tagged(&Self::signature_tag(manifest_digest));
        let manifest = match self
            .client
            .pull_manifest_raw(&image, &self.auth, &[OCI_MANIFEST_MEDIA_TYPE])
            .await
        {
            Ok((bytes, _)) => bytes,
            Err(err) if is_not_found(&err) => return Ok(Vec::new()),
            Err(err) => return Err(self.unreachable(err)),
        };
        let manifest: Manifest = serde_json::from_slice(&manifest)
            .context("the signature manifest is not valid JSON")?;
        let mut envelopes = Vec::new();
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == DSSE_LAYER_MEDIA_TYPE)
        {
            let bytes = self.fetch_blob(reference, &layer.digest).await?;
            // An unreadable envelope is skipped: it cannot vouch for anything.
            if let Ok(envelope) = serde_json::from_slice::<Envelope>(&bytes) {
                envelopes.push(envelope);
            }
        }
        Ok(envelopes)
    }

    /// Adds `envelope` to the signatures of `manifest_digest` (keeping the ones already there).
    pub async fn push_signature(
        &self,
        reference: &PluginRef,
        manifest_digest: &str,
        envelope: &Envelope,
    ) -> Result<()> {
        let image = reference.tagged(&Self::signature_tag(manifest_digest));
        let mut existing = self.fetch_signatures(reference, manifest_digest).await?;
        // One signature per key: signing again replaces that key's earlier envelope.
        let signing_keys: Vec<&str> = envelope
            .signatures
            .iter()
            .map(|s| s.keyid.as_str())
            .collect();
        existing.retain(|e| {
            !e.signatures
                .iter()
                .any(|s| signing_keys.contains(&s.keyid.as_str()))
        });
        existing.push(envelope.clone());
        let config_bytes = b"{}".to_vec();
        self.push_blob(&image, &config_bytes).await?;
        let mut layers = Vec::new();
        for envelope in &existing {
            let bytes = serde_json::to_vec(envelope).context("cannot encode the envelope")?;
            self.push_blob(&image, &bytes).await?;
            layers.push(Descriptor::of(DSSE_LAYER_MEDIA_TYPE, &bytes));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
            artifact_type: None,
            config: Descriptor::of(SIGNATURES_CONFIG_MEDIA_TYPE, &config_bytes),
            layers,
            annotations: BTreeMap::from([(
                "dev.sluice.signatures.subject".to_string(),
                manifest_digest.to_string(),
            )]),
        };
        self.push_manifest(&image, &manifest).await?;
        Ok(())
    }
}

fn is_not_found(err: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode;
    match err {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

fn is_access_denied(err: &OciDistributionError) -> bool {
    use oci_client::errors::OciErrorCode;
    match err {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::ServerError { code, .. } => matches!(code, 401 | 403),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        _ => false,
    }
}

fn digest_mismatch(err: &OciDistributionError) -> Option<String> {
    match err {
        OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
            actual,
            ..
        }) => Some(actual.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_print_back() -> Result<(), String> {
        let r = PluginRef::parse("oci://127.0.0.1:5000/acme/checkout:1.2.0")?;
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/checkout");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/acme/checkout:1.2.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = PluginRef::parse(&format!("ghcr.io/acme/checkout@{digest}"))?;
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.as_deref(), Some(digest.as_str()));
        Ok(())
    }

    #[test]
    fn bad_references_say_why() {
        for (text, why) in [
            ("oci://checkout", "registry and a repository"),
            ("oci://127.0.0.1:5000/Acme/x:1", "not a repository name"),
            ("oci://127.0.0.1:5000/acme/x", "no version"),
            ("oci://127.0.0.1:5000/acme/x@sha256:12", "not a digest"),
            ("oci://127.0.0.1:5000/acme/x:1 2", "not a tag"),
        ] {
            match PluginRef::parse(text) {
                Ok(r) => panic!("{text} parsed as {r:?}"),
                Err(message) => assert!(message.contains(why), "{text}: {message}"),
            }
        }
    }

    #[test]
    fn only_loopback_registries_use_plain_http() {
        assert!(uses_plain_http("127.0.0.1:5000"));
        assert!(uses_plain_http("localhost:5000"));
        assert!(!uses_plain_http("ghcr.io"));
        assert!(!uses_plain_http("registry.example.com:5000"));
    }
}
