//! What one `go test` run means for the pipeline: the JUnit suites (one per package, every
//! failing test with what it printed, a package that failed outside its tests — a build
//! failure, a crash in `TestMain` — as a failed case of its own) and the stage's verdict, naming
//! the first failures and their first message line.

use sluice_sdk::junit::JUnit;

use crate::events::{Outcome, Package, Stream};

/// Failures named in the stage's message; the JUnit report has them all.
const SHOWN: usize = 10;

/// The report of one run.
pub struct Report {
    pub suites: Vec<JUnit>,
    /// Tests (subtests included) that ran, passed and were skipped.
    pub tests: usize,
    pub passed: usize,
    pub skipped: usize,
    /// `TestName (first message line)` of each failed test, in the order they ran.
    pub failed_tests: Vec<String>,
    /// `package [build failed] (first message line)` of each package that failed outside
    /// its tests.
    pub failed_packages: Vec<String>,
}

impl Report {
    /// `stderr` is where Go before 1.24 prints compiler errors.
    pub fn new(stream: &Stream, stderr: &str) -> Self {
        let mut report = Report {
            suites: Vec::new(),
            tests: 0,
            passed: 0,
            skipped: 0,
            failed_tests: Vec::new(),
            failed_packages: Vec::new(),
        };
        for package in &stream.packages {
            report.package(package, stream, stderr);
        }
        report
    }

    fn package(&mut self, package: &Package, stream: &Stream, stderr: &str) {
        let mut junit = JUnit::new(package.name.clone());
        let class = package.name.as_str();
        let mut any_failed = false;
        for case in &package.cases {
            self.tests += 1;
            match case.outcome {
                Some(Outcome::Passed) => {
                    self.passed += 1;
                    junit.passed(class, &case.name);
                }
                Some(Outcome::Skipped) => {
                    self.skipped += 1;
                    junit.skipped(class, &case.name);
                }
                Some(Outcome::Failed) | None => {
                    any_failed = true;
                    let why = match case.outcome {
                        None => Some("ended without a result: the test binary stopped"),
                        _ => first_message(&case.output),
                    };
                    junit.failed(
                        class,
                        &case.name,
                        why.unwrap_or("test failed"),
                        &case.output,
                    );
                    self.failed_tests.push(named(&case.name, why));
                }
            }
        }
        if package.outcome == Some(Outcome::Failed) && !any_failed {
            let detail = package_detail(package, stream, stderr);
            let label = if package.build_failed {
                "[build failed]"
            } else {
                "[package failed]"
            };
            let why = first_message(&detail);
            junit.failed(class, label, why.unwrap_or("package failed"), &detail);
            self.failed_packages
                .push(named(&format!("{} {label}", package.name), why));
        }
        if junit.tests() > 0 {
            self.suites.push(junit);
        }
    }

    /// Err(message) when the stage must fail for what the tests said.
    pub fn verdict(&self) -> Result<String, String> {
        let problems: Vec<&str> = self
            .failed_tests
            .iter()
            .chain(&self.failed_packages)
            .map(String::as_str)
            .collect();
        if problems.is_empty() {
            let mut summary = format!("{} tests passed", self.passed);
            if self.skipped > 0 {
                summary.push_str(&format!(", {} skipped", self.skipped));
            }
            return Ok(summary);
        }
        let mut counts = Vec::new();
        if !self.failed_tests.is_empty() {
            counts.push(format!(
                "{} of {} tests failed",
                self.failed_tests.len(),
                self.tests
            ));
        }
        match self.failed_packages.len() {
            0 => {}
            1 => counts.push("1 package failed".into()),
            n => counts.push(format!("{n} packages failed")),
        }
        let shown: Vec<&str> = problems.iter().take(SHOWN).copied().collect();
        Err(format!(
            "{}: {}{}",
            counts.join(", "),
            shown.join("; "),
            if problems.len() > SHOWN { "; ..." } else { "" }
        ))
    }
}

fn named(name: &str, why: Option<&str>) -> String {
    match why {
        Some(why) => format!("{name} ({why})"),
        None => name.to_string(),
    }
}

/// What a package printed outside its tests, and the compiler's messages for it: from the
/// build events (Go ≥ 1.24), else the `# pkg` sections of stderr that name it, else all of
/// stderr (an imported package that failed to build is named there, not the one tested).
fn package_detail(package: &Package, stream: &Stream, stderr: &str) -> String {
    let mut detail = String::new();
    if let Some(build) = package
        .failed_build
        .as_ref()
        .and_then(|path| stream.build_output.get(path))
    {
        detail.push_str(build);
    } else if package.build_failed {
        let sections = stderr_sections(stderr, &package.name);
        detail.push_str(if sections.is_empty() {
            stderr
        } else {
            &sections
        });
    }
    if !detail.is_empty() && !detail.ends_with('\n') {
        detail.push('\n');
    }
    detail.push_str(&package.output);
    detail
}

