//! `sluice init` on a Go module fresh from `go mod init`: the pipeline it writes passes `sluice
//! check`, builds and tests the module through the shipped stages (go-test's JUnit names every
//! test, subtests included), is served from the stage cache when nothing changed, and stops at
//! the test stage naming the test that fails. Go keeps its state in the sandbox: in the cache
//! volumes the pipeline grants, else under the sandbox's HOME — never in the real home folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::{RunReport, StageStatus};

use crate::support::{Sandbox, cache_hits, settle, stage_outcome, statuses};

const TALLY: &str = "// Package tally adds numbers.
package tally

// Add returns a + b.
func Add(a, b int) int { return a + b }

// Sum adds all of xs.
func Sum(xs ...int) int {
\ttotal := 0
\tfor _, x := range xs {
\t\ttotal = Add(total, x)
\t}
\treturn total
}
";

const TALLY_TEST: &str = "package tally

import \"testing\"

func TestAdd(t *testing.T) {
\tif got := Add(1, 2); got != 3 {
\t\tt.Errorf(\"Add(1, 2) = %d, want 3\", got)
\t}
}

func TestSum(t *testing.T) {
\tt.Run(\"empty\", func(t *testing.T) {
\t\tif got := Sum(); got != 0 {
\t\t\tt.Errorf(\"Sum() = %d, want 0\", got)
\t\t}
\t})
}
";

/// Where Go keeps its state in a home folder by default (GOPATH, GOCACHE, go env's file).
fn go_state_in(home: &Path) -> Vec<PathBuf> {
    ["go", ".cache/go-build", ".config/go"]
        .iter()
        .map(|p| home.join(p))
        .collect()
}

fn junit_of(report: &RunReport) -> Result<String> {
    let path = Path::new(&report.run_dir).join("artifacts/test/junit.xml");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

#[test]
fn init_on_a_go_module_builds_tests_caches_and_names_a_failing_test() -> Result<()> {
    // What the real home folder holds of Go's state before: the test must add none of it.
    let real_home = std::env::var_os("HOME").map(PathBuf::from);
    let absent_before: Vec<PathBuf> = real_home
        .as_deref()
        .map(go_state_in)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.exists())
        .collect();

    let sandbox = Sandbox::new()?;
    let project = sandbox.path().join("tally");
    std::fs::create_dir_all(&project)?;
    let made = sandbox
        .program("go")
        .args(["mod", "init", "example.com/tally"])
        .current_dir(&project)
        .output()
        .context("cannot run go: install it (`cargo xtask setup` installs golang-go)")?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(project.join("tally.go"), TALLY)?;
    std::fs::write(project.join("tally_test.go"), TALLY_TEST)?;

    let pipeline = crate::init::init_and_check(&sandbox, &project, "Go module")?;
    for stage in ["checkout", "exec", "go-test"] {
        let wasm = project.join(format!(".sluice/stages/{stage}.wasm"));
        assert!(wasm.is_file(), "{} missing", wasm.display());
    }

    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            ("code", StageStatus::Succeeded),
            ("build", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    let test = report.stage("test").context("no test stage")?;
    assert_eq!(test.summary.as_deref(), Some("3 tests passed"));
    let junit = junit_of(&report)?;
    for name in ["TestAdd", "TestSum", "TestSum/empty"] {
        assert!(
            junit.contains(&format!(
                "<testcase classname=\"example.com/tally\" name=\"{name}\"></testcase>"
            )),
            "{name} not passed in\n{junit}"
        );
    }
    assert!(junit.contains("<testsuite name=\"example.com/tally\" tests=\"3\" failures=\"0\""));
    // The build checks that everything compiles and writes nothing into the project.
    let mut files: Vec<String> = std::fs::read_dir(&project)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ".sluice",
            "go.mod",
            "pipeline.toml",
            "tally.go",
            "tally_test.go"
        ]
    );

    // Go's build cache is the `go-build` volume (GOCACHE), in the sandbox; nothing of it in
    // the sandbox's HOME, where Go would put it without one.
    let volumes = sandbox.path().join("volumes");
    let scope = std::fs::read_dir(&volumes)?
        .flatten()
        .next()
        .map(|e| e.path())
        .context("no cache volumes kept")?;
    let kept = std::fs::read_dir(scope.join("go-build"))?.count();
    assert!(kept > 0, "Go's build cache is not in its volume");
    let home = sandbox.path().join("home");
    assert!(!home.join(".cache/go-build").exists());

    // Nothing changed: every stage comes from the stage cache.
    settle();
    let (ran, again) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    assert_eq!(cache_hits(&again), ["code", "build", "test"]);

    // A failing test stops the pipeline at the test stage, named with its message.
    std::fs::write(
        project.join("tally_test.go"),
        TALLY_TEST
            .replace("got != 3", "got != 4")
            .replace("want 3", "want 4"),
    )?;
    let (ran, failed) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (status, message) = stage_outcome(&failed, "test");
    assert_eq!(status, StageStatus::Failed);
    assert_eq!(
        message,
        "1 of 3 tests failed: TestAdd (tally_test.go:7: Add(1, 2) = 3, want 4)"
    );
    let junit = junit_of(&failed)?;
    assert!(
        junit.contains(
            "name=\"TestAdd\"><failure message=\"tally_test.go:7: Add(1, 2) = 3, want 4\">"
        ),
        "{junit}"
    );
    assert!(junit.contains("--- FAIL: TestAdd"), "{junit}");
    assert!(junit.contains("<testsuite name=\"example.com/tally\" tests=\"3\" failures=\"1\""));

    // Go wrote none of its state into the real home folder.
    for path in absent_before {
        assert!(!path.exists(), "{} appeared", path.display());
    }
    Ok(())
}
