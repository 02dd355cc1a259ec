//! The public keys a pipeline trusts (`trusted_keys`), read from the files it names and
//! reported at the place in pipeline.toml that names a broken one.

use crate::config::diagnostic::Diagnostic;
use crate::config::pipeline::KeyFile;
use crate::trust::signing::TrustedKey;

/// Reads every key file, or says which entry is unusable and why.
pub fn load(files: &[KeyFile]) -> Result<Vec<TrustedKey>, Diagnostic> {
    files
        .iter()
        .map(|file| {
            TrustedKey::from_file(&file.path).map_err(|err| {
                file.site
                    .error(format!("trusted key `{}`: {err:#}", file.path.display()))
                    .with_hint(
                        "list public key files (.pub) relative to this file; \
                         `sluice key generate NAME` makes a pair",
                    )
            })
        })
        .collect()
}
