//! The files a sluice user writes (`pipeline.toml`) and the file sluice writes for them
//! (`pipeline.lock`): their formats, parsing, validation and diagnostics. No wasm runtime, no
//! network, no file writing: everything here is a pure function of the files' text, so it builds
//! in seconds and every user mistake can be tested against a golden error message.

pub mod capabilities;
pub mod diagnostic;
pub mod files;
pub mod grants;
pub mod ignore;
pub mod limits;
pub mod lockfile;
pub mod names;
pub mod pipeline;
pub mod plugin_ref;
mod source;

pub use diagnostic::Diagnostic;
pub use pipeline::{Pipeline, StageSpec, load, parse};
pub use source::decode;
