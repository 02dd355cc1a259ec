//! The runs `sluice serve` lists, kept in memory: a request reads the folders' listings and each
//! run's report.json size and time, and reads a report only when it is new or changed — a runs
//! folder of 10,000 runs is not read 10,000 times per page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::model::report::{JOURNAL_FILE, RunReport, RunStatus};

/// How long a listing is trusted before the folders are looked at again.
const FRESH_FOR: Duration = Duration::from_millis(500);

/// One run as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub pipeline: String,
    pub trigger: String,
    pub status: RunStatus,
    pub duration_ms: f64,
    pub started_at: String,
    /// Where its stages ran: `local`, and the agents that ran some.
    pub machine: String,
    #[serde(skip)]
    pub dir: PathBuf,
    /// The runs folder it is in (canonical).
    #[serde(skip)]
    pub root: PathBuf,
    #[serde(skip)]
    stamp: Stamp,
}

/// What tells that a run's record changed: its report's and journal's sizes and times.
type Stamp = [(u64, Option<SystemTime>); 2];

/// The runs of the runs folders, newest first.
pub struct RunIndex {
    roots: Vec<PathBuf>,
    /// A folder of runs folders (every pipeline's default), listed again on each refresh.
    home: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<String, RunSummary>,
    newest_first: Arc<Vec<RunSummary>>,
    checked: Option<Instant>,
    /// Each runs folder's time when it was last listed in full, and when that was: a folder
    /// whose time has not moved has no run added or removed, so only its live runs (running,
    /// awaiting approval) and folders without a record yet are looked at again.
    listed: HashMap<PathBuf, (SystemTime, Instant)>,
    /// Run folders seen without a record yet (a run starting).
    unrecorded: Vec<(PathBuf, String)>,
}

/// A folder time this recent, or a listing this old, is not trusted: the folder is listed again.
const SETTLED: Duration = Duration::from_secs(2);
const RELIST_EVERY: Duration = Duration::from_secs(30);

/// A run id is one plain path segment (letters, digits, `-`): never a way out of a runs folder.
pub fn is_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl RunIndex {
    /// The index of `roots` (canonicalized; a folder that does not exist yet is kept as given
    /// and listed once it does), and of each folder in `home`.
    pub fn new(roots: &[PathBuf], home: Option<PathBuf>) -> Self {
        Self {
            roots: roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            home,
            state: Mutex::new(State::default()),
        }
    }

    /// The runs folders now: those given, and those in `home` (not symlinks).
    fn all_roots(&self) -> Vec<PathBuf> {
        let mut roots = self.roots.clone();
        if let Some(home) = &self.home {
            let found = std::fs::read_dir(home).into_iter().flatten().flatten();
            roots.extend(
                found
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| std::fs::canonicalize(e.path()).ok()),
            );
        }
        roots
    }

    /// Every run, newest first, as of at most `FRESH_FOR` ago.
    pub fn runs(&self) -> Arc<Vec<RunSummary>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.is_none_or(|at| at.elapsed() >= FRESH_FOR) {
            self.refresh(&mut state);
            state.checked = Some(Instant::now());
        }
        state.newest_first.clone()
    }

    /// The run `id`, looked up now.
    pub fn find(&self, id: &str) -> Option<RunSummary> {
        if !is_run_id(id) {
            return None;
        }
        let runs = self.runs();
        if let Some(run) = runs.iter().find(|r| r.id == id) {
            return Some(run.clone());
        }
        // A run started since the last listing.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut state);
        state.checked = Some(Instant::now());
        state.by_id.get(id).cloned()
    }

    fn refresh(&self, state: &mut State) {
        let mut changed = false;
        let mut unrecorded = Vec::new();
        let roots = self.all_roots();
        let before = state.by_id.len();
        // Runs of folders no longer shown.
        state.by_id.retain(|_, run| roots.contains(&run.root));
        changed |= state.by_id.len() != before;
        for root in &roots {
            let Some((ids, listed)) = self.candidates(state, root) else {
                continue;
            };
            if listed {
                // Runs removed from the folder.
                let present: std::collections::HashSet<&String> = ids.iter().collect();
                let before = state.by_id.len();
                state
                    .by_id
                    .retain(|id, run| run.root != *root || present.contains(id));
                changed |= state.by_id.len() != before;
            }
            for id in ids {
                let known = state.by_id.get(&id);
                if known.is_some_and(|k| k.root != *root) {
                    // The same id in an earlier runs folder: that one is shown.
                    continue;
                }
                let live = known.is_none_or(|k| {
                    matches!(k.status, RunStatus::Running | RunStatus::AwaitingApproval)
                });
                if !live && !listed {
                    continue;
                }
                let dir = root.join(&id);
                let Some(stamp) = stamp(&dir, live) else {
                    changed |= state.by_id.remove(&id).is_some();
                    unrecorded.push((root.clone(), id));
                    continue;
                };
                if known.is_some_and(|k| k.stamp == stamp) {
                    continue;
                }
                changed = true;
                match summarize(&dir, root, &id, stamp) {
                    Some(summary) => {
                        state.by_id.insert(id, summary);
                    }
                    None => {
                        state.by_id.remove(&id);
                    }
                }
            }
        }
        if changed {
            let mut list: Vec<RunSummary> = state.by_id.values().cloned().collect();
            list.sort_by(|a, b| {
                b.started_at
                    .cmp(&a.started_at)
                    .then_with(|| b.id.cmp(&a.id))
            });
            state.newest_first = Arc::new(list);
        }
        state.unrecorded = unrecorded;
    }

    /// The run ids of `root` to look at, and whether the folder was listed: all its folders
    /// when it changed (or is not trusted), else those known and those without a record yet.
    fn candidates(&self, state: &mut State, root: &Path) -> Option<(Vec<String>, bool)> {
        let time = std::fs::metadata(root).ok()?.modified().ok()?;
        let settled = time.elapsed().is_ok_and(|age| age >= SETTLED);
        let unchanged = state
            .listed
            .get(root)
            .is_some_and(|(listed, at)| *listed == time && at.elapsed() < RELIST_EVERY);
        if settled && unchanged {
            // Only those that may still change.
            let mut ids: Vec<String> = state
                .by_id
                .values()
                .filter(|run| run.root == root)
                .filter(|run| {
                    matches!(run.status, RunStatus::Running | RunStatus::AwaitingApproval)
                })
                .map(|run| run.id.clone())
                .collect();
            ids.extend(
                state
                    .unrecorded
                    .iter()
                    .filter(|(r, _)| r == root)
                    .map(|(_, id)| id.clone()),
            );
            return Some((ids, false));
        }
        let entries = std::fs::read_dir(root).ok()?;
        let ids = entries
            .flatten()
            // Symlinks (`latest`, or one planted to point elsewhere) are not runs here.
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
            .filter(|id| is_run_id(id))
            .collect();
        state
            .listed
            .insert(root.to_path_buf(), (time, Instant::now()));
        Some((ids, true))
    }
}