/// The `# pkg …` sections of Go's stderr for `package` (`# m/pkg [m/pkg.test]` included).
fn stderr_sections(stderr: &str, package: &str) -> String {
    let mut out = String::new();
    let mut taking = false;
    for line in stderr.lines() {
        if let Some(header) = line.strip_prefix("# ") {
            taking = header.split_whitespace().next() == Some(package);
        }
        if taking {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The first line of output that says something: not Go's own `=== RUN`, `--- FAIL`, `# pkg`
/// or `FAIL pkg` lines. For a failed assertion, `file_test.go:12: got 4, want 3`.
fn first_message(output: &str) -> Option<&str> {
    const GO_LINES: &[&str] = &[
        "=== ",
        "--- ",
        "# ",
        "FAIL",
        "ok ",
        "PASS",
        "?   ",
        "exit status",
    ];
    output
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !GO_LINES.iter().any(|p| line.starts_with(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse;
    use crate::events::tests::{GO_1_19, GO_1_24_BUILD_FAILURE};

    const GO_1_19_STDERR: &str = "# example.com/tally/broken [example.com/tally/broken.test]\nbroken/b.go:2:11: undefined: y\n";

    #[test]
    fn failing_tests_and_packages_are_named_with_their_first_message() {
        let report = Report::new(&parse(GO_1_19), GO_1_19_STDERR);
        assert_eq!((report.tests, report.passed, report.skipped), (4, 1, 1));
        assert_eq!(
            report.failed_tests,
            [
                "TestTable",
                "TestTable/negative (tally_test.go:14: Add(-1, -2) = -3, want -4)"
            ]
        );
        assert_eq!(
            report.failed_packages,
            ["example.com/tally/broken [build failed] (broken/b.go:2:11: undefined: y)"]
        );
        let Err(message) = report.verdict() else {
            panic!("a failing run passed");
        };
        assert_eq!(
            message,
            "2 of 4 tests failed, 1 package failed: TestTable; TestTable/negative \
             (tally_test.go:14: Add(-1, -2) = -3, want -4); example.com/tally/broken \
             [build failed] (broken/b.go:2:11: undefined: y)"
        );
    }

    #[test]
    fn junit_has_one_suite_per_package_that_tested_or_failed() {
        let report = Report::new(&parse(GO_1_19), GO_1_19_STDERR);
        let xml = sluice_sdk::junit::suites_to_xml(&report.suites);
        assert_eq!(report.suites.len(), 2, "{xml}");
        assert!(xml.contains(
            "<testsuite name=\"example.com/tally\" tests=\"4\" failures=\"2\" errors=\"0\" skipped=\"1\">"
        ));
        assert!(
            xml.contains("<testcase classname=\"example.com/tally\" name=\"TestAdd\"></testcase>")
        );
        assert!(xml.contains(
            "name=\"TestTable/negative\"><failure message=\"tally_test.go:14: Add(-1, -2) = -3, want -4\">=== RUN   TestTable/negative\n"
        ));
        assert!(xml.contains("name=\"[build failed]\"><failure message=\"broken/b.go:2:11: undefined: y\"># example.com/tally/broken"));
        assert!(!xml.contains("notest"));
    }

    #[test]
    fn build_output_events_explain_a_package() {
        let report = Report::new(&parse(GO_1_24_BUILD_FAILURE), "");
        assert_eq!(report.tests, 0);
        assert_eq!(
            report.verdict(),
            Err("1 package failed: m/builderror [build failed] \
                 (builderror/main_test.go:3:11: undefined: y)"
                .into())
        );
    }

    #[test]
    fn a_green_run_counts_what_passed() {
        let stream = parse(concat!(
            r#"{"Action":"run","Package":"p","Test":"TestA"}"#,
            "\n",
            r#"{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.01}"#,
            "\n",
            r#"{"Action":"run","Package":"p","Test":"TestA/sub"}"#,
            "\n",
            r#"{"Action":"pass","Package":"p","Test":"TestA/sub","Elapsed":0}"#,
            "\n",
            r#"{"Action":"pass","Package":"p","Elapsed":0.02}"#,
            "\n"
        ));
        let report = Report::new(&stream, "");
        assert_eq!(report.verdict(), Ok("2 tests passed".into()));
    }

    #[test]
    fn a_test_without_a_result_fails() {
        let stream = parse(concat!(
            r#"{"Action":"run","Package":"p","Test":"TestHang"}"#,
            "\n",
            r#"{"Action":"fail","Package":"p","Elapsed":1}"#,
            "\n"
        ));
        let report = Report::new(&stream, "");
        assert_eq!(
            report.verdict(),
            Err(
                "1 of 1 tests failed: TestHang (ended without a result: the test binary stopped)"
                    .into()
            )
        );
        assert!(report.failed_packages.is_empty());
    }

    #[test]
    fn only_the_first_ten_failures_are_named() {
        let mut text = String::new();
        for n in 0..12 {
            text.push_str(&format!(
                "{{\"Action\":\"run\",\"Package\":\"p\",\"Test\":\"T{n}\"}}\n{{\"Action\":\"fail\",\"Package\":\"p\",\"Test\":\"T{n}\"}}\n"
            ));
        }
        let Err(message) = Report::new(&parse(&text), "").verdict() else {
            panic!("12 failures passed");
        };
        assert!(
            message.starts_with("12 of 12 tests failed: T0; T1;"),
            "{message}"
        );
        assert!(message.ends_with("T9; ..."), "{message}");
        assert!(!message.contains("T10"), "{message}");
    }
}
