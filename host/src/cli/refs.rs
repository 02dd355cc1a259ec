//! Plugin references and trusted public keys as the command line takes them (`plugin
//! pull/sign/verify`, `verify`, `inspect oci://...`): parsed and read with messages that say which
//! argument is wrong.

use std::path::PathBuf;

use sluice::config::plugin_ref::PluginRef;
use sluice::trust::signing::TrustedKey;

use crate::error::CliError;

/// An `oci://` plugin reference given on the command line.
pub fn parse_ref(text: &str) -> Result<PluginRef, CliError> {
    PluginRef::parse(text)
        .map_err(|why| CliError::input(format!("invalid plugin reference `{text}`: {why}")))
}

/// A reference and the public keys to check it against, from the command line.
pub fn ref_and_keys(
    reference: &str,
    keys: &[PathBuf],
) -> Result<(PluginRef, Vec<TrustedKey>), CliError> {
    Ok((parse_ref(reference)?, trusted_keys(keys)?))
}

/// The public key files given with `--key`.
pub fn trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, CliError> {
    paths
        .iter()
        .map(|path| TrustedKey::from_file(path))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|err| CliError::input(format!("{err:#}")))
}