fn stamp(dir: &Path, running: bool) -> Option<Stamp> {
    let report = std::fs::symlink_metadata(dir.join("report.json")).ok()?;
    if !report.is_file() {
        return None;
    }
    let journal = if running {
        std::fs::symlink_metadata(dir.join(JOURNAL_FILE))
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
            .unwrap_or((0, None))
    } else {
        (0, None)
    };
    Some([(report.len(), report.modified().ok()), journal])
}

fn summarize(dir: &Path, root: &Path, id: &str, stamp: Stamp) -> Option<RunSummary> {
    let report = RunReport::read(&dir.join("report.json")).ok()?;
    let mut agents: Vec<&str> = report
        .stages
        .iter()
        .filter_map(|s| s.ran_on.as_deref())
        .map(|on| on.split(" (").next().unwrap_or(on))
        .collect();
    agents.sort_unstable();
    agents.dedup();
    let local = report.stages.iter().any(|s| s.ran_on.is_none());
    let mut machine: Vec<&str> = Vec::new();
    if local || agents.is_empty() {
        machine.push("local");
    }
    machine.extend(agents);
    Some(RunSummary {
        id: id.to_string(),
        pipeline: report.pipeline,
        trigger: report.trigger,
        status: report.status,
        duration_ms: report.duration_ms,
        started_at: report.started_at,
        machine: machine.join(", "),
        dir: dir.to_path_buf(),
        root: root.to_path_buf(),
        stamp,
    })
}

#[cfg(test)]
impl RunSummary {
    pub(super) fn for_test(id: &str, status: RunStatus, started_at: &str) -> Self {
        Self {
            id: id.to_string(),
            pipeline: String::new(),
            trigger: String::new(),
            status,
            duration_ms: 0.0,
            started_at: started_at.to_string(),
            machine: String::new(),
            dir: PathBuf::new(),
            root: PathBuf::new(),
            stamp: [(0, None); 2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn write_run(root: &Path, id: &str, started_at: &str, status: &str) -> Result {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir)?;
        let record = serde_json::json!({
            "schema": 1, "pipeline": "p", "pipeline_file": "", "pipeline_sha256": "",
            "run_id": id, "run_dir": "", "status": status, "exit_code": 0,
            "started_at": started_at, "finished_at": "", "duration_ms": 1.0,
            "sluice_version": "", "stages": []
        });
        std::fs::write(dir.join("report.json"), record.to_string())?;
        Ok(())
    }

    #[test]
    fn runs_are_listed_newest_first_and_changes_are_seen() -> Result {
        let temp = tempfile::tempdir()?;
        let root = temp.path().join("runs");
        write_run(&root, "a-1", "2026-01-01T00:00:00Z", "succeeded")?;
        write_run(&root, "b-2", "2026-01-02T00:00:00Z", "failed")?;
        write_run(temp.path(), "outside", "2026-01-03T00:00:00Z", "failed")?;
        std::os::unix::fs::symlink(temp.path().join("outside"), root.join("evil"))?;
        let index = RunIndex::new(std::slice::from_ref(&root), None);
        let ids: Vec<String> = index.runs().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, ["b-2", "a-1"]);
        assert!(index.find("evil").is_none());
        assert!(index.find("../outside").is_none());
        // A changed record is read again (the listing is trusted for a moment only).
        write_run(&root, "a-1", "2026-01-01T00:00:00Z", "error")?;
        std::thread::sleep(FRESH_FOR);
        let a = index.find("a-1").ok_or("a-1 is not listed")?;
        assert_eq!(a.status, RunStatus::Error);
        Ok(())
    }

    #[test]
    fn only_plain_segments_are_run_ids() {
        assert!(is_run_id("20260101T000000Z-0a1b2c"));
        for bad in ["", "..", "../x", "a/b", "a%2fb", "a.b", "latest/.."] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }
}
