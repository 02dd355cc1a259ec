//! sluice: a CI/CD pipeline host whose stages are sandboxed WebAssembly components.
//!
//! The engine lives here; the `sluice` binary only parses arguments and calls it. A run is
//! [`manifest::load`] → [`engine::Host::new`] → [`runner::run`], which emits [`events::Event`]s
//! that [`reporters`] render.

pub mod artifacts;
pub mod atomic_file;
mod bindings;
pub mod cache;
pub mod capabilities;
pub mod capture;
pub mod check;
pub mod diagnostic;
pub mod engine;
pub mod events;
pub mod exit_codes;
pub mod grants;
pub mod inspect;
pub mod layout;
pub mod limits;
pub mod lockfile;
pub mod manifest;
pub mod net;
pub mod plugin;
pub mod plugin_store;
pub mod process;
pub mod provenance;
pub mod registry;
pub mod report;
pub mod reporters;
pub mod resolve;
pub mod runner;
pub mod sandbox;
pub mod scaffold;
pub mod secrets;
pub mod sharing;
pub mod signing;

pub use engine::Host;
