//! What a `sluice run` did with each stage, read from its JSON report (`--report FILE`, the same
//! record as `<run-dir>/report.json`; `host/src/model/report.rs`): whether the stage cache served
//! it (`cache.hit`), or it ran — on a miss, or because it is not cached at all — and how the
//! rounds of one case add up.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// How one stage of one run met the stage cache.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOutcome {
    pub name: String,
    /// `Some(true)`: served from the stage cache; `Some(false)`: a cached stage that ran (a miss);
    /// `None`: a stage with no cache, which always runs.
    pub hit: Option<bool>,
    /// On a miss of a stage stored before: which parts of its key moved (`cache.why`).
    pub why: Vec<String>,
    /// How long the stage took (`duration_ms`; 0 when the report has none).
    pub duration_ms: f64,
}

/// The stages of a run report, in its order. Fails on a report that is not one, or on a stage
/// that did not succeed (a run that failed is not a figure).
pub fn read(report: &str) -> Result<Vec<StageOutcome>> {
    let report: Value = serde_json::from_str(report).context("the run report is not JSON")?;
    let stages = report["stages"]
        .as_array()
        .context("the run report has no `stages` list")?;
    stages
        .iter()
        .map(|stage| {
            let name = stage["name"]
                .as_str()
                .context("a stage of the run report has no name")?
                .to_string();
            let status = stage["status"].as_str().unwrap_or("?");
            if status != "succeeded" {
                bail!("stage `{name}` is {status} in the run report");
            }
            let cache = &stage["cache"];
            let hit = match cache {
                Value::Null => None,
                cache => Some(
                    cache["hit"]
                        .as_bool()
                        .with_context(|| format!("stage `{name}`: `cache` has no `hit`"))?,
                ),
            };
            let why = cache["why"]
                .as_array()
                .map(|why| {
                    why.iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let duration_ms = stage["duration_ms"].as_f64().unwrap_or(0.0);
            Ok(StageOutcome {
                name,
                hit,
                why,
                duration_ms,
            })
        })
        .collect()
}

/// The time of a run spent outside its stages: `wall_ms` less the stages' durations (the
/// pipelines measured are chains, one stage at a time).
pub fn outside_ms(run: &[StageOutcome], wall_ms: f64) -> f64 {
    wall_ms - run.iter().map(|stage| stage.duration_ms).sum::<f64>()
}

/// One line for the stages of a case over its rounds: `code ran (not cached), build hit,
/// test miss`; a stage whose rounds differ says how many hit (`build hit 2/3`).
pub fn summary(rounds: &[Vec<StageOutcome>]) -> String {
    let Some(first) = rounds.first() else {
        return String::new();
    };
    let parts: Vec<String> = first
        .iter()
        .map(|stage| {
            let seen: Vec<Option<bool>> = rounds
                .iter()
                .filter_map(|run| run.iter().find(|s| s.name == stage.name))
                .map(|s| s.hit)
                .collect();
            let hits = seen.iter().filter(|hit| **hit == Some(true)).count();
            let what = if seen.iter().all(Option::is_none) {
                "ran (not cached)".to_string()
            } else if hits == seen.len() {
                "hit".to_string()
            } else if hits == 0 {
                "miss, ran".to_string()
            } else {
                format!("hit {hits}/{}", seen.len())
            };
            format!("{} {what}", stage.name)
        })
        .collect();
    parts.join(", ")
}

/// Why the stages of `run` that were stored before missed, stages with the same reasons
/// together: `deps, test: workspace: index.js (changed)`, the reasons cut to `width` characters.
pub fn misses(run: &[StageOutcome], width: usize) -> Vec<String> {
    let mut grouped: Vec<(Vec<&str>, String)> = Vec::new();
    for stage in run
        .iter()
        .filter(|s| s.hit == Some(false) && !s.why.is_empty())
    {
        let why = stage.why.join("; ");
        match grouped.iter_mut().find(|(_, reason)| *reason == why) {
            Some((names, _)) => names.push(&stage.name),
            None => grouped.push((vec![&stage.name], why)),
        }
    }
    grouped
        .into_iter()
        .map(|(names, why)| {
            let cut: String = why.chars().take(width).collect();
            let more = if cut.len() < why.len() { " …" } else { "" };
            format!("{}: {cut}{more}", names.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
        "schema": 1, "pipeline": "semver", "status": "succeeded",
        "stages": [
            {"name": "code", "status": "succeeded", "plugin": {}, "duration_ms": 12.5},
            {"name": "build", "status": "succeeded", "cache": {"key": "ab", "hit": true}},
            {"name": "test", "status": "succeeded", "cache": {"key": "cd", "hit": false, "why": ["workspace"]}}
        ]
    }"#;

    fn outcome(name: &str, hit: Option<bool>) -> StageOutcome {
        StageOutcome {
            name: name.to_string(),
            hit,
            why: Vec::new(),
            duration_ms: 0.0,
        }
    }

    #[test]
    fn reads_hits_misses_and_uncached_stages() -> Result<()> {
        assert_eq!(
            read(REPORT)?,
            [
                StageOutcome {
                    duration_ms: 12.5,
                    ..outcome("code", None)
                },
                outcome("build", Some(true)),
                StageOutcome {
                    why: vec!["workspace".to_string()],
                    ..outcome("test", Some(false))
                }
            ]
        );
        Ok(())
    }

    #[test]
    fn time_outside_the_stages() -> Result<()> {
        assert_eq!(outside_ms(&read(REPORT)?, 100.0), 87.5);
        Ok(())
    }

    #[test]
    fn misses_say_why_cut_short() -> Result<()> {
        let run = read(REPORT)?;
        assert_eq!(misses(&run, 100), ["test: workspace"]);
        assert_eq!(misses(&run, 4), ["test: work …"]);
        let mut twice = run.clone();
        twice.push(StageOutcome {
            name: "release".to_string(),
            ..run[2].clone()
        });
        assert_eq!(misses(&twice, 100), ["test, release: workspace"]);
        Ok(())
    }

    #[test]
    fn a_stage_that_did_not_succeed_or_a_broken_report_is_an_error() {
        let failed = REPORT.replace(
            r#""test", "status": "succeeded""#,
            r#""test", "status": "failed""#,
        );
        let err = read(&failed)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("stage `test` is failed"), "{err}");
        assert!(read("not json").is_err());
        assert!(read(r#"{"stages": [{"status": "succeeded"}]}"#).is_err());
        assert!(
            read(r#"{"stages": [{"name": "x", "status": "succeeded", "cache": {}}]}"#).is_err()
        );
    }

    #[test]
    fn summary_over_rounds() {
        let round = |test_hit| {
            vec![
                outcome("code", None),
                outcome("build", Some(true)),
                outcome("test", Some(test_hit)),
            ]
        };
        assert_eq!(
            summary(&[round(true), round(true)]),
            "code ran (not cached), build hit, test hit"
        );
        assert_eq!(
            summary(&[round(false), round(true), round(false)]),
            "code ran (not cached), build hit, test hit 1/3"
        );
        assert_eq!(
            summary(&[round(false)]),
            "code ran (not cached), build hit, test miss, ran"
        );
        assert_eq!(summary(&[]), "");
    }
}
