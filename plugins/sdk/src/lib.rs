//! Write a sluice pipeline stage in Rust: implement [`Stage`] and call [`stage!`].
//!
//! ```ignore
//! use sluice_sdk::{Context, Failure, Phase, Stage};
//!
//! struct Upper;
//! impl Stage for Upper {
//!     const PHASE: Phase = Phase::Build;
//!     const DESCRIPTION: &'static str = "Upper-cases every input";
//!     fn run(ctx: &mut Context) -> Result<(), Failure> {
//!         for input in ctx.inputs().to_vec() {
//!             let text = ctx.read_to_string(&input)?;
//!             ctx.write_output(&input.name, "text/plain", text.to_uppercase())?;
//!         }
//!         Ok(())
//!     }
//! }
//! sluice_sdk::stage!(Upper);
//! ```

mod context;
mod exec;
mod failure;
pub mod junit;
pub mod links;
pub mod stream;

pub use context::Context;
pub use exec::{Command, Completed, secret};
pub use failure::Failure;
pub use stream::{OutputFile, sha256_file, sha256_hex};

/// The generated bindings for the `stage` world (`wit/`). Most stages never need them.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "stage-full",
        pub_export_macro: true,
        export_macro_name: "export_stage",
        default_bindings_module: "sluice_sdk::bindings",
    });
}

pub use bindings::sluice::pipeline::log::Level;
pub use bindings::sluice::pipeline::types::{Artifact, Phase, PluginInfo, StageRun};

/// A pipeline stage. `run` is called once per pipeline run in a fresh sandbox that holds the
/// stage's inputs (read-only) and its output directory.
pub trait Stage {
    /// Which part of the delivery flow this stage belongs to.
    const PHASE: Phase;
    /// One line on what the stage does, shown by `sluice check` and `sluice inspect`.
    const DESCRIPTION: &'static str;

    /// Does the stage's work. Return `Err` to stop the pipeline here.
    fn run(ctx: &mut Context) -> Result<(), Failure>;
}

/// Sends a line to the stage's log (prefixed with the stage name by the host).
pub fn log(level: Level, message: &str) {
    bindings::sluice::pipeline::log::log(level, message);
}

/// The host variable `name`, when the stage is granted it (`allow.env`) and it is set. Unlike
/// `std::env::var`, asking here lets sluice see the name: one the stage is not granted is
/// recorded, and `sluice run --learn` proposes `env = ["NAME"]` for it.
pub fn env(name: &str) -> Option<String> {
    bindings::sluice::pipeline::env::get(name)
}

/// `info!("built {} files", n)` — a formatted info line in the stage log.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) };
}

/// A formatted warning in the stage log.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) };
}

/// A formatted debug line (shown with `sluice run --verbose`).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) };
}

/// Returns early with a [`Failure`] built from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::Failure::new(format!($($arg)*))) };
}

/// Exports `$stage` (a type implementing [`Stage`]) as the component's `stage` world, with the
/// plugin's name and version taken from its Cargo package.
#[macro_export]
macro_rules! stage {
    ($stage:ident) => {
        struct __SluiceGuest;
        impl $crate::bindings::Guest for __SluiceGuest {
            fn describe() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    name: env!("CARGO_PKG_NAME").to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    phase: <$stage as $crate::Stage>::PHASE,
                    description: <$stage as $crate::Stage>::DESCRIPTION.to_string(),
                }
            }
            fn run(
                ctx: $crate::bindings::sluice::pipeline::types::StageContext,
            ) -> Result<
                $crate::bindings::sluice::pipeline::types::StageResult,
                $crate::bindings::sluice::pipeline::types::Failure,
            > {
                $crate::__run::<$stage>(ctx)
            }
        }
        $crate::bindings::export_stage!(__SluiceGuest with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub fn __run<S: Stage>(
    raw: bindings::sluice::pipeline::types::StageContext,
) -> Result<
    bindings::sluice::pipeline::types::StageResult,
    bindings::sluice::pipeline::types::Failure,
> {
    let mut ctx = Context::new(raw);
    match S::run(&mut ctx) {
        Ok(()) => Ok(ctx.into_result()),
        Err(failure) => Err(bindings::sluice::pipeline::types::Failure {
            message: failure.into_message(),
        }),
    }
}
