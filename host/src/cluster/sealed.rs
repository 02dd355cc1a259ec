//! A message between machines that says who sent it: the JSON of a [`super::wire`] type, its
//! kind, and an ed25519 signature over both (DSSE's pre-authentication encoding). Opening one
//! checks the kind and the signature against the keys trusted for that kind of message, and
//! gives the sender's key and the digest of the sealed bytes — what a result is bound to.

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::digests::sha256_bytes;
use crate::trust::signing::{SigningKey, TrustedKey, short_key_id};

/// What crosses NATS.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// `application/vnd.sluice.<kind>+json`.
    #[serde(rename = "payloadType")]
    payload_type: String,
    /// The message's JSON, base64.
    payload: String,
    keyid: String,
    sig: String,
}

fn payload_type(kind: &str) -> String {
    format!("application/vnd.sluice.{kind}+json")
}

/// `value` as a message of `kind`, signed by `key`.
pub fn seal<T: Serialize>(key: &SigningKey, kind: &str, value: &T) -> Result<Vec<u8>> {
    let payload = serde_json::to_vec(value).with_context(|| format!("cannot encode a {kind}"))?;
    let payload_type = payload_type(kind);
    let envelope = Envelope {
        sig: key.sign_bytes(&payload_type, &payload),
        payload_type,
        payload: BASE64.encode(&payload),
        keyid: key.id.clone(),
    };
    serde_json::to_vec(&envelope).with_context(|| format!("cannot encode a {kind}"))
}

/// A message whose signature verified.
#[derive(Debug)]
pub struct Opened<T> {
    pub value: T,
    /// The key that signed it.
    pub signer: TrustedKey,
    /// The sha256 of the sealed bytes.
    pub sha256: String,
}

/// Why a message was not opened.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not a signed sluice message")]
    Unsigned,
    #[error("a `{0}` where a `{1}` was expected")]
    WrongKind(String, String),
    #[error("signed by {0}, a key not trusted for this")]
    Untrusted(String),
    #[error("its signature does not verify")]
    BadSignature,
    #[error("its content cannot be read: {0}")]
    Unreadable(String),
}

/// Opens `bytes` as a message of `kind` signed by one of `trusted`.
pub fn open<T: DeserializeOwned>(
    bytes: &[u8],
    kind: &str,
    trusted: &[&TrustedKey],
) -> Result<Opened<T>, Refused> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|_| Refused::Unsigned)?;
    let expected = payload_type(kind);
    if envelope.payload_type != expected {
        return Err(Refused::WrongKind(
            crate::model::text::one_line(&envelope.payload_type, 200),
            expected,
        ));
    }
    let payload = BASE64
        .decode(envelope.payload.as_bytes())
        .map_err(|_| Refused::Unsigned)?;
    // The key id is the sender's claim: only a key that verifies counts.
    let Some(signer) = trusted
        .iter()
        .find(|k| k.verifies(&expected, &payload, &envelope.sig))
    else {
        return Err(if trusted.iter().any(|k| k.id == envelope.keyid) {
            Refused::BadSignature
        } else {
            Refused::Untrusted(short_key_id(&crate::model::text::one_line(
                &envelope.keyid,
                80,
            )))
        });
    };
    let value =
        serde_json::from_slice(&payload).map_err(|err| Refused::Unreadable(err.to_string()))?;
    Ok(Opened {
        value,
        signer: (*signer).clone(),
        sha256: sha256_bytes(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::signing::generate_key_pair;

    fn key(dir: &std::path::Path, name: &str) -> Result<(SigningKey, TrustedKey)> {
        let (private, public, _) = generate_key_pair(&dir.join(name))?;
        Ok((
            SigningKey::from_file(&private)?,
            TrustedKey::from_file(&public)?,
        ))
    }

    #[test]
    fn only_the_trusted_key_and_the_right_kind_open_a_message() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (coordinator, coordinator_pub) = key(dir.path(), "coordinator")?;
        let (_, stranger_pub) = key(dir.path(), "stranger")?;
        let sealed = seal(&coordinator, "stop", &vec!["build".to_string()])?;
        let opened: Opened<Vec<String>> =
            open(&sealed, "stop", &[&coordinator_pub]).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(opened.value, ["build"]);
        assert_eq!(opened.signer.id, coordinator.id);
        assert_eq!(opened.sha256, sha256_bytes(&sealed));
        assert!(matches!(
            open::<Vec<String>>(&sealed, "stop", &[&stranger_pub]),
            Err(Refused::Untrusted(_))
        ));
        assert!(matches!(
            open::<Vec<String>>(&sealed, "job", &[&coordinator_pub]),
            Err(Refused::WrongKind(..))
        ));
        assert!(matches!(
            open::<Vec<String>>(br#"{"status":"succeeded"}"#, "stop", &[&coordinator_pub]),
            Err(Refused::Unsigned)
        ));
        // The payload changed under the same signature.
        let mut envelope: serde_json::Value = serde_json::from_slice(&sealed)?;
        envelope["payload"] = BASE64.encode(br#"["deploy"]"#).into();
        let tampered = serde_json::to_vec(&envelope)?;
        assert!(matches!(
            open::<Vec<String>>(&tampered, "stop", &[&coordinator_pub]),
            Err(Refused::BadSignature)
        ));
        Ok(())
    }
}
