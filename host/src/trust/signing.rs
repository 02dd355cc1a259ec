//! Ed25519 keys and DSSE envelopes over in-toto statements: how a team vouches for a plugin it
//! published, and how a run vouches for the release it produced. Keys are standard PEM
//! (PKCS#8 private, SPKI public), so `openssl pkey` reads them too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

use crate::model::artifacts::sha256_bytes;

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// A private key that signs.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    /// The key id: hex SHA-256 of the public key's SPKI DER encoding.
    pub id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).finish()
    }
}

/// A public key a pipeline trusts, and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key: ed25519_dalek::VerifyingKey,
    pub id: String,
    pub source: PathBuf,
}

impl TrustedKey {
    /// The short form people read: `ed25519:` and the first 16 hex digits of the key id.
    pub fn short_id(&self) -> String {
        short_key_id(&self.id)
    }
}

/// `ed25519:0123456789abcdef` for a full hex key id.
pub fn short_key_id(id: &str) -> String {
    format!("ed25519:{}", id.get(..16).unwrap_or(id))
}

fn key_id(public: &ed25519_dalek::VerifyingKey) -> Result<String> {
    let der = public
        .to_public_key_der()
        .map_err(|err| anyhow::anyhow!("cannot encode the public key: {err}"))?;
    Ok(sha256_bytes(der.as_bytes()))
}

/// Creates `<prefix>.key` (private, mode 0600) and `<prefix>.pub`; refuses to overwrite.
pub fn generate_key_pair(prefix: &Path) -> Result<(PathBuf, PathBuf, String)> {
    let private_path = with_suffix(prefix, "key");
    let public_path = with_suffix(prefix, "pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            bail!(
                "{} already exists; choose another name or remove it first",
                path.display()
            );
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|err| anyhow::anyhow!("no randomness for a new key: {err}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|err| anyhow::anyhow!("cannot encode the private key: {err}"))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|err| anyhow::anyhow!("cannot encode the public key: {err}"))?;
    if let Some(parent) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_private(&private_path, private_pem.as_bytes())?;
    std::fs::write(&public_path, public_pem)
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    Ok((private_path, public_path, key_id(&key.verifying_key())?))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key (as `sluice key generate` writes).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            read_key_file(path).with_context(|| format!("the signing key {}", path.display()))?;
        Self::from_pem(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a PKCS#8 PEM private key (e.g. the value of a secret).
    pub fn from_pem(text: &str) -> Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text.trim()).map_err(|err| {
            anyhow::anyhow!(
                "not an ed25519 private key in PKCS#8 PEM ({err}); make one with `sluice key generate NAME`"
            )
        })?;
        let id = key_id(&key.verifying_key())?;
        Ok(Self { key, id })
    }

    /// A signature (base64) over `payload` as `payload_type`, in DSSE's pre-authentication
    /// encoding: what a cluster message carries.
    pub fn sign_bytes(&self, payload_type: &str, payload: &[u8]) -> String {
        BASE64.encode(self.key.sign(&pae(payload_type, payload)).to_bytes())
    }

    /// Its public half, trusted as `source` names it.
    pub fn public(&self, source: &Path) -> TrustedKey {
        TrustedKey {
            key: self.key.verifying_key(),
            id: self.id.clone(),
            source: source.to_path_buf(),
        }
    }

    /// Signs `statement` into a DSSE envelope.
    pub fn sign_statement(&self, statement: &Statement) -> Result<Envelope> {
        let payload = serde_json::to_vec(statement).context("cannot encode the statement")?;
        let signature = self.key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
        Ok(Envelope {
            payload: BASE64.encode(&payload),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: self.id.clone(),
                sig: BASE64.encode(signature.to_bytes()),
            }],
        })
    }
}

impl TrustedKey {
    /// Reads an SPKI PEM public key (as `sluice key generate` writes).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            read_key_file(path).with_context(|| format!("the public key {}", path.display()))?;
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(text.trim()).map_err(|err| {
            anyhow::anyhow!(
                "{} is not an ed25519 public key in PEM ({err}); use the .pub file `sluice key generate` wrote",
                path.display()
            )
        })?;
        Ok(Self {
            id: key_id(&key)?,
            key,
            source: path.to_path_buf(),
        })
    }
}

impl TrustedKey {
    /// Whether `signature` (base64, as [`SigningKey::sign_bytes`] makes) is this key's over
    /// `payload` as `payload_type`.
    pub fn verifies(&self, payload_type: &str, payload: &[u8], signature: &str) -> bool {
        let Ok(bytes) = BASE64.decode(signature.as_bytes()) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.key
            .verify_strict(&pae(payload_type, payload), &sig)
            .is_ok()
    }
}

/// DSSE pre-authentication encoding: what is actually signed.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (https://github.com/secure-systems-lab/dsse).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// What a statement is about: a name and its digests (`sha256` → hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: impl Into<String>, hex: &str) -> Self {
        Self {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
        }
    }
}

