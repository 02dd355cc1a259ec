//! Reads the event stream `go test -json` writes (test2json): one JSON object a line, with
//! `Action` (run, pass, fail, skip, output, …), `Package`, `Test`, `Elapsed` and `Output`.
//! Kept apart from the stage so the parser can be tested on the host against streams Go really
//! wrote. Build failures come three ways, all read here: Go ≥ 1.24 sends `build-output` events
//! (by `ImportPath`) and a package `fail` with `FailedBuild`; Go 1.20–1.23 a JSON
//! `FAIL\tpkg [build failed]` output line; Go 1.19 that same line as plain text on stdout. The
//! compiler's messages themselves go to stderr before Go 1.24.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How a test or a package ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// One test (subtests are tests of their own: `TestTable/negative`).
#[derive(Debug, Default)]
pub struct Case {
    pub name: String,
    /// None: it started and never ended (the test binary crashed or was stopped).
    pub outcome: Option<Outcome>,
    /// What it printed, Go's `=== RUN` and `--- FAIL` lines included.
    pub output: String,
    pub elapsed: Option<f64>,
}

/// One package's run: its tests in the order they started.
#[derive(Debug, Default)]
pub struct Package {
    pub name: String,
    pub cases: Vec<Case>,
    /// What the package printed outside any test (`FAIL`, `ok  pkg 0.01s`, a panic in init).
    pub output: String,
    pub outcome: Option<Outcome>,
    /// Its test binary did not build (or its setup failed).
    pub build_failed: bool,
    /// Go ≥ 1.24: the import path whose build failed (this package or one it imports).
    pub failed_build: Option<String>,
    pub elapsed: Option<f64>,
}

/// Everything one `go test -json` printed on stdout.
#[derive(Debug, Default)]
pub struct Stream {
    /// In the order Go first named them.
    pub packages: Vec<Package>,
    /// Go ≥ 1.24: compiler output by import path (`m/pkg [m/pkg.test]`).
    pub build_output: BTreeMap<String, String>,
    /// The text Go would have printed without `-json`, for the log.
    pub text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    action: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    elapsed: Option<f64>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    import_path: Option<String>,
    #[serde(default)]
    failed_build: Option<String>,
}

impl Stream {
    fn package(&mut self, name: &str) -> &mut Package {
        let at = match self.packages.iter().position(|p| p.name == name) {
            Some(at) => at,
            None => {
                self.packages.push(Package {
                    name: name.to_string(),
                    ..Package::default()
                });
                self.packages.len() - 1
            }
        };
        &mut self.packages[at]
    }

    fn event(&mut self, event: Event) {
        let output = event.output.unwrap_or_default();
        self.text.push_str(&output);
        if event.action == "build-output" || event.action == "build-fail" {
            let path = event.import_path.unwrap_or_default();
            self.build_output.entry(path).or_default().push_str(&output);
            return;
        }
        let package = self.package(&event.package);
        let outcome = match event.action.as_str() {
            "pass" => Some(Outcome::Passed),
            "fail" => Some(Outcome::Failed),
            "skip" => Some(Outcome::Skipped),
            _ => None,
        };
        let Some(test) = event.test else {
            if event.action == "output" {
                package.build_failed |= is_build_failure(&output);
                package.output.push_str(&output);
            } else if outcome.is_some() {
                package.outcome = outcome;
                package.elapsed = event.elapsed;
                package.failed_build = event.failed_build.filter(|f| !f.is_empty());
                package.build_failed |= package.failed_build.is_some();
            }
            return;
        };
        let case = package.case(&test);
        match event.action.as_str() {
            "output" => case.output.push_str(&output),
            _ if outcome.is_some() => {
                case.outcome = outcome;
                case.elapsed = event.elapsed;
            }
            // run, pause, cont, bench: the case is known now, nothing else to keep.
            _ => {}
        }
    }

    /// A line that is not an event: Go 1.19 prints `FAIL\tpkg [build failed]` as plain text.
    fn text_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if let Some(rest) = line.strip_prefix("FAIL\t")
            && is_build_failure(rest)
            && let Some((name, _)) = rest.split_once(" [")
        {
            let package = self.package(name.trim());
            package.outcome = Some(Outcome::Failed);
            package.build_failed = true;
        }
    }
}

impl Package {
    fn case(&mut self, name: &str) -> &mut Case {
        let at = match self.cases.iter().position(|c| c.name == name) {
            Some(at) => at,
            None => {
                self.cases.push(Case {
                    name: name.to_string(),
                    ..Case::default()
                });
                self.cases.len() - 1
            }
        };
        &mut self.cases[at]
    }
}

