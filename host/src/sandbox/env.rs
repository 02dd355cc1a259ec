//! `sluice:pipeline/env`: a stage's granted environment variables asked for by name. WASI hands
//! a plugin its whole environment at once, so sluice never sees which name it looks for; asked
//! here, a name the stage is not granted is refused and recorded, and `--learn` can propose it.

use crate::model::events::LogSource;
use crate::sandbox::bindings::sluice::pipeline::env;
use crate::sandbox::net::GrantKey;
use crate::sandbox::state::StageState;

impl env::Host for StageState {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        if let Some((_, value)) = self.env.iter().find(|(granted, _)| *granted == name) {
            return Ok(value.clone());
        }
        let what = format!("env `{name}`");
        let _ = self.log.message(
            LogSource::Warn,
            &format!("sluice denied {what}: not in this stage's allow.env"),
        );
        self.denials.record_wanted(what, GrantKey::Env, &name);
        Ok(None)
    }
}
