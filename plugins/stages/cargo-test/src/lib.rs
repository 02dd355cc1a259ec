//! Test stage: runs `cargo test --no-fail-fast` through `allow.exec` in the workspace (its build
//! kept in a cache volume granted as `CARGO_TARGET_DIR`, else in scratch space), turns
//! libtest's report into JUnit XML — one suite per test binary, doctests included, with what a
//! failing test printed — and fails the pipeline on any failed test, naming them and their panic
//! messages (or on a build that does not compile).

use serde::Deserialize;
use sluice_sdk::junit::JUnit;
use sluice_sdk::{Command, Context, Failure, Phase, Stage, info};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Extra arguments after `cargo test`, e.g. ["--release"].
    #[serde(default)]
    args: Vec<String>,
    /// Working directory (a guest path); default /workspace.
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

struct CargoTest;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Ignored,
}

struct Case {
    name: String,
    outcome: Outcome,
}

/// One test binary's run: its cases and what the failing ones printed.
struct Suite {
    /// `alpha: unittests src/lib.rs`, `it: tests/it.rs`, `alpha: doctests`.
    name: String,
    /// The binary, used as each case's class name (`alpha`, `it`).
    binary: String,
    cases: Vec<Case>,
    /// What each failing test printed (`---- name stdout ----` blocks).
    output: std::collections::BTreeMap<String, String>,
}

/// The test binaries in the order cargo ran them, from its `Running ...` and `Doc-tests ...`
/// lines on stderr: (suite name, binary name).
fn binaries(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(krate) = line.strip_prefix("Doc-tests ") {
                return Some((format!("{krate}: doctests"), krate.to_string()));
            }
            let rest = line.strip_prefix("Running ")?;
            let (source, binary) = match rest.rsplit_once(" (") {
                Some((source, path)) => (source, path.trim_end_matches(')')),
                None => (rest, rest),
            };
            let file = binary.rsplit('/').next().unwrap_or(binary);
            // `deps/alpha-0123abcd` → `alpha`.
            let name = match file.rsplit_once('-') {
                Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name,
                _ => file,
            };
            Some((format!("{name}: {source}"), name.to_string()))
        })
        .collect()
}

/// libtest's plain output, one section (`running N tests` … `test result:`) per binary.
fn parse(stdout: &str, names: &[(String, String)]) -> Vec<Suite> {
    let mut suites: Vec<Suite> = Vec::new();
    let mut failing: Option<(String, String)> = None;
    for line in stdout.lines() {
        if line.starts_with("running ") && (line.ends_with(" test") || line.ends_with(" tests")) {
            let (name, binary) = names.get(suites.len()).cloned().unwrap_or_else(|| {
                let n = suites.len() + 1;
                (format!("test binary {n}"), format!("binary{n}"))
            });
            suites.push(Suite {
                name,
                binary,
                cases: Vec::new(),
                output: Default::default(),
            });
            failing = None;
            continue;
        }
        let Some(suite) = suites.last_mut() else {
            continue;
        };
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            if let Some((previous, text)) = failing.take() {
                suite.output.insert(previous, text.trim_end().to_string());
            }
            failing = Some((name.to_string(), String::new()));
            continue;
        }
        if line == "failures:" || line.starts_with("test result:") {
            if let Some((name, text)) = failing.take() {
                suite.output.insert(name, text.trim_end().to_string());
            }
            continue;
        }
        if let Some((_, text)) = failing.as_mut() {
            text.push_str(line);
            text.push('\n');
            continue;
        }
        let Some((name, result)) = line
            .strip_prefix("test ")
            .and_then(|r| r.rsplit_once(" ... "))
        else {
            continue;
        };
        let outcome = match result.trim() {
            "ok" => Outcome::Passed,
            "FAILED" => Outcome::Failed,
            r if r.starts_with("ignored") => Outcome::Ignored,
            _ => continue,
        };
        suite.cases.push(Case {
            name: name.trim().to_string(),
            outcome,
        });
    }
    suites
}

/// The panic's message from what a failing test printed, for the stage's one-line message.
fn reason(output: &str) -> Option<&str> {
    let mut lines = output.lines();
    lines.find(|l| l.contains("panicked at"))?;
    lines.next().map(str::trim).filter(|l| !l.is_empty())
}

impl Stage for CargoTest {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Runs cargo test via allow.exec; writes JUnit XML; fails on any failed test";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        // A cache volume granted as CARGO_TARGET_DIR keeps the build between runs (cargo finds
        // it in its environment); without one, the build goes to scratch space under /out.
        let volume = std::env::var_os("CARGO_TARGET_DIR").is_some();
        let scratch: &[&str] = if volume {
            &[]
        } else {
            &["--target-dir", "${out}/target"]
        };
        let mut command = Command::new("cargo")
            .args(["test", "--locked", "--no-fail-fast", "--color", "never"])
            .args(scratch.iter().map(|a| a.to_string()))
            .args(config.args.iter().cloned())
            .env("CARGO_TERM_COLOR", "never");
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        if let Some(ms) = config.timeout_ms {
            command = command.timeout_ms(ms);
        }
        let done = command.run()?;
        let suites = parse(&done.stdout_text(), &binaries(&done.stderr_text()));
        let mut junits = Vec::new();
        let mut failed = Vec::new();
        let mut total = 0;
        for suite in &suites {
            let mut junit = JUnit::new(suite.name.clone());
            for case in &suite.cases {
                total += 1;
                match case.outcome {
                    Outcome::Failed => {
                        let output = suite.output.get(&case.name).map_or("", String::as_str);
                        let why = reason(output).unwrap_or("test failed");
                        junit.failed(&suite.binary, &case.name, why, output);
                        failed.push(match reason(output) {
                            Some(why) => format!("{} ({why})", case.name),
                            None => case.name.clone(),
                        });
                    }
                    Outcome::Ignored => junit.skipped(&suite.binary, &case.name),
                    Outcome::Passed => junit.passed(&suite.binary, &case.name),
                }
            }
            junits.push(junit);
        }
        ctx.write_output(
            "junit.xml",
            "application/xml",
            sluice_sdk::junit::suites_to_xml(&junits),
        )?;
        let mut log = done.stdout.clone();
        log.extend_from_slice(&done.stderr);
        ctx.write_output("cargo-test.log", "text/plain", log)?;
        // Compiled test binaries are not artifacts; drop them so the run folder stays small.
        let _ = std::fs::remove_dir_all(ctx.output_path("target"));
        if done.timed_out {
            return Err(Failure::new("cargo test timed out"));
        }
        if !failed.is_empty() {
            let shown: Vec<&str> = failed.iter().take(10).map(String::as_str).collect();
            return Err(Failure::new(format!(
                "{} of {total} tests failed: {}{}",
                failed.len(),
                shown.join("; "),
                if failed.len() > 10 { "; ..." } else { "" }
            )));
        }
        if !done.success() {
            let stderr = done.stderr_text();
            let last = stderr
                .lines()
                .rfind(|l| l.starts_with("error"))
                .unwrap_or("");
            return Err(Failure::new(format!(
                "cargo test exited with {:?}{}",
                done.exit_code,
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            )));
        }
        info!("{total} tests passed in {} test binaries", suites.len());
        ctx.set_summary(format!("{total} tests passed"));
        Ok(())
    }
}

sluice_sdk::stage!(CargoTest);
