//! Where a stage runs: the wasmtime engine and its compiled-code cache, one module per
//! capability a stage can be granted, the per-stage state built from its grants, and the
//! limits, log capture and network policy around it.

pub mod bindings;
pub mod cache;
pub mod capability;
pub mod caps;
pub mod capture;
pub mod digest;
pub mod dns;
pub mod engine;
pub mod env;
pub mod limits;
pub mod net;
pub mod process;
pub mod process_group;
pub mod setup;
pub mod spec;
pub mod state;
pub mod trap;
