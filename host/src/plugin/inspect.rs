//! `sluice inspect`: what a component file is, what it says about itself, and what it imports
//! and exports — the first thing to look at when a plugin is refused.

use std::path::Path;

use serde::Serialize;

use crate::model::text::{MAX_FIELD_BYTES, one_line};

use crate::plugin::{self, PluginError};
use crate::sandbox::engine::Host;

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// What `describe` returned, when the component is a sluice stage.
    pub stage: Option<StageInfo>,
    /// Why it is not a usable stage, when it is not.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageInfo {
    pub name: String,
    pub version: String,
    pub phase: String,
    pub description: String,
}

/// Fails only when the file is not a component at all; a component of another world is
/// described with `problem` set.
pub async fn inspect(host: &Host, path: &Path) -> Result<Inspection, PluginError> {
    let compiled = plugin::compile(host, path)?;
    let mut inspection = Inspection {
        file: path.display().to_string(),
        size: compiled.size,
        sha256: compiled.sha256.clone(),
        imports: compiled.imports(host),
        exports: compiled.exports(host),
        stage: None,
        problem: None,
    };
    let described = match compiled.link(host, "inspect", crate::sandbox::caps::CapSet::all()) {
        Ok(plugin) => plugin.describe(host).await,
        Err(err) => Err(err),
    };
    match described {
        Ok(info) => {
            inspection.stage = Some(StageInfo {
                name: one_line(&info.name, MAX_FIELD_BYTES),
                version: one_line(&info.version, MAX_FIELD_BYTES),
                phase: crate::sandbox::trap::phase_name(info.phase).to_string(),
                description: one_line(&info.description, MAX_FIELD_BYTES),
            })
        }
        Err(err) => inspection.problem = Some(err.to_string()),
    }
    Ok(inspection)
}
