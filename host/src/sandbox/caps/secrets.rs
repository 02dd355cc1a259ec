//! Secrets (`sluice:pipeline/secrets`), granted by `allow.secrets`: a stage reads only the values
//! of the secrets its entry names; asking for any other is refused and recorded.

use std::collections::BTreeMap;

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::config::grants::Grants;
use crate::model::events::LogSource;
use crate::sandbox::bindings::sluice::pipeline::secrets;
use crate::sandbox::capability::{Capability, StageSetup};
use crate::sandbox::net::GrantKey;
use crate::sandbox::state::StageState;
use crate::sandbox::trap::into_anyhow;

pub struct Secrets;

/// The values of the secrets one stage is granted.
struct GrantedSecrets(BTreeMap<String, String>);

impl Capability for Secrets {
    fn grant_key(&self) -> &'static str {
        "allow.secrets"
    }

    fn needed_by(&self, import: &str) -> bool {
        import.starts_with("sluice:pipeline/secrets")
    }

    fn granted(&self, grants: &Grants) -> bool {
        !grants.secrets.is_empty()
    }

    fn link(&self, linker: &mut Linker<StageState>) -> Result<()> {
        secrets::add_to_linker::<StageState, HasSelf<StageState>>(linker, |s| s)
            .map_err(into_anyhow)
    }

    fn prepare(&self, setup: &mut StageSetup<'_>) -> Result<()> {
        setup
            .state
            .insert(GrantedSecrets(setup.spec.secrets.clone()));
        Ok(())
    }
}

impl secrets::Host for StageState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, String>> {
        let value = self
            .capability::<GrantedSecrets>()
            .and_then(|granted| granted.0.get(&name).cloned());
        Ok(match value {
            Some(value) => Ok(value),
            None => {
                let what = format!("secret `{name}`");
                let _ = self.log.message(
                    LogSource::Warn,
                    &format!("sluice denied secret `{name}`: not in this stage's allow.secrets"),
                );
                self.denials.record_wanted(what, GrantKey::Secrets, &name);
                Err(format!(
                    "secret `{name}` is not granted to this stage (allow.secrets)"
                ))
            }
        })
    }
}
