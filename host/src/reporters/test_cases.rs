//! A stage's tests on the run's page: counts, failures first with why, flaky and quarantined
//! tests marked (the cases themselves are read by `model::test_cases`).

use crate::model::report::{StageRecord, qualified};
use crate::model::test_cases::{Outcome, TestCase};

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
    use crate::model::test_cases::parse;

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
}
