//! sluice: a CI/CD pipeline host whose stages are sandboxed WebAssembly components.
//!
//! The engine lives here; the `sluice` binary only parses arguments and calls it. A run is
//! [`config::pipeline::load`] → [`resolve`] → [`sandbox::engine::Host::new`] → [`run::run`], which
//! emits [`model::events::Event`]s that [`reporters`] render.
//!
//! Modules are layers; each uses only the ones listed before it (`host/LAYERS`, checked by
//! `cargo xtask layers`):
//! `atomic_file`, `exit_codes` → [`config`] (the pipeline file) → [`model`] (statuses, artifacts,
//! events, reports) → [`trust`] (keys, signatures, secrets, provenance) → [`sandbox`] (wasmtime,
//! capabilities) → [`plugin`] → [`registry`] (OCI, plugin store) → [`resolve`] → [`stage`] (one
//! stage, wherever it runs) → [`cluster`] (NATS JetStream: coordinator and agent) → [`run`] (one
//! run) → [`reporters`] → [`scaffold`] → [`serve`] (the web view of runs).

pub mod atomic_file;
pub use sluice_config as config;
pub mod cluster;
pub mod exit_codes;
pub mod model;
pub mod plugin;
pub mod registry;
pub mod reporters;
pub mod resolve;
pub mod run;
pub mod sandbox;
pub mod scaffold;
pub mod serve;
pub mod shell;
pub mod stage;
pub mod trust;

pub use sandbox::engine::Host;
