//! `sluice key generate`: an ed25519 key pair for signing plugins and run provenance.

use std::path::Path;

use sluice::trust::signing::generate_key_pair;

use crate::error::{CliError, Outcome, done};

/// `sluice key generate PREFIX`: writes PREFIX.key and PREFIX.pub and prints the key id.
pub fn generate(prefix: &Path) -> Outcome {
    let (private, public, id) =
        generate_key_pair(prefix).map_err(|err| CliError::input(format!("{err:#}")))?;
    println!("private key {} (keep it secret)", private.display());
    println!(
        "public key  {} (list it in `trusted_keys`)",
        public.display()
    );
    println!("key id      {}", sluice::trust::signing::short_key_id(&id));
    done()
}
