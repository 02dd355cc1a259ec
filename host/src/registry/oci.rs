//! Talks to an OCI registry (distribution v2) for plugin sharing: a plugin travels as a Wasm OCI
//! artifact (CNCF layout: config `application/vnd.wasm.config.v0+json`, one `application/wasm`
//! layer); its signatures travel as DSSE envelopes in a manifest tagged `sha256-<hex>.sig`
//! (the tag scheme cosign uses, since distribution 2.x has no referrers API). Every byte that
//! comes back is hashed here and refused unless it matches the digest asked for.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result, bail};
use oci_client::RegistryOperation;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::config::plugin_ref::{PluginRef, check_digest};
use crate::model::artifacts::sha256_bytes;
use crate::registry::auth::{credentials, ensure_tls_provider, uses_plain_http};
use crate::registry::download::{CappedBuffer, DigestMismatch, MAX_BLOB_BYTES, MAX_MANIFEST_BYTES};
use crate::registry::media::{
    DSSE_LAYER_MEDIA_TYPE, Descriptor, Manifest, OCI_MANIFEST_MEDIA_TYPE,
    SIGNATURES_CONFIG_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE,
};
use crate::trust::signing::Envelope;

/// A connection to one registry.
pub struct Registry {
    client: Client,
    /// For manifests, read with a size cap.
    http: reqwest::Client,
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
        let http = reqwest::Client::builder()
            .read_timeout(timeout)
            .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
            .build()
            .unwrap_or_default();
        Self {
            client,
            http,
            auth: credentials(&reference.registry),
            registry: reference.registry.clone(),
        }
    }

    fn unreachable(&self, err: OciDistributionError) -> anyhow::Error {
        if is_access_denied(&err) {
            return anyhow::anyhow!(
                "registry {} refused access: {err}\n  = help: set SLUICE_REGISTRY_HOST={}, SLUICE_REGISTRY_USER and SLUICE_REGISTRY_PASSWORD, or log in with `docker login {}`",
                self.registry,
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
        let image = image_tagged(reference, tag);
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
        let Some(bytes) = self.manifest_capped(reference, digest).await? else {
            bail!(
                "manifest {digest} of {} is not in the registry (deleted, or never pushed there)\n  = help: `sluice lock --update` re-resolves the pipeline's references on purpose",
                reference.name()
            );
        };
        DigestMismatch::check("manifest", digest, &bytes)?;
        Ok(bytes)
    }

    /// The manifest `reference`'s repository holds under `tag_or_digest`, read with a cap of
    /// [`MAX_MANIFEST_BYTES`] (oci-client reads whole bodies); `None` when there is none.
    async fn manifest_capped(
        &self,
        reference: &PluginRef,
        tag_or_digest: &str,
    ) -> Result<Option<Vec<u8>>> {
        let image = image_tagged(reference, "latest");
        // A bearer token when the registry uses token auth; basic or no auth otherwise.
        let token = self
            .client
            .auth(&image, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|err| self.unreachable(err))?;
        let scheme = if uses_plain_http(&reference.registry) {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{tag_or_digest}",
            reference.registry, reference.repository
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, OCI_MANIFEST_MEDIA_TYPE);
        request = match (&token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            _ => request,
        };
        let unanswered = |err: reqwest::Error| {
            anyhow::anyhow!(
                "registry {} did not answer as expected: {err}\n  = help: is the registry running and reachable? (--offline runs from the local plugin store alone)",
                self.registry
            )
        };
        let mut response = request.send().await.map_err(unanswered)?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            401 | 403 => bail!(
                "registry {} refused access to {url}\n  = help: set SLUICE_REGISTRY_HOST={}, SLUICE_REGISTRY_USER and SLUICE_REGISTRY_PASSWORD, or log in with `docker login {}`",
                self.registry,
                self.registry,
                self.registry
            ),
            status => bail!(
                "registry {} answered {status} for {url}\n  = help: is it an OCI registry?",
                self.registry
            ),
        }
        let too_large = || {
            anyhow::anyhow!(
                "the manifest {url} is larger than {} KiB; refusing to read it (a plugin's manifest is a few hundred bytes)",
                MAX_MANIFEST_BYTES >> 10
            )
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unanswered)? {
            if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// The blob stored under `digest`, its bytes checked against the digest.
    pub async fn fetch_blob(&self, reference: &PluginRef, digest: &str) -> Result<Vec<u8>> {
        let image = image_at(reference, digest);
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
        let image = image_tagged(reference, tag);
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
        let tag = Self::signature_tag(manifest_digest);
        let Some(manifest) = self.manifest_capped(reference, &tag).await? else {
            return Ok(Vec::new());
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
        let image = image_tagged(reference, &Self::signature_tag(manifest_digest));
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

/// What publishing a component produced.
#[derive(Debug, Clone)]
pub struct Published {
    pub manifest_digest: String,
    pub layer_digest: String,
    pub size: u64,
}

/// `reference`'s repository at `digest`.
fn image_at(reference: &PluginRef, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry.clone(),
        reference.repository.clone(),
        digest.to_string(),
    )
}

/// `reference`'s repository at `tag`.
fn image_tagged(reference: &PluginRef, tag: &str) -> Reference {
    Reference::with_tag(
        reference.registry.clone(),
        reference.repository.clone(),
        tag.to_string(),
    )
}
