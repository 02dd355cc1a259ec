//! Tests proven flaky by a stage's retries: a test that failed in an earlier attempt and passed
//! in the last one, when both attempts ran on the same stage key (made again before each
//! retry: a program the stage ran may have changed its workspace). The failed attempt's JUnit
//! is read before the retry empties the output folder. Without a key, only a stage that can
//! change nothing it reads (no write grant, no host program) has provably identical inputs.

use crate::model::report::{FlakyTest, StageRecord, StageStatus, qualified};
use crate::model::test_cases::{self, Outcome, TestCase};

/// What an attempt that failed left behind for the flakiness check.
pub struct FailedAttempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The stage key its inputs had (`None` when no key was made).
    pub key: Option<String>,
    /// Its failed test cases.
    pub failed: Vec<TestCase>,
}

impl FailedAttempt {
    /// The failed tests in the JUnit the attempt left at the top of `dir`.
    pub fn read(number: u32, key: Option<String>, dir: &std::path::Path) -> Self {
        let failed = test_cases::in_folder(dir)
            .into_iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .collect();
        Self {
            number,
            key,
            failed,
        }
    }
}

/// The tests that failed in one of `failed` and passed in `last` (the passing attempt's
/// cases), on identical inputs: each attempt's key equal to `last_key`, or, with no key at
/// all, `unwritable` (nothing the stage does can change what it reads). One entry per test,
/// with the first attempt it failed in.
pub fn proven(
    failed: &[FailedAttempt],
    last: &[TestCase],
    last_key: Option<&str>,
    unwritable: bool,
) -> Vec<FlakyTest> {
    let mut flaky: Vec<FlakyTest> = Vec::new();
    for attempt in failed {
        let identical = match (attempt.key.as_deref(), last_key) {
            (Some(then), Some(now)) => then == now,
            (None, None) => unwritable,
            _ => false,
        };
        if !identical {
            continue;
        }
        for case in &attempt.failed {
            let passed = last.iter().any(|c| {
                c.outcome == Outcome::Passed && c.class == case.class && c.name == case.name
            });
            let known = flaky
                .iter()
                .any(|f| f.class == case.class && f.name == case.name);
            if passed && !known {
                flaky.push(FlakyTest {
                    class: case.class.clone(),
                    name: case.name.clone(),
                    failed_attempt: attempt.number,
                    message: case.message.clone(),
                });
            }
        }
    }
    flaky
}

/// Marks in `record` (a stage that succeeded after `failed` attempts) the tests proven flaky,
/// and returns the line to log, if any.
pub fn mark(
    record: &mut StageRecord,
    failed: &[FailedAttempt],
    last_key: Option<&str>,
    unwritable: bool,
    report_dir: &std::path::Path,
) -> Option<String> {
    if record.status != StageStatus::Succeeded || failed.is_empty() {
        return None;
    }
    let last = passed_in(record, report_dir);
    record.flaky = proven(failed, &last, last_key, unwritable);
    if record.flaky.is_empty() {
        // Tests failed and then passed, but the inputs were not provably the same: say why.
        let moved = failed
            .iter()
            .find_map(|a| match (a.key.as_deref(), last_key) {
                (Some(then), Some(now)) if then != now => {
                    Some(format!("key {then:.12}… → {now:.12}…"))
                }
                (Some(_), None) => Some("no key could be made before the retry".to_string()),
                (None, None) if !unwritable => Some(
                    "no stage key, and the stage may write to a folder or runs host programs"
                        .to_string(),
                ),
                _ => None,
            });
        let retried_tests = failed.iter().any(|a| !a.failed.is_empty());
        return moved.filter(|_| retried_tests).map(|why| {
            format!("sluice: tests that failed then passed are not marked flaky: the inputs changed between attempts ({why})")
        });
    }
    let basis = match last_key {
        Some(key) => format!("stage key {key:.12}…"),
        None => "no stage key; the stage can change nothing it reads".to_string(),
    };
    let names: Vec<String> = record
        .flaky
        .iter()
        .map(|f| format!("{} (failed in attempt {})", f.qualified(), f.failed_attempt))
        .collect();
    Some(format!(
        "sluice: flaky on identical inputs ({basis}): {}",
        names.join(", ")
    ))
}

/// The cases of the JUnit outputs `record` published.
fn passed_in(record: &StageRecord, report_dir: &std::path::Path) -> Vec<TestCase> {
    let mut cases = Vec::new();
    for artifact in record.outputs.iter().filter(|a| a.name.ends_with(".xml")) {
        let path = report_dir.join(&artifact.path);
        let small =
            std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= 16 << 20);
        if small && let Ok(text) = std::fs::read_to_string(&path) {
            cases.extend(test_cases::parse(&text));
        }
    }
    cases
}

/// A test's name with its class, as logs and reports show it.
pub fn shown(case: &TestCase) -> String {
    qualified(&case.class, &case.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> TestCase {
        TestCase {
            suite: "s".into(),
            class: "c".into(),
            name: name.into(),
            outcome,
            message: format!("{name} broke"),
        }
    }

    fn failed(number: u32, key: Option<&str>, names: &[&str]) -> FailedAttempt {
        FailedAttempt {
            number,
            key: key.map(str::to_string),
            failed: names.iter().map(|n| case(n, Outcome::Failed)).collect(),
        }
    }

    #[test]
    fn a_test_failed_then_passed_under_the_same_key_is_flaky_and_no_other() {
        let last = [
            case("sometimes", Outcome::Passed),
            case("always", Outcome::Passed),
            case("later", Outcome::Passed),
        ];
        let attempts = [
            failed(1, Some("k"), &["sometimes"]),
            failed(2, Some("k"), &["sometimes", "later", "gone"]),
        ];
        let flaky = proven(&attempts, &last, Some("k"), false);
        let seen: Vec<(&str, u32, &str)> = flaky
            .iter()
            .map(|f| (f.name.as_str(), f.failed_attempt, f.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("sometimes", 1, "sometimes broke"),
                ("later", 2, "later broke")
            ]
        );
        // The inputs moved between the attempts: nothing is proven.
        assert!(proven(&attempts, &last, Some("k2"), true).is_empty());
        // No key: proven only when the stage could not write what it reads.
        let keyless = [failed(1, None, &["sometimes"])];
        assert_eq!(proven(&keyless, &last, None, true).len(), 1);
        assert!(proven(&keyless, &last, None, false).is_empty());
        // A key for one attempt only is not the same inputs.
        assert!(proven(&keyless, &last, Some("k"), true).is_empty());
    }
}
