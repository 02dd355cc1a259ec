//! Outbound HTTP (`wasi:http/*`), granted by `allow.net`: linked only for granted stages; every
//! request is checked against the stage's `host:port` grants by the network policy.

use anyhow::Result;
use wasmtime::component::Linker;

use crate::config::grants::Grants;
use crate::sandbox::capability::Capability;
use crate::sandbox::state::StageState;
use crate::sandbox::trap::into_anyhow;

pub struct Http;

impl Capability for Http {
    fn grant_key(&self) -> &'static str {
        "allow.net"
    }

    fn needed_by(&self, import: &str) -> bool {
        import.starts_with("wasi:http/")
    }

    fn granted(&self, grants: &Grants) -> bool {
        !grants.net.is_empty()
    }

    fn link(&self, linker: &mut Linker<StageState>) -> Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker).map_err(into_anyhow)
    }
}
