//! Tests proven flaky across the run history (`sluice runs flaky`): a test that passed in one
//! run and failed in another under the same stage key — the plugin, config, grants, inputs and
//! workspace the key is a digest of were identical, so only the test itself differed. A run
//! whose stage was served from the stage cache ran no test and counts for nothing; a stage run
//! with no recorded key (stage cache off or the stage not cached) cannot prove anything and is
//! only counted, so the list can say how many were left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::report::{RunReport, qualified};
use crate::model::test_cases::{self, Outcome};

/// A test that both passed and failed under one stage key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlakyFinding {
    pub pipeline: String,
    pub stage: String,
    /// The stage key both outcomes were under.
    pub key: String,
    /// `class::name` as its JUnit names it.
    pub test: String,
    pub passed: usize,
    pub failed: usize,
    /// The runs (ids) it passed in and failed in, oldest first; a run whose retries proved it
    /// flaky is in both.
    pub passed_in: Vec<String>,
    pub failed_in: Vec<String>,
}

/// What the run history says about flaky tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlakyHistory {
    pub flaky: Vec<FlakyFinding>,
    /// Stage runs with test results but no recorded stage key: not considered.
    pub without_key: usize,
    /// Runs read.
    pub runs: usize,
}

#[derive(Default)]
struct Tally {
    passed_in: Vec<String>,
    failed_in: Vec<String>,
}

/// Groups every test outcome in `reports` by pipeline, stage, stage key and test; the tests
/// with both outcomes under one key are flaky.
pub fn flaky_history(reports: &[RunReport]) -> FlakyHistory {
    let mut reports: Vec<&RunReport> = reports.iter().collect();
    reports.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut tallies: BTreeMap<(String, String, String, String), Tally> = BTreeMap::new();
    let mut without_key = 0;
    for report in &reports {
        for stage in &report.stages {
            let key = match &stage.cache {
                // A hit ran nothing: its outcomes are the stored run's.
                Some(cache) if cache.hit => continue,
                Some(cache) => Some(cache.key.clone()),
                None => None,
            };
            let cases = test_cases::of_stage(report, stage);
            if cases.is_empty() {
                continue;
            }
            let Some(key) = key else {
                without_key += 1;
                continue;
            };
            let mut tally = |test: String, failed: bool| {
                let entry = tallies
                    .entry((
                        report.pipeline.clone(),
                        stage.name.clone(),
                        key.clone(),
                        test,
                    ))
                    .or_default();
                let runs = if failed {
                    &mut entry.failed_in
                } else {
                    &mut entry.passed_in
                };
                runs.push(report.run_id.clone());
            };
            for case in &cases {
                match case.outcome {
                    Outcome::Passed => tally(qualified(&case.class, &case.name), false),
                    Outcome::Failed => tally(qualified(&case.class, &case.name), true),
                    Outcome::Skipped => {}
                }
            }
            // An attempt its retries proved flaky failed in this run too.
            for test in &stage.flaky {
                tally(test.qualified(), true);
            }
        }
    }
    let flaky = tallies
        .into_iter()
        .filter(|(_, t)| !t.passed_in.is_empty() && !t.failed_in.is_empty())
        .map(|((pipeline, stage, key, test), t)| FlakyFinding {
            pipeline,
            stage,
            key,
            test,
            passed: t.passed_in.len(),
            failed: t.failed_in.len(),
            passed_in: t.passed_in,
            failed_in: t.failed_in,
        })
        .collect();
    FlakyHistory {
        flaky,
        without_key,
        runs: reports.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of stage `test` whose published junit.xml holds `cases` (name, passed), under
    /// `key` (or none).
    fn run(
        dir: &std::path::Path,
        id: &str,
        key: Option<&str>,
        cases: &[(&str, bool)],
    ) -> anyhow::Result<RunReport> {
        let run_dir = dir.join(id);
        std::fs::create_dir_all(run_dir.join("artifacts/test"))?;
        let mut xml = String::from("<testsuites><testsuite name=\"unit\">");
        for (name, passed) in cases {
            xml.push_str(&format!("<testcase classname=\"c\" name=\"{name}\">"));
            if !passed {
                xml.push_str("<failure message=\"boom\"/>");
            }
            xml.push_str("</testcase>");
        }
        xml.push_str("</testsuite></testsuites>");
        std::fs::write(run_dir.join("artifacts/test/junit.xml"), &xml)?;
        let failed = cases.iter().any(|(_, passed)| !passed);
        Ok(serde_json::from_value(serde_json::json!({
            "schema": 1, "pipeline": "p", "pipeline_file": "p.toml", "pipeline_sha256": "x",
            "run_id": id, "run_dir": run_dir, "status": if failed { "failed" } else { "succeeded" },
            "exit_code": 0, "started_at": id, "finished_at": id, "duration_ms": 0.0,
            "sluice_version": "0",
            "stages": [{
                "name": "test", "phase": "test",
                "status": if failed { "failed" } else { "succeeded" },
                "started_at": null, "duration_ms": null, "inputs": [], "summary": null,
                "message": null, "log": null,
                "plugin": { "reference": "t.wasm", "sha256": null, "size": null, "name": null,
                    "version": null, "cache_hit": null, "load_ms": null },
                "outputs": if failed { serde_json::json!([]) } else { serde_json::json!([{
                    "stage": "test", "name": "junit.xml", "path": "artifacts/test/junit.xml",
                    "media_type": "application/xml", "size": xml.len(), "sha256": "0" }]) },
                "cache": key.map(|k| serde_json::json!({ "key": k, "hit": false })),
            }],
        }))?)
    }

    #[test]
    fn only_a_test_that_passed_and_failed_under_one_key_is_flaky() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let reports = [
            run(
                d,
                "r1",
                Some("k1"),
                &[("sometimes", false), ("always", true)],
            )?,
            run(
                d,
                "r2",
                Some("k1"),
                &[("sometimes", true), ("always", true)],
            )?,
            // Failed under another key only: a change, not a flake.
            run(d, "r3", Some("k2"), &[("changed", false), ("always", true)])?,
            run(d, "r4", Some("k3"), &[("changed", true), ("always", true)])?,
            // No key: not considered, only counted.
            run(d, "r5", None, &[("changed", false)])?,
        ];
        let history = flaky_history(&reports);
        let found: Vec<(&str, &str, usize, usize)> = history
            .flaky
            .iter()
            .map(|f| (f.test.as_str(), f.key.as_str(), f.passed, f.failed))
            .collect();
        assert_eq!(found, [("c::sometimes", "k1", 1, 1)]);
        assert_eq!(history.flaky[0].failed_in, ["r1"]);
        assert_eq!(history.flaky[0].passed_in, ["r2"]);
        assert_eq!(history.without_key, 1);
        assert_eq!(history.runs, 5);
        Ok(())
    }

    #[test]
    fn a_cache_hit_counts_for_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let mut hit = run(d, "r2", Some("k1"), &[("sometimes", true)])?;
        if let Some(cache) = hit.stages[0].cache.as_mut() {
            cache.hit = true;
        }
        let reports = [run(d, "r1", Some("k1"), &[("sometimes", false)])?, hit];
        assert!(flaky_history(&reports).flaky.is_empty());
        Ok(())
    }
}
