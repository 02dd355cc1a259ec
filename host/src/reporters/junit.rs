//! The run as JUnit XML (`sluice run --junit FILE`), the test report format every CI system
//! reads: one test case per stage (failed, errored or skipped, with its message), and, merged
//! beside them, the test suites that test stages already wrote as JUnit artifacts of their own
//! (cargo-test's and link-check's `junit.xml`), so a CI shows each test too. Follows the JUnit
//! schema Jenkins and GitLab read (`tests/e2e/fixtures/junit-10.xsd`).

use quick_xml::Reader;
use quick_xml::events::Event as Xml;

use crate::model::report::{FlakyTest, RunReport, StageRecord, StageStatus};

/// Stage artifacts bigger than this are not read for test suites.
const MAX_MERGED_BYTES: u64 = 16 << 20;

/// The run's JUnit XML; stage artifacts are read from the run's folder.
pub fn junit_xml(report: &RunReport) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    let mut merged = String::new();
    for stage in &report.stages {
        let (case, outcome) = test_case(&report.pipeline, stage);
        cases.push_str(&case);
        match outcome {
            Outcome::Failure => failures += 1,
            Outcome::Error => errors += 1,
            Outcome::Skipped => skipped += 1,
            Outcome::Passed => {}
        }
        for artifact in stage.outputs.iter().filter(|a| a.name.ends_with(".xml")) {
            if artifact.size > MAX_MERGED_BYTES {
                continue;
            }
            let Some(path) = report.file_in_run(&artifact.path) else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(path) {
                for suite in test_suites(&text) {
                    merged.push_str("  ");
                    merged.push_str(&with_flaky(suite, &stage.flaky));
                    merged.push('\n');
                }
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"{name}\" time=\"{time}\">\n  \
         <testsuite name=\"{pipeline}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{timestamp}\" id=\"{run_id}\">\n\
         {cases}  </testsuite>\n{merged}</testsuites>\n",
        name = attr(&format!("sluice run {} {}", report.pipeline, report.run_id)),
        pipeline = attr(&report.pipeline),
        tests = report.stages.len(),
        time = seconds(report.duration_ms),
        timestamp = attr(&report.started_at),
        run_id = attr(&report.run_id),
    )
}

enum Outcome {
    Passed,
    Failure,
    Error,
    Skipped,
}

fn test_case(pipeline: &str, stage: &StageRecord) -> (String, Outcome) {
    let message = stage.message.as_deref().unwrap_or(stage.status.label());
    let (inner, outcome) = match stage.status {
        StageStatus::Succeeded => (String::new(), Outcome::Passed),
        StageStatus::Failed => (
            format!(
                "      <failure type=\"failed\" message=\"{}\">{}</failure>\n",
                attr(message),
                text(message)
            ),
            Outcome::Failure,
        ),
        StageStatus::Crashed | StageStatus::Error | StageStatus::Cancelled => (
            format!(
                "      <error type=\"{}\" message=\"{}\">{}</error>\n",
                stage.status.label(),
                attr(message),
                text(message)
            ),
            Outcome::Error,
        ),
        StageStatus::Skipped
        | StageStatus::Pending
        | StageStatus::AwaitingApproval
        | StageStatus::Running => (
            format!("      <skipped message=\"{}\"/>\n", attr(message)),
            Outcome::Skipped,
        ),
    };
    let mut out = String::new();
    if let Some(summary) = &stage.summary {
        out.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            text(summary)
        ));
    }
    let time = stage.duration_ms.map(seconds).unwrap_or_else(|| "0".into());
    let case = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{time}\">\n{inner}{out}    </testcase>\n",
        attr(&format!("sluice.{pipeline}")),
        attr(&stage.name),
    );
    (case, outcome)
}

/// The `<testsuite>` elements of a JUnit document, as they are written in it: the root when it
/// is one, else the root `<testsuites>`' children. Nothing when the text is not well-formed XML
/// or not JUnit.
fn test_suites(document: &str) -> Vec<&str> {
    let mut reader = Reader::from_str(document);
    let mut suites = Vec::new();
    let mut depth = 0usize;
    let mut root = None::<Vec<u8>>;
    let mut open_at = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(_) => return Vec::new(),
        };
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Xml::Start(start) => {
                let name = start.name().as_ref().to_vec();
                if depth == 0 {
                    root = Some(name.clone());
                }
                if is_suite_level(depth, root.as_deref()) && name == b"testsuite" {
                    open_at = Some(before);
                }
                depth += 1;
            }
            Xml::Empty(start) => {
                let name = start.name().as_ref().to_vec();
                if depth == 0 {
                    root = Some(name.clone());
                }
                if is_suite_level(depth, root.as_deref()) && name == b"testsuite" {
                    suites.extend(document.get(before..after));
                }
            }
            Xml::End(_) => {
                depth = depth.saturating_sub(1);
                if is_suite_level(depth, root.as_deref())
                    && let Some(start) = open_at.take()
                {
                    suites.extend(document.get(start..after));
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
    suites
}

/// `suite` (one `<testsuite>` element as written) with a `<flakyFailure>` inside each
/// `<testcase>` of a test in `flaky`, as nextest and Surefire write them: the attempt it failed
/// in, and why. The suite as it is when nothing in it was flaky (or it cannot be read).
fn with_flaky<'a>(suite: &'a str, flaky: &[FlakyTest]) -> std::borrow::Cow<'a, str> {
    if flaky.is_empty() {
        return suite.into();
    }
    let mut reader = Reader::from_str(suite);
    // (where, what to put there, how many bytes it replaces)
    let mut edits: Vec<(usize, String, usize)> = Vec::new();
    let element = |test: &FlakyTest| {
        format!(
            "<flakyFailure message=\"{}\" type=\"flaky\">failed in attempt {}, then passed on identical inputs: {}</flakyFailure>",
            attr(&test.message),
            test.failed_attempt,
            text(&test.message)
        )
    };
    let find = |start: &quick_xml::events::BytesStart<'_>| {
        let value = |key: &[u8]| {
            start
                .try_get_attribute(key)
                .ok()
                .flatten()
                .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                .unwrap_or_default()
        };
        let (class, name) = (value(b"classname"), value(b"name"));
        flaky
            .iter()
            .find(|f| f.class == class && f.name == name)
            .map(element)
    };
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(_) => return suite.into(),
        };
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Xml::Start(start) if start.name().as_ref() == b"testcase" => {
                if let Some(inner) = find(&start) {
                    edits.push((after, inner, 0));
                }
            }
            Xml::Empty(start) if start.name().as_ref() == b"testcase" => {
                let written = suite.get(before..after).unwrap_or_default();
                if let (Some(inner), Some(open)) = (find(&start), written.strip_suffix("/>")) {
                    edits.push((before, format!("{open}>{inner}</testcase>"), after - before));
                }
            }
            Xml::Eof => break,
            _ => {}
        }
    }
    let mut out = String::with_capacity(suite.len() + edits.len() * 128);
    let mut at = 0;
    for (position, insert, replaced) in edits {
        out.push_str(suite.get(at..position).unwrap_or_default());
        out.push_str(&insert);
        at = position + replaced;
    }
    out.push_str(suite.get(at..).unwrap_or_default());
    out.into()
}

