//! A stage's quarantine: when it fails and every failed test in the JUnit it left is a
//! quarantined one (its entry not expired), it counts as succeeded — the files it wrote are
//! published as a success's are, and its record and log name the failures it was let off.
//! A failure with no failed test in its JUnit (a build error) is never excused.

use crate::config::pipeline::quarantine::Quarantine;
use crate::model::events::LogSource;
use crate::model::report::StageRecord;
use crate::model::test_cases::{self, Outcome, TestCase};
use crate::sandbox::bindings::sluice::pipeline::types::{Output, StageResult};
use crate::sandbox::capture::StageLog;

use super::Ending;
use super::execution::StageExecution;
use super::flaky::shown;
use super::output::OutputFolder;

/// The failed tests of `cases`, each with the entry that excuses it on `today` — or `None`
/// when a failed test has no entry that holds, or nothing failed.
pub fn excused<'a>(
    entries: &'a [Quarantine],
    cases: &[TestCase],
    today: i64,
) -> Option<Vec<(String, &'a Quarantine)>> {
    let mut excused = Vec::new();
    for case in cases.iter().filter(|c| c.outcome == Outcome::Failed) {
        let entry = entries
            .iter()
            .find(|q| q.covers(&case.class, &case.name) && q.holds_on(today))?;
        excused.push((shown(case), entry));
    }
    (!excused.is_empty()).then_some(excused)
}

/// The media type a published file of a failed stage is given, by its name.
fn media_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("log" | "txt") => "text/plain",
        Some("html") => "text/html",
        _ => "application/octet-stream",
    }
}

impl StageExecution<'_> {
    /// For a stage whose plugin failed (`message`): when its quarantine excuses every failed
    /// test, publishes the files at the top of its output folder and says so; `None` leaves
    /// it failed.
    pub(super) fn excuse(
        &self,
        output: &OutputFolder<'_>,
        log: &StageLog,
        message: &str,
        record: &mut StageRecord,
    ) -> Option<Ending> {
        if self.stage.quarantine.is_empty() {
            return None;
        }
        let tidied = output.tidy(log, &mut record.denied);
        let cases = test_cases::in_folder(output.path());
        let today = crate::config::pipeline::quarantine::today();
        let excused = excused(&self.stage.quarantine, &cases, today)?;
        let mut files: Vec<String> = std::fs::read_dir(output.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let names: Vec<String> = excused
            .iter()
            .map(|(test, entry)| format!("{test} (quarantined until {})", entry.until))
            .collect();
        let line = format!(
            "sluice: only quarantined tests failed, so the stage counts as succeeded: {}",
            names.join(", ")
        );
        let _ = log.message(LogSource::Warn, &line);
        let result = StageResult {
            outputs: files
                .into_iter()
                .map(|name| Output {
                    media_type: media_type(&name).to_string(),
                    name,
                })
                .collect(),
            summary: Some(format!(
                "quarantined failures: {} (the plugin said: {message})",
                names.join(", ")
            )),
        };
        let ending = output.publish(result, &tidied, record, self.around.events);
        if ending.status == crate::model::report::StageStatus::Succeeded {
            record.quarantined = names;
        }
        Some(ending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> TestCase {
        TestCase {
            suite: "s".into(),
            class: "crate_a".into(),
            name: name.into(),
            outcome,
            message: String::new(),
        }
    }

    fn entry(test: &str, until_day: i64) -> Quarantine {
        Quarantine {
            test: test.into(),
            until: format!("day {until_day}"),
            until_day,
        }
    }

    #[test]
    fn a_stage_is_excused_only_when_every_failed_test_is_quarantined_and_unexpired() {
        let entries = [
            entry("tests::sometimes", 10),
            entry("crate_a::tests::old", 5),
        ];
        let one = [
            case("tests::sometimes", Outcome::Failed),
            case("tests::fine", Outcome::Passed),
        ];
        let excused_now = excused(&entries, &one, 10).map(|e| {
            e.into_iter()
                .map(|(test, q)| (test, q.test.clone()))
                .collect::<Vec<_>>()
        });
        assert_eq!(
            excused_now,
            Some(vec![(
                "crate_a::tests::sometimes".to_string(),
                "tests::sometimes".to_string()
            )])
        );
        // Expired the day after `until`.
        assert!(excused(&entries, &one, 11).is_none());
        // Another failed test that is not quarantined: not excused.
        let two = [
            case("tests::sometimes", Outcome::Failed),
            case("tests::broken", Outcome::Failed),
        ];
        assert!(excused(&entries, &two, 1).is_none());
        // The class-qualified name counts too.
        assert!(excused(&entries, &[case("tests::old", Outcome::Failed)], 5).is_some());
        // Nothing failed (a build error, no JUnit): never excused.
        assert!(excused(&entries, &[case("tests::fine", Outcome::Passed)], 1).is_none());
        assert!(excused(&entries, &[], 1).is_none());
    }
}
