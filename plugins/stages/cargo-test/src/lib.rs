//! Test stage: runs `cargo test` through `allow.exec` in the workspace, turns libtest's report
//! into JUnit XML, and fails the pipeline on any failed test (or a build that does not compile).

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

struct Case {
    name: String,
    outcome: &'static str,
}

/// `test path::name ... ok|FAILED|ignored` lines of libtest's plain output.
fn parse(stdout: &str) -> Vec<Case> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            let outcome = match result.trim() {
                "ok" => "ok",
                "FAILED" => "failed",
                r if r.starts_with("ignored") => "ignored",
                _ => return None,
            };
            Some(Case {
                name: name.trim().to_string(),
                outcome,
            })
        })
        .collect()
}

impl Stage for CargoTest {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Runs cargo test via allow.exec; writes JUnit XML; fails on any failed test";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let mut command = Command::new("cargo")
            .args([
                "test",
                "--locked",
                "--color",
                "never",
                "--target-dir",
                "${out}/target",
            ])
            .args(config.args.iter().cloned())
            .env("CARGO_TERM_COLOR", "never");
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        if let Some(ms) = config.timeout_ms {
            command = command.timeout_ms(ms);
        }
        let done = command.run()?;
        let stdout = done.stdout_text();
        let cases = parse(&stdout);
        let failed: Vec<&Case> = cases.iter().filter(|c| c.outcome == "failed").collect();
        let mut junit = JUnit::new("cargo test");
        for case in &cases {
            match case.outcome {
                "failed" => junit.failed("cargo", &case.name, "test failed", ""),
                "ignored" => junit.skipped("cargo", &case.name),
                _ => junit.passed("cargo", &case.name),
            }
        }
        let junit = junit.to_xml();
        ctx.write_output("junit.xml", "application/xml", junit)?;
        let mut log = done.stdout.clone();
        log.extend_from_slice(&done.stderr);
        ctx.write_output("cargo-test.log", "text/plain", log)?;
        // Compiled test binaries are not artifacts; drop them so the run folder stays small.
        let _ = std::fs::remove_dir_all(ctx.output_path("target"));
        if done.timed_out {
            return Err(Failure::new("cargo test timed out"));
        }
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::new(format!(
                "{} of {} tests failed: {}",
                failed.len(),
                cases.len(),
                names.join(", ")
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
        info!("{} tests passed", cases.len());
        ctx.set_summary(format!("{} tests passed", cases.len()));
        Ok(())
    }
}

sluice_sdk::stage!(CargoTest);
