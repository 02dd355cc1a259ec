//! The OCI documents sluice reads and writes: media types, the image manifest and its
//! descriptors, and which layer of a Wasm artifact is the component.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::plugin_ref::check_digest;
use crate::model::artifacts::sha256_bytes;

pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
pub const DSSE_LAYER_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURES_CONFIG_MEDIA_TYPE: &str = "application/vnd.sluice.signatures.config.v1+json";

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
