//! `cargo-test` on a workspace of several crates made by `cargo new`: one JUnit suite per test
//! binary (unit tests, integration tests, doctests), valid against the JUnit schema, names with
//! XML's special characters intact, and the failing tests named with their panic messages.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Pipeline, Sandbox, Stage, valid_junit};

fn cargo(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Result<()> {
    // With the sandbox's HOME and CARGO_HOME: nothing of it lands in the user's ~/.cargo.
    let status = sandbox
        .program("cargo")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TERM_COLOR", "never")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

#[test]
fn cargo_test_reports_each_test_binary_of_a_workspace_and_names_the_failures() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"alpha\", \"beta\"]\n",
    )?;
    cargo(
        &sandbox,
        &ws,
        &["new", "-q", "--lib", "--vcs", "none", "alpha"],
    )?;
    cargo(
        &sandbox,
        &ws,
        &["new", "-q", "--lib", "--vcs", "none", "beta"],
    )?;
    std::fs::write(
        ws.join("alpha/src/lib.rs"),
        r#"/// Adds.
///
/// ```
/// assert_eq!(alpha::add(2, 2), 4);
/// ```
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(1, 2), 3);
    }

    #[test]
    #[ignore = "slow"]
    fn slow() {}
}
"#,
    )?;
    std::fs::create_dir_all(ws.join("alpha/tests"))?;
    std::fs::write(
        ws.join("alpha/tests/api.rs"),
        "#[test]\nfn public_api() {\n    assert_eq!(alpha::add(0, 0), 0);\n}\n",
    )?;
    std::fs::write(
        ws.join("beta/src/lib.rs"),
        r#"pub fn half(n: u32) -> u32 {
    n / 2
}

/// A value, wrapped.
pub struct Wrapper<T>(pub T);

impl<T> Wrapper<T> {
    /// ```
    /// assert_eq!(beta::Wrapper::new(1).0, 1);
    /// ```
    pub fn new(value: T) -> Self {
        Wrapper(value)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn halves() {
        assert_eq!(super::half(4), 2);
    }

    #[test]
    fn compares_a_lt_b_and_c() {
        let (a, b) = ("<a & b>", "\"c\"");
        assert_eq!(a, b, "markup <x> & \"quotes\" survive");
    }
}
"#,
    )?;
    cargo(&sandbox, &ws, &["generate-lockfile", "--offline"])?;

    let pipeline = Pipeline::new("workspace").set("workspace", "ws").stage(
        Stage::new("test", "cargo-test")
            .allow("workspace", "read")
            .allow("exec", ["cargo"])
            .allow("exec_env", ["CARGO_TERM_COLOR"]),
    );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let (ran, report) = sandbox.run(&file)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let test = report.stage("test").context("no test stage")?;
    assert_eq!(test.status, StageStatus::Failed);
    let message = test.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("1 of 7 tests failed: tests::compares_a_lt_b_and_c (assertion `left == right` failed: markup <x> & \"quotes\" survive)"),
        "{message}"
    );

    let junit = Path::new(&report.run_dir).join("artifacts/test/junit.xml");
    let xml = valid_junit(&junit)?;
    // A suite per test binary, in the order cargo ran them, each with its own counts.
    let suites: Vec<&str> = xml
        .lines()
        .filter(|l| l.trim_start().starts_with("<testsuite "))
        .collect();
    for (suite, counts) in [
        (
            "name=\"alpha: unittests src/lib.rs\"",
            "tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"1\"",
        ),
        (
            "name=\"api: tests/api.rs\"",
            "tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\"",
        ),
        (
            "name=\"beta: unittests src/lib.rs\"",
            "tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\"",
        ),
        (
            "name=\"alpha: doctests\"",
            "tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\"",
        ),
    ] {
        assert!(
            suites
                .iter()
                .any(|l| l.contains(suite) && l.contains(counts)),
            "no suite {suite} with {counts}:\n{xml}"
        );
    }
    assert!(
        xml.contains("name=\"alpha/src/lib.rs - add (line 3)\""),
        "the doctest case:\n{xml}"
    );
    // A doctest on a generic type is named with `<T>`, escaped.
    assert!(
        xml.contains("name=\"beta/src/lib.rs - Wrapper&lt;T&gt;::new (line 9)\""),
        "{xml}"
    );
    // What the failing test printed is in its case, escaped.
    assert!(
        xml.contains("markup &lt;x&gt; &amp; &quot;quotes&quot; survive"),
        "{xml}"
    );
    Ok(())
}
