//! A stage's output folder (`artifacts/<stage>/`, its `/out`), as one type: measured while the
//! stage runs ([`watch`]), tidied of what must never stay ([`tidy`]), its declared outputs
//! checked and hashed ([`publish`]), and a full disk under it said plainly ([`space`]).

mod publish;
mod space;
mod tidy;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::limits::Limits;
use crate::model::events::EventSink;
use crate::model::layout::RunLayout;
use crate::model::report::StageRecord;
use crate::sandbox::bindings::StageResult;
use crate::sandbox::capture::StageLog;
use crate::trust::secrets::Masker;

use super::Ending;
pub use tidy::Tidied;

/// One stage's output folder, with the limits and secrets that decide what may stay in it.
pub struct OutputFolder<'a> {
    dir: PathBuf,
    stage: &'a str,
    limits: Limits,
    masker: &'a Masker,
}

impl<'a> OutputFolder<'a> {
    /// The output folder of `stage` in the run folder `layout`.
    pub fn of(layout: &RunLayout, stage: &'a str, limits: Limits, masker: &'a Masker) -> Self {
        Self {
            dir: layout.artifacts_of(stage),
            stage,
            limits,
            masker,
        }
    }

    /// Empties the output folder of `stage` in `layout` (a stage that starts over).
    pub fn clear(layout: &RunLayout, stage: &str) {
        watch::empty(&layout.artifacts_of(stage));
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the folder (and the ones above it).
    pub fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))
    }

    /// Removes everything in the folder (not the folder itself).
    pub fn empty(&self) {
        watch::empty(&self.dir);
    }

    /// Resolves when the folder holds more than the stage's limits allow, saying which limit it
    /// broke; never while it stays within them.
    pub async fn overrun(&self) -> String {
        watch::overrun(&self.dir, self.limits).await
    }

    /// Removes every entry that must never be published or stay in a run folder, says so in the
    /// stage's log and in `denied`, and returns what went.
    pub fn tidy(&self, log: &StageLog, denied: &mut Vec<String>) -> Tidied {
        tidy::sweep(self, log, denied)
    }

    /// Checks and hashes what the stage declared into `record`; any broken promise fails it.
    pub fn publish(
        &self,
        result: StageResult,
        tidied: &Tidied,
        record: &mut StageRecord,
        events: &EventSink,
    ) -> Ending {
        publish::publish(self, result, tidied, record, events)
    }

    /// If `record` (a stage that did not succeed) ran out of room here: says so in its message
    /// and frees what the stage left half-written.
    pub fn explain_full_disk(&self, record: &mut StageRecord) {
        space::explain_full_disk(record, &self.dir);
    }

    /// Plugin-chosen text made safe to record: secrets masked, control characters escaped.
    pub fn shown(&self, text: &str) -> String {
        crate::model::text::one_line(&self.masker.mask(text), crate::model::text::MAX_FIELD_BYTES)
    }
}
