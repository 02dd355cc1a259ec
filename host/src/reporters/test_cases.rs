//! The test cases in the JUnit files test stages publish (pytest's `--junitxml`, cargo-test's,
//! go-test's), read back for the run's page: each case's suite, class, name, outcome and the
//! first line of why it failed. Whatever a plugin wrote is only ever parsed, never trusted: a
//! document that is not well-formed JUnit gives nothing.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as Xml};

use crate::model::report::{RunReport, StageRecord, StageStatus, qualified};

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

/// The stage's tests on its page: counts in the summary (open when one failed or was flaky),
/// the failed ones first with why, then the rest; a test `stage` proved flaky (its retries) or
/// let fail (its quarantine) says so. Every text escaped with `esc`.
pub fn html_section(
    page: &mut String,
    cases: &[TestCase],
    stage: &StageRecord,
    esc: impl Fn(&str) -> String,
) {
    if cases.is_empty() {
        return;
    }
    let count = |outcome| cases.iter().filter(|c| c.outcome == outcome).count();
    let (passed, failed, skipped) = (
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Skipped),
    );
    let flaky_of = |case: &TestCase| {
        stage
            .flaky
            .iter()
            .find(|f| f.class == case.class && f.name == case.name)
    };
    let quarantined = |case: &TestCase| {
        let shown = qualified(&case.class, &case.name);
        stage.quarantined.iter().any(|q| {
            q.strip_prefix(&shown)
                .is_some_and(|rest| rest.starts_with(" ("))
        })
    };
    let mut summary = format!("tests: {passed} passed");
    if !stage.flaky.is_empty() {
        summary.push_str(&format!(" ({} flaky)", stage.flaky.len()));
    }
    if failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    if !stage.quarantined.is_empty() {
        summary.push_str(&format!(" ({} quarantined)", stage.quarantined.len()));
    }
    if skipped > 0 {
        summary.push_str(&format!(", {skipped} skipped"));
    }
    let open = if failed > 0 || !stage.flaky.is_empty() {
        " open"
    } else {
        ""
    };
    page.push_str(&format!(
        "<details class=\"tests\"{open}><summary>{}</summary><div class=\"scroll\"><table><thead><tr><th>test</th><th>result</th><th>why</th></tr></thead><tbody>\n",
        esc(&summary)
    ));
    let order = [Outcome::Failed, Outcome::Skipped, Outcome::Passed];
    for outcome in order {
        for case in cases.iter().filter(|c| c.outcome == outcome) {
            let (class, label, why) = match (outcome, flaky_of(case)) {
                (Outcome::Failed, _) if quarantined(case) => (
                    "failed quarantined",
                    "failed (quarantined)".into(),
                    case.message.clone(),
                ),
                (Outcome::Failed, _) => ("failed", "failed".into(), case.message.clone()),
                (Outcome::Skipped, _) => ("skipped", "skipped".into(), case.message.clone()),
                (Outcome::Passed, Some(flaky)) => (
                    "succeeded flaky",
                    "flaky".to_string(),
                    format!(
                        "failed in attempt {}, then passed on identical inputs: {}",
                        flaky.failed_attempt, flaky.message
                    ),
                ),
                (Outcome::Passed, None) => ("succeeded", "passed".into(), case.message.clone()),
            };
            let qualified = qualified(&case.class, &case.name);
            page.push_str(&format!(
                "<tr class=\"test {class}\"><td>{}</td><td>{label}</td><td>{}</td></tr>\n",
                esc(&qualified),
                esc(&why)
            ));
        }
    }
    page.push_str("</tbody></table></div></details>\n");
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
    fn the_page_lists_failures_first_and_escapes_every_name() {
        let cases = parse(
            "<testsuite name=\"s\"><testcase classname=\"c\" name=\"ok\"/><testcase name=\"&lt;script&gt;\"><failure message=\"no &lt;b&gt;\"/></testcase></testsuite>",
        );
        let mut page = String::new();
        let stage: StageRecord = serde_json::from_value(serde_json::json!({
            "name": "test", "phase": null, "status": "failed", "started_at": null,
            "duration_ms": null, "outputs": [], "inputs": [], "summary": null, "message": null,
            "log": null, "plugin": { "reference": "t.wasm", "sha256": null, "size": null,
            "name": null, "version": null, "cache_hit": null, "load_ms": null },
        }))
        .expect("a stage record");
        html_section(&mut page, &cases, &stage, |t| t.replace('<', "&lt;"));
        assert!(page.contains("tests: 1 passed, 1 failed"), "{page}");
        assert!(page.contains("<details class=\"tests\" open>"), "{page}");
        let failed = page.find("&lt;script>").expect("the failed test is listed");
        let passed = page.find("c::ok").expect("the passed test is listed");
        assert!(failed < passed, "failures first: {page}");
        assert!(
            !page.contains("<script>") && !page.contains("<b>"),
            "{page}"
        );
    }

    #[test]
    fn the_page_marks_a_flaky_test_and_a_quarantined_failure() {
        let cases = parse(
            "<testsuite name=\"s\"><testcase classname=\"c\" name=\"sometimes\"/><testcase classname=\"c\" name=\"steady\"/><testcase classname=\"c\" name=\"known\"><failure message=\"boom\"/></testcase></testsuite>",
        );
        let stage: StageRecord = serde_json::from_value(serde_json::json!({
            "name": "test", "phase": null, "status": "succeeded", "started_at": null,
            "duration_ms": null, "outputs": [], "inputs": [], "summary": null, "message": null,
            "log": null, "plugin": { "reference": "t.wasm", "sha256": null, "size": null,
            "name": null, "version": null, "cache_hit": null, "load_ms": null },
            "flaky": [{ "class": "c", "name": "sometimes", "failed_attempt": 1,
                "message": "marker missing" }],
            "quarantined": ["c::known (quarantined until 2099-12-31)"],
        }))
        .expect("a stage record");
        let mut page = String::new();
        html_section(&mut page, &cases, &stage, |t| t.to_string());
        assert!(
            page.contains("tests: 2 passed (1 flaky), 1 failed (1 quarantined)"),
            "{page}"
        );
        assert!(page.contains("<tr class=\"test succeeded flaky\"><td>c::sometimes</td><td>flaky</td><td>failed in attempt 1, then passed on identical inputs: marker missing</td></tr>"), "{page}");
        assert!(
            page.contains("<tr class=\"test succeeded\"><td>c::steady</td><td>passed</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>c::known</td><td>failed (quarantined)</td>"),
            "{page}"
        );
    }

    #[test]
    fn what_is_not_junit_gives_nothing() {
        assert!(parse("<html><testcase name=\"x\"/></html>").is_empty());
        assert!(parse("<testsuite><testcase name=\"x\">").is_empty());
        assert!(parse("not xml <").is_empty());
    }
}
