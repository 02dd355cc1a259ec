//! The test cases in the JUnit files test stages publish (pytest's `--junitxml`, cargo-test's,
//! go-test's), read back: each case's suite, class, name, outcome and the first line of why it
//! failed — for the run's page, a retried stage's flaky tests and a stage's quarantine. Whatever
//! a plugin wrote is only ever parsed, never trusted: a document that is not well-formed JUnit
//! gives nothing.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as Xml};

use crate::model::report::{RunReport, StageRecord, StageStatus};

/// JUnit artifacts bigger than this are not read.
const MAX_JUNIT_BYTES: u64 = 16 << 20;
/// At most this many cases are read from one stage (a page is for people).
pub const MAX_CASES: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub suite: String,
    pub class: String,
    pub name: String,
    pub outcome: Outcome,
    /// A failure's or error's `message`, else its text's first line.
    pub message: String,
}

/// Every case in the `.xml` artifacts `stage` published that are JUnit documents — or, for a
/// stage that failed (whose files are kept but not published), in the `.xml` files at the top
/// of its artifact folder, so the page shows which tests failed.
pub fn of_stage(report: &RunReport, stage: &StageRecord) -> Vec<TestCase> {
    let mut files: Vec<String> = stage
        .outputs
        .iter()
        .filter(|a| a.name.ends_with(".xml"))
        .map(|a| a.path.clone())
        .collect();
    if files.is_empty() && stage.status == StageStatus::Failed {
        let folder = format!("artifacts/{}", stage.name);
        if let Some(dir) = report.file_in_run(&folder) {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect();
            names.sort();
            files.extend(names.into_iter().map(|n| format!("{folder}/{n}")));
        }
    }
    read_all(files.iter().filter_map(|file| report.file_in_run(file)))
}

/// Every case in the JUnit `.xml` files at the top of `dir` (a stage's output folder while it
/// runs), in name order.
pub fn in_folder(dir: &std::path::Path) -> Vec<TestCase> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".xml"))
        .map(|e| e.path())
        .collect();
    files.sort();
    read_all(files.into_iter())
}

/// The cases of each file that is a plain file (not a link) of at most [`MAX_JUNIT_BYTES`].
fn read_all(files: impl Iterator<Item = std::path::PathBuf>) -> Vec<TestCase> {
    let mut cases = Vec::new();
    for path in files {
        if cases.len() >= MAX_CASES {
            break;
        }
        let small = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_JUNIT_BYTES);
        if !small {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            cases.extend(parse(&text));
        }
    }
    cases.truncate(MAX_CASES);
    cases
}

/// The cases of a JUnit document (`<testsuites>` or `<testsuite>` root); nothing when it is not
/// well-formed or not JUnit.
pub fn parse(document: &str) -> Vec<TestCase> {
    let mut reader = Reader::from_str(document);
    let mut cases = Vec::new();
    let mut suites: Vec<String> = Vec::new();
    let mut open: Option<TestCase> = None;
    let mut in_result = false;
    let mut root: Option<Vec<u8>> = None;
    let mut depth = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(_) => return Vec::new(),
        };
        match event {
            Xml::Start(element) => {
                let name = element.name().as_ref().to_vec();
                root.get_or_insert_with(|| name.clone());
                depth += 1;
                match name.as_slice() {
                    b"testsuite" => suites.push(attribute(&element, b"name")),
                    b"testcase" => open = Some(case(&element, &suites)),
                    b"failure" | b"error" | b"skipped" => {
                        if let Some(case) = open.as_mut() {
                            result(case, &element);
                            in_result = case.message.is_empty();
                        }
                    }
                    _ => {}
                }
            }
            Xml::Empty(element) => {
                let name = element.name().as_ref().to_vec();
                root.get_or_insert_with(|| name.clone());
                match name.as_slice() {
                    b"testcase" => cases.push(case(&element, &suites)),
                    b"failure" | b"error" | b"skipped" => {
                        if let Some(case) = open.as_mut() {
                            result(case, &element);
                        }
                    }
                    _ => {}
                }
            }
            Xml::Text(text) if in_result => {
                if let (Some(case), Ok(text)) = (open.as_mut(), text.decode()) {
                    let unescaped = quick_xml::escape::unescape(&text)
                        .map(|t| t.into_owned())
                        .unwrap_or_else(|_| text.into_owned());
                    case.message = unescaped
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or_default()
                        .to_string();
                }
                in_result = false;
            }
            Xml::End(element) => {
                depth = depth.saturating_sub(1);
                match element.name().as_ref() {
                    b"testsuite" => {
                        suites.pop();
                    }
                    b"testcase" => cases.extend(open.take()),
                    b"failure" | b"error" | b"skipped" => in_result = false,
                    _ => {}
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    let junit = matches!(root.as_deref(), Some(b"testsuite") | Some(b"testsuites"));
    if depth != 0 || !junit {
        return Vec::new();
    }
    cases
}

fn attribute(element: &BytesStart<'_>, key: &[u8]) -> String {
    element
        .try_get_attribute(key)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

fn case(element: &BytesStart<'_>, suites: &[String]) -> TestCase {
    TestCase {
        suite: suites.last().cloned().unwrap_or_default(),
        class: attribute(element, b"classname"),
        name: attribute(element, b"name"),
        outcome: Outcome::Passed,
        message: String::new(),
    }
}

fn result(case: &mut TestCase, element: &BytesStart<'_>) {
    case.outcome = if element.name().as_ref() == b"skipped" {
        Outcome::Skipped
    } else {
        Outcome::Failed
    };
    let message = attribute(element, b"message");
    case.message = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_junit_gives_each_case_with_its_outcome_and_reason() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3"><testcase classname="tests.test_more.ChunkedTests" name="test_even" time="0.001" /><testcase classname="tests.test_more" name="test_odd" time="0.002"><failure message="assert [1] == [2]&#10;  At index 0 diff">def test_odd():
&gt;       assert [1] == [2]</failure></testcase><testcase classname="tests.test_more" name="test_skip"><skipped type="pytest.skip" message="not here">reason</skipped></testcase></testsuite></testsuites>"#;
        let cases = parse(xml);
        let seen: Vec<(&str, Outcome, &str)> = cases
            .iter()
            .map(|c| (c.name.as_str(), c.outcome, c.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("test_even", Outcome::Passed, ""),
                ("test_odd", Outcome::Failed, "assert [1] == [2]"),
                ("test_skip", Outcome::Skipped, "not here"),
            ]
        );
        assert_eq!(cases[0].class, "tests.test_more.ChunkedTests");
        assert_eq!(cases[0].suite, "pytest");
    }

    #[test]
    fn a_failure_without_a_message_takes_its_texts_first_line() {
        let xml = "<testsuite name=\"s\"><testcase name=\"t\"><failure>\n  boom at line 3\nmore</failure></testcase></testsuite>";
        let cases = parse(xml);
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].outcome, Outcome::Failed);
        assert_eq!(cases[0].message, "boom at line 3");
    }

    #[test]
    fn what_is_not_junit_gives_nothing() {
        assert!(parse("<html><testcase name=\"x\"/></html>").is_empty());
        assert!(parse("<testsuite><testcase name=\"x\">").is_empty());
        assert!(parse("not xml <").is_empty());
    }
}