/// Where `<testsuite>` elements sit: the root itself, or the children of a `<testsuites>` root.
fn is_suite_level(depth: usize, root: Option<&[u8]>) -> bool {
    match root {
        None => depth == 0,
        Some(b"testsuite") => depth == 0,
        Some(b"testsuites") => depth == 1,
        Some(_) => false,
    }
}

fn seconds(ms: f64) -> String {
    format!("{:.3}", (ms / 1000.0).max(0.0))
}

/// Text as XML character data: markup escaped, characters XML 1.0 forbids dropped.
fn text(value: &str) -> String {
    let allowed: String = value
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
        })
        .collect();
    quick_xml::escape::escape(allowed.as_str()).into_owned()
}

/// An attribute value: as [`text`], with newlines kept as character references.
fn attr(value: &str) -> String {
    text(value).replace('\n', "&#10;").replace('\r', "&#13;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_taken_from_either_root_and_nothing_from_broken_xml() {
        let one = "<?xml version=\"1.0\"?><testsuite name=\"a\" tests=\"1\"><testcase name=\"x\"/></testsuite>";
        assert_eq!(
            test_suites(one),
            ["<testsuite name=\"a\" tests=\"1\"><testcase name=\"x\"/></testsuite>"]
        );
        let many = "<testsuites><testsuite name=\"a\"><testsuite name=\"inner\"/></testsuite>\n<testsuite name=\"b\"/></testsuites>";
        assert_eq!(
            test_suites(many),
            [
                "<testsuite name=\"a\"><testsuite name=\"inner\"/></testsuite>",
                "<testsuite name=\"b\"/>"
            ]
        );
        assert!(test_suites("<testsuite name=\"a\"><testcase></testsuite>").is_empty());
        assert!(test_suites("<html><testsuite name=\"a\"/></html>").is_empty());
        assert!(test_suites("not xml at all <").is_empty());
    }

    #[test]
    fn a_flaky_test_gets_a_flaky_failure_inside_its_passing_testcase_and_no_other_does() {
        let suite = "<testsuite name=\"unit\" tests=\"3\"><testcase classname=\"c\" name=\"tests::sometimes\"/><testcase classname=\"c\" name=\"tests::always\"/><testcase classname=\"c\" name=\"tests::slow\"><system-out>x</system-out></testcase></testsuite>";
        let flaky = |name: &str| FlakyTest {
            class: "c".into(),
            name: name.into(),
            failed_attempt: 1,
            message: "boom <1>".into(),
        };
        let out = with_flaky(suite, &[flaky("tests::sometimes"), flaky("tests::slow")]);
        assert_eq!(
            out,
            "<testsuite name=\"unit\" tests=\"3\"><testcase classname=\"c\" name=\"tests::sometimes\"><flakyFailure message=\"boom &lt;1&gt;\" type=\"flaky\">failed in attempt 1, then passed on identical inputs: boom &lt;1&gt;</flakyFailure></testcase><testcase classname=\"c\" name=\"tests::always\"/><testcase classname=\"c\" name=\"tests::slow\"><flakyFailure message=\"boom &lt;1&gt;\" type=\"flaky\">failed in attempt 1, then passed on identical inputs: boom &lt;1&gt;</flakyFailure><system-out>x</system-out></testcase></testsuite>"
        );
        assert_eq!(crate::model::test_cases::parse(&out).len(), 3);
        assert_eq!(with_flaky(suite, &[]), suite);
        // Another class's test of the same name is not it.
        let other = FlakyTest {
            class: "d".into(),
            ..flaky("tests::always")
        };
        assert_eq!(with_flaky(suite, &[other]), suite);
    }

    #[test]
    fn plugin_text_cannot_break_out_of_the_document() {
        let hostile = "\"/><script>x</script><a b=\"\u{1}\n";
        let escaped = attr(hostile);
        assert!(!escaped.contains('<') && !escaped.contains('"') && !escaped.contains('\u{1}'));
        assert_eq!(text("a < b & c"), "a &lt; b &amp; c");
    }
}