impl Statement {
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Self {
            statement_type: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the envelope is not an in-toto statement (payload type `{0}`)")]
    PayloadType(String),
    #[error("the envelope carries no signatures")]
    NoSignatures,
    #[error("signed only by keys this pipeline does not trust ({})", .0.join(", "))]
    UntrustedKeys(Vec<String>),
    #[error(
        "the signature by trusted key {0} does not match the signed content (tampered or corrupt)"
    )]
    BadSignature(String),
    #[error("the signed statement is unreadable: {0}")]
    Statement(String),
}

impl Envelope {
    /// Checks the signatures against `trusted`; returns the statement and the key that signed it.
    pub fn verify<'k>(
        &self,
        trusted: &'k [TrustedKey],
    ) -> Result<(Statement, &'k TrustedKey), VerifyError> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(VerifyError::PayloadType(self.payload_type.clone()));
        }
        if self.signatures.is_empty() {
            return Err(VerifyError::NoSignatures);
        }
        let payload = BASE64
            .decode(self.payload.as_bytes())
            .map_err(|err| VerifyError::Statement(format!("payload is not base64: {err}")))?;
        let message = pae(&self.payload_type, &payload);
        let mut bad: Option<String> = None;
        for signature in &self.signatures {
            let Ok(bytes) = BASE64.decode(signature.sig.as_bytes()) else {
                continue;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
                continue;
            };
            // A signature names its key, but an attacker controls that name: try the named
            // key first, and accept only what verifies.
            for key in trusted {
                if key.key.verify(&message, &sig).is_ok() {
                    let statement: Statement = serde_json::from_slice(&payload)
                        .map_err(|err| VerifyError::Statement(err.to_string()))?;
                    if statement.statement_type != STATEMENT_TYPE {
                        return Err(VerifyError::Statement(format!(
                            "`_type` is `{}`, not {STATEMENT_TYPE}",
                            statement.statement_type
                        )));
                    }
                    return Ok((statement, key));
                }
                if key.id == signature.keyid {
                    bad = Some(key.short_id());
                }
            }
        }
        if let Some(key) = bad {
            return Err(VerifyError::BadSignature(key));
        }
        Err(VerifyError::UntrustedKeys(
            self.signatures
                .iter()
                .map(|s| {
                    if s.keyid.is_empty() {
                        "an unnamed key".to_string()
                    } else {
                        short_key_id(&s.keyid)
                    }
                })
                .collect(),
        ))
    }

    /// The statement inside, without checking any signature (for display only).
    pub fn unverified_statement(&self) -> Result<Statement> {
        let payload = BASE64
            .decode(self.payload.as_bytes())
            .context("the envelope payload is not base64")?;
        serde_json::from_slice(&payload).context("the envelope payload is not an in-toto statement")
    }
}

/// A key file's text: a regular file of at most 64 KiB (a device or FIFO is refused, not read).
fn read_key_file(path: &Path) -> Result<String> {
    let bytes =
        crate::config::files::read_bounded(path, crate::config::files::MAX_SECRET_FILE_BYTES)
            .map_err(|err| anyhow::anyhow!("{} {err}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> Result<(SigningKey, TrustedKey)> {
        let (private, public, id) = generate_key_pair(&dir.join(name))?;
        let signing = SigningKey::from_file(&private)?;
        let trusted = TrustedKey::from_file(&public)?;
        assert_eq!(signing.id, id);
        assert_eq!(trusted.id, id);
        Ok((signing, trusted))
    }

    fn statement() -> Statement {
        Statement::new(
            vec![Subject::sha256("registry/acme/checkout", &"ab".repeat(32))],
            "https://example.test/v1",
            serde_json::json!({"k": "v"}),
        )
    }

    #[test]
    fn a_signed_statement_verifies_with_its_key_only() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (alice, alice_pub) = pair(dir.path(), "alice")?;
        let (_, bob_pub) = pair(dir.path(), "bob")?;
        let envelope = alice.sign_statement(&statement())?;
        let (verified, by) = envelope
            .verify(std::slice::from_ref(&alice_pub))
            .map_err(anyhow::Error::from)?;
        assert_eq!(verified, statement());
        assert_eq!(by.id, alice_pub.id);
        assert!(matches!(
            envelope.verify(std::slice::from_ref(&bob_pub)),
            Err(VerifyError::UntrustedKeys(_))
        ));
        Ok(())
    }

    #[test]
    fn a_changed_payload_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (alice, alice_pub) = pair(dir.path(), "alice")?;
        let mut envelope = alice.sign_statement(&statement())?;
        let mut other = statement();
        other.subject[0] = Subject::sha256("registry/acme/checkout", &"cd".repeat(32));
        envelope.payload = BASE64.encode(serde_json::to_vec(&other)?);
        assert!(matches!(
            envelope.verify(std::slice::from_ref(&alice_pub)),
            Err(VerifyError::BadSignature(_))
        ));
        Ok(())
    }

    #[test]
    fn keys_are_not_overwritten() -> Result<()> {
        let dir = tempfile::tempdir()?;
        generate_key_pair(&dir.path().join("k"))?;
        assert!(generate_key_pair(&dir.path().join("k")).is_err());
        Ok(())
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
