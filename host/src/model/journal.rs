//! The journal of a run in progress. `report.json` is written once when the stages start; after
//! that, each stage record that changes is appended to `journal.jsonl` — one short append instead
//! of rewriting the whole report, whose rename over the old file costs a metadata flush per stage
//! (about half of a one-file stage's time on ext4). `RunReport::read` applies the journal, so a
//! run killed at any moment still reads as where it stopped; a torn last line is ignored.

use std::borrow::Borrow;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::report::{JournalEntry, StageRecord, journal_path as path_in};
use anyhow::{Context, Result};

/// Appends the records that changed since the last append.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    written: Vec<StageRecord>,
    /// A write failed part-way (a full disk): the next append first ends that torn line.
    torn: bool,
}

impl JournalWriter {
    /// Starts an empty journal beside a report that already holds `records` (a journal left by
    /// an earlier attempt of the run is already part of that report, so it is cleared).
    pub fn start<R: Borrow<StageRecord>>(run_dir: &Path, records: &[R]) -> Result<Self> {
        let path = path_in(run_dir);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|file| file.set_len(0).map(|()| file))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(JournalWriter {
            file,
            path,
            written: records.iter().map(|r| r.borrow().clone()).collect(),
            torn: false,
        })
    }

    /// Appends every record that differs from what the journal already says, in one write.
    pub fn append<R: Borrow<StageRecord>>(&mut self, records: &[R], elapsed_ms: f64) -> Result<()> {
        let mut lines = Vec::new();
        if self.torn {
            lines.push(b'\n');
        }
        for record in records.iter().map(Borrow::borrow) {
            let known = self.written.iter_mut().find(|w| w.name == record.name);
            if known.as_deref() == Some(record) {
                continue;
            }
            let entry = JournalEntry {
                elapsed_ms,
                stage: record.clone(),
            };
            serde_json::to_writer(&mut lines, &entry).context("cannot serialize a stage record")?;
            lines.push(b'\n');
            match known {
                Some(known) => *known = record.clone(),
                None => self.written.push(record.clone()),
            }
        }
        if lines.len() <= usize::from(self.torn) {
            return Ok(());
        }
        let written = self.file.write_all(&lines);
        self.torn = written.is_err();
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Removes the journal once the finished report holds everything it said.
pub fn remove(run_dir: &Path) {
    let _ = std::fs::remove_file(path_in(run_dir));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::{RunReport, StageStatus};

    fn report(status: &str) -> Result<RunReport> {
        let stage = |name: &str| {
            serde_json::json!({
                "name": name, "status": "pending", "outputs": [], "inputs": [],
                "plugin": { "reference": "p.wasm" },
            })
        };
        Ok(serde_json::from_value(serde_json::json!({
            "schema": 1, "pipeline": "p", "pipeline_file": "p.toml", "pipeline_sha256": "x",
            "run_id": "r", "run_dir": "d", "status": status, "exit_code": 0,
            "started_at": "t", "finished_at": "t", "duration_ms": 0.0, "sluice_version": "0",
            "stages": [stage("a"), stage("b")],
        }))?)
    }

    #[test]
    fn a_report_reads_as_its_journal_left_it_and_a_torn_line_is_skipped() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut records = report("running")?.stages;
        let mut writer = JournalWriter::start(dir.path(), &records)?;
        writer.append(&records, 1.0)?;
        assert_eq!(std::fs::metadata(path_in(dir.path()))?.len(), 0);
        records[0].status = StageStatus::Succeeded;
        writer.append(&records, 2.0)?;
        records[1].status = StageStatus::Running;
        writer.append(&records, 3.0)?;
        let two_lines = std::fs::read(path_in(dir.path()))?;
        assert_eq!(two_lines.iter().filter(|b| **b == b'\n').count(), 2);
        // A crash in the middle of the next append.
        let mut torn = two_lines.clone();
        torn.extend_from_slice(br#"{"elapsed_ms":4.0,"stage":{"name":"b","sta"#);
        std::fs::write(path_in(dir.path()), &torn)?;
        let mut cut = report("running")?;
        cut.apply_journal(dir.path());
        assert_eq!(cut.stages[1].status, StageStatus::Running);
        // A write cut short by a full disk, then later ones that went through: the torn line is
        // skipped and what followed it still counts.
        writer.torn = true;
        records[1].status = StageStatus::Failed;
        writer.append(&records, 5.0)?;

        let mut running = report("running")?;
        running.apply_journal(dir.path());
        let statuses: Vec<StageStatus> = running.stages.iter().map(|s| s.status).collect();
        assert_eq!(statuses, [StageStatus::Succeeded, StageStatus::Failed]);
        assert_eq!(running.duration_ms, 5.0);

        // A finished report already holds everything: a journal left beside it changes nothing.
        let mut finished = report("succeeded")?;
        finished.apply_journal(dir.path());
        assert!(
            finished
                .stages
                .iter()
                .all(|s| s.status == StageStatus::Pending)
        );
        Ok(())
    }
}
