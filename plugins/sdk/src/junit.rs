//! JUnit XML, the report format every CI dashboard reads, for test stages to publish.

/// Escapes text for XML content and attribute values; characters XML 1.0 cannot carry (control
/// characters such as a terminal's escape) become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One test suite's results.
#[derive(Debug, Clone)]
pub struct JUnit {
    suite: String,
    cases: Vec<Case>,
}

#[derive(Debug, Clone)]
struct Case {
    class: String,
    name: String,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Passed,
    Failed { message: String, detail: String },
    Skipped,
}

impl JUnit {
    pub fn new(suite: impl Into<String>) -> Self {
        Self {
            suite: suite.into(),
            cases: Vec::new(),
        }
    }

    pub fn passed(&mut self, class: &str, name: &str) {
        self.push(class, name, Outcome::Passed);
    }

    pub fn failed(&mut self, class: &str, name: &str, message: &str, detail: &str) {
        let outcome = Outcome::Failed {
            message: message.to_string(),
            detail: detail.to_string(),
        };
        self.push(class, name, outcome);
    }

    pub fn skipped(&mut self, class: &str, name: &str) {
        self.push(class, name, Outcome::Skipped);
    }

    fn push(&mut self, class: &str, name: &str, outcome: Outcome) {
        self.cases.push(Case {
            class: class.to_string(),
            name: name.to_string(),
            outcome,
        });
    }

    pub fn tests(&self) -> usize {
        self.cases.len()
    }

    pub fn failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
            .count()
    }

    pub fn skipped_count(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped))
            .count()
    }

    /// The suite as JUnit XML, in the shape the JUnit schema CI systems read requires (`errors`
    /// included: these suites have none, a failing test is a failure).
    pub fn to_xml(&self) -> String {
        suites_to_xml(std::slice::from_ref(self))
    }

    fn suite_xml(&self, xml: &mut String) {
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">\n",
            escape(&self.suite),
            self.tests(),
            self.failures(),
            self.skipped_count()
        ));
        for case in &self.cases {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                escape(&case.class),
                escape(&case.name)
            ));
            match &case.outcome {
                Outcome::Passed => {}
                Outcome::Skipped => xml.push_str("<skipped/>"),
                Outcome::Failed { message, detail } => xml.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    escape(message),
                    escape(detail)
                )),
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
}

/// Several suites in one JUnit file (one per test binary, say).
pub fn suites_to_xml(suites: &[JUnit]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for suite in suites {
        suite.suite_xml(&mut xml);
    }
    xml.push_str("</testsuites>\n");
    xml
}