fn is_build_failure(text: &str) -> bool {
    let text = text.trim_end();
    text.ends_with("[build failed]") || text.ends_with("[setup failed]")
}

/// Parses what `go test -json` wrote on stdout; lines that are not events are kept as text.
pub fn parse(stdout: &str) -> Stream {
    let mut stream = Stream::default();
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        match line
            .starts_with('{')
            .then(|| serde_json::from_str::<Event>(line).ok())
            .flatten()
        {
            Some(event) => stream.event(event),
            None => stream.text_line(line),
        }
    }
    stream
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What Go 1.19 printed for a package with a passing test, a failing subtest (and so its
    /// failing parent), a skipped test, a package that does not build and one without tests.
    pub(crate) const GO_1_19: &str = r#"{"Time":"2026-12-07T23:40:49.708298942Z","Action":"run","Package":"example.com/tally","Test":"TestAdd"}
{"Time":"2026-12-07T23:40:49.708444285Z","Action":"output","Package":"example.com/tally","Test":"TestAdd","Output":"=== RUN   TestAdd\n"}
{"Time":"2026-12-07T23:40:49.708726043Z","Action":"output","Package":"example.com/tally","Test":"TestAdd","Output":"--- PASS: TestAdd (0.00s)\n"}
{"Time":"2026-12-07T23:40:49.708763904Z","Action":"pass","Package":"example.com/tally","Test":"TestAdd","Elapsed":0}
{"Time":"2026-12-07T23:40:49.708773612Z","Action":"run","Package":"example.com/tally","Test":"TestTable"}
{"Time":"2026-12-07T23:40:49.708778542Z","Action":"output","Package":"example.com/tally","Test":"TestTable","Output":"=== RUN   TestTable\n"}
{"Time":"2026-12-07T23:40:49.70878317Z","Action":"run","Package":"example.com/tally","Test":"TestTable/negative"}
{"Time":"2026-12-07T23:40:49.708786807Z","Action":"output","Package":"example.com/tally","Test":"TestTable/negative","Output":"=== RUN   TestTable/negative\n"}
{"Time":"2026-12-07T23:40:49.708791065Z","Action":"output","Package":"example.com/tally","Test":"TestTable/negative","Output":"    tally_test.go:14: Add(-1, -2) = -3, want -4\n"}
{"Time":"2026-12-07T23:40:49.708798078Z","Action":"output","Package":"example.com/tally","Test":"TestTable","Output":"--- FAIL: TestTable (0.00s)\n"}
{"Time":"2026-12-07T23:40:49.708803188Z","Action":"output","Package":"example.com/tally","Test":"TestTable/negative","Output":"    --- FAIL: TestTable/negative (0.00s)\n"}
{"Time":"2026-12-07T23:40:49.708807516Z","Action":"fail","Package":"example.com/tally","Test":"TestTable/negative","Elapsed":0}
{"Time":"2026-12-07T23:40:49.708810852Z","Action":"fail","Package":"example.com/tally","Test":"TestTable","Elapsed":0}
{"Time":"2026-12-07T23:40:49.708814128Z","Action":"run","Package":"example.com/tally","Test":"TestSkip"}
{"Time":"2026-12-07T23:40:49.708817434Z","Action":"output","Package":"example.com/tally","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Time":"2026-12-07T23:40:49.708821131Z","Action":"output","Package":"example.com/tally","Test":"TestSkip","Output":"    tally_test.go:19: later\n"}
{"Time":"2026-12-07T23:40:49.708825710Z","Action":"output","Package":"example.com/tally","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Time":"2026-12-07T23:40:49.708829086Z","Action":"skip","Package":"example.com/tally","Test":"TestSkip","Elapsed":0}
{"Time":"2026-12-07T23:40:49.708832583Z","Action":"output","Package":"example.com/tally","Output":"FAIL\n"}
{"Time":"2026-12-07T23:40:49.709275844Z","Action":"output","Package":"example.com/tally","Output":"FAIL\texample.com/tally\t0.003s\n"}
{"Time":"2026-12-07T23:40:49.709290842Z","Action":"fail","Package":"example.com/tally","Elapsed":0.004}
FAIL	example.com/tally/broken [build failed]
{"Time":"2026-12-07T23:40:49.710753946Z","Action":"output","Package":"example.com/tally/notest","Output":"?   \texample.com/tally/notest\t[no test files]\n"}
{"Time":"2026-12-07T23:40:49.710783822Z","Action":"skip","Package":"example.com/tally/notest","Elapsed":0}
"#;

    /// What Go 1.24 and later print for a test binary that does not build.
    pub(crate) const GO_1_24_BUILD_FAILURE: &str = r##"{"ImportPath":"m/builderror [m/builderror.test]","Action":"build-output","Output":"# m/builderror [m/builderror.test]\n"}
{"ImportPath":"m/builderror [m/builderror.test]","Action":"build-output","Output":"builderror/main_test.go:3:11: undefined: y\n"}
{"ImportPath":"m/builderror [m/builderror.test]","Action":"build-fail"}
{"Time":"2025-02-11T10:00:00Z","Action":"start","Package":"m/builderror"}
{"Time":"2025-02-11T10:00:00Z","Action":"output","Package":"m/builderror","Output":"FAIL\tm/builderror [build failed]\n"}
{"Time":"2025-02-11T10:00:00Z","Action":"fail","Package":"m/builderror","Elapsed":0,"FailedBuild":"m/builderror [m/builderror.test]"}
"##;

    fn outcomes(package: &Package) -> Vec<(&str, Option<Outcome>)> {
        package
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.outcome))
            .collect()
    }

    #[test]
    fn reads_tests_subtests_and_packages_in_order() {
        let stream = parse(GO_1_19);
        let names: Vec<&str> = stream.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "example.com/tally",
                "example.com/tally/broken",
                "example.com/tally/notest"
            ]
        );
        let tally = &stream.packages[0];
        assert_eq!(
            outcomes(tally),
            [
                ("TestAdd", Some(Outcome::Passed)),
                ("TestTable", Some(Outcome::Failed)),
                ("TestTable/negative", Some(Outcome::Failed)),
                ("TestSkip", Some(Outcome::Skipped)),
            ]
        );
        assert_eq!(tally.outcome, Some(Outcome::Failed));
        assert_eq!(tally.elapsed, Some(0.004));
        assert!(!tally.build_failed);
        assert!(tally.output.contains("FAIL\texample.com/tally\t0.003s"));
        // Each test keeps what it printed, and only that.
        assert_eq!(
            tally.cases[2].output,
            "=== RUN   TestTable/negative\n    tally_test.go:14: Add(-1, -2) = -3, want -4\n    --- FAIL: TestTable/negative (0.00s)\n"
        );
        assert!(!tally.cases[0].output.contains("tally_test.go"));
    }

    #[test]
    fn a_plain_text_build_failure_fails_its_package() {
        let stream = parse(GO_1_19);
        let broken = &stream.packages[1];
        assert_eq!(broken.outcome, Some(Outcome::Failed));
        assert!(broken.build_failed);
        assert!(broken.cases.is_empty());
        let notest = &stream.packages[2];
        assert_eq!(notest.outcome, Some(Outcome::Skipped));
        assert!(!notest.build_failed);
        // The log reads like `go test` without -json, the plain line included.
        assert!(
            stream
                .text
                .contains("=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n")
        );
        assert!(
            stream
                .text
                .contains("FAIL\texample.com/tally/broken [build failed]\n")
        );
    }

    #[test]
    fn build_events_are_kept_by_import_path() {
        let stream = parse(GO_1_24_BUILD_FAILURE);
        assert_eq!(stream.packages.len(), 1);
        let package = &stream.packages[0];
        assert_eq!(package.outcome, Some(Outcome::Failed));
        assert!(package.build_failed);
        let failed = package.failed_build.as_deref().unwrap_or_default();
        assert_eq!(failed, "m/builderror [m/builderror.test]");
        assert!(
            stream.build_output[failed].contains("main_test.go:3:11: undefined: y"),
            "{:?}",
            stream.build_output
        );
    }

    #[test]
    fn a_test_that_never_ends_has_no_outcome_and_junk_is_text() {
        let stream = parse(concat!(
            r#"{"Action":"run","Package":"p","Test":"TestHang"}"#,
            "\n{not json\n",
            r#"{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 1s\n"}"#,
            "\n",
            r#"{"Action":"fail","Package":"p","Elapsed":1.01}"#,
            "\n"
        ));
        let package = &stream.packages[0];
        assert_eq!(outcomes(package), [("TestHang", None)]);
        assert_eq!(package.outcome, Some(Outcome::Failed));
        assert!(stream.text.contains("{not json\n"));
    }
}
