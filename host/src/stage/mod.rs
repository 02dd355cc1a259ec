//! Everything about one stage, wherever it runs — in a local run, alone (`sluice stage run`),
//! checked (`sluice check`) or on an agent: the [`LockedStage`] resolution and loading decide,
//! one [`prepare`](PreparedStage) of its plugin and secrets, one [`StageExecution`] with its
//! start, attempts and end, the [`output`] folder as a type, the hand-over of [`inputs`], the
//! stage [`cache`], its cache [`volumes`], and the rule that keeps sluice's own folders out of
//! its [`reach`].

mod attempt;
pub mod cache;
mod ending;
mod execution;
pub mod flaky;
pub mod inputs;
mod interrupt;
mod learn;
mod locked;
pub mod output;
mod prepare;
pub mod quarantine;
pub mod reach;
mod record;
pub mod volumes;

pub use ending::Ending;
pub use execution::{Elsewhere, StageExecution, StageSurroundings};
pub use inputs::{GivenInput, select_inputs};
pub use interrupt::Interrupt;
pub use locked::{LockedStage, uncacheable};
pub use prepare::{PreparedStage, RunsOn, preflight};
pub use record::{earlier_stages, pending_record};
