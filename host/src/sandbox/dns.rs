//! Name lookups for a stage: WASI's `ip-name-lookup` replaced so that only the names its
//! `allow.net` grants resolve (to the addresses found when the stage started); any other lookup
//! is refused and recorded, so a resolver can never carry data out of the sandbox.

use std::net::IpAddr;

use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network, Pollable, subscribe};

use crate::sandbox::state::StageState;
use crate::sandbox::trap::into_anyhow;

/// The interface WASI registers; guests built against any 0.2.x import match it.
const INTERFACE: &str = "wasi:sockets/ip-name-lookup@0.2.12";

/// The answer to one lookup, handed out address by address.
pub struct Lookup(std::vec::IntoIter<IpAddr>);

#[async_trait::async_trait]
impl Pollable for Lookup {
    /// Answers are known when the lookup is made: always ready.
    async fn ready(&mut self) {}
}

type Answer<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// Shadows WASI's name lookup in `linker` (which must already hold WASI p2).
pub fn add_to_linker(linker: &mut Linker<StageState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let mut interface = linker.instance(INTERFACE).map_err(into_anyhow)?;
    interface
        .resource(
            "resolve-address-stream",
            ResourceType::host::<Lookup>(),
            |mut store, rep| {
                store
                    .data_mut()
                    .table
                    .delete(Resource::<Lookup>::new_own(rep))?;
                Ok(())
            },
        )
        .map_err(into_anyhow)?;
    interface
        .func_wrap(
            "resolve-addresses",
            |mut store, (network, name): (Resource<Network>, String)| -> Answer<Resource<Lookup>> {
                let state = store.data_mut();
                // The network resource is the capability to look names up at all.
                state.table.get(&network)?;
                Ok((match state.net.lookup(&name) {
                    Some(addresses) => Ok(state.table.push(Lookup(addresses.into_iter()))?),
                    None => Err(ErrorCode::AccessDenied),
                },))
            },
        )
        .map_err(into_anyhow)?;
    interface
        .func_wrap(
            "[method]resolve-address-stream.resolve-next-address",
            |mut store, (lookup,): (Resource<Lookup>,)| -> Answer<Option<IpAddress>> {
                let lookup = store.data_mut().table.get_mut(&lookup)?;
                Ok((Ok(lookup.0.next().map(IpAddress::from)),))
            },
        )
        .map_err(into_anyhow)?;
    interface
        .func_wrap(
            "[method]resolve-address-stream.subscribe",
            |mut store,
             (lookup,): (Resource<Lookup>,)|
             -> wasmtime::Result<(Resource<DynPollable>,)> {
                Ok((subscribe(&mut store.data_mut().table, lookup)?,))
            },
        )
        .map_err(into_anyhow)?;
    linker.allow_shadowing(false);
    Ok(())
}
