//! Test stage for Go modules: runs `go test -json ./...` through `allow.exec` in the workspace
//! (Go's build and test cache kept in a cache volume granted as `GOCACHE`, modules in one
//! granted as `GOMODCACHE`, else where Go keeps them by default), turns its event stream into
//! JUnit XML — one suite per package, with what each failing test printed — and fails the
//! pipeline on any failed test or package that does not build, naming them.

mod events;
mod report;

use serde::Deserialize;
use sluice_sdk::{Command, Context, Failure, Phase, Stage, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Extra arguments after `go test -json -modcacherw`, e.g. ["-race"] or ["-count=1"].
    #[serde(default)]
    args: Vec<String>,
    /// The packages to test; default ["./..."].
    #[serde(default = "all_packages")]
    packages: Vec<String>,
    /// Working directory (a guest path); default /workspace.
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

fn all_packages() -> Vec<String> {
    vec!["./...".into()]
}

struct GoTest;

impl Stage for GoTest {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Runs go test via allow.exec; writes JUnit XML; fails on any failed test or package";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        // `-modcacherw`: modules land writable in the cache, so sluice can clear the volume
        // (Go makes their folders read-only, which `rm -r` cannot undo without root).
        let mut command = Command::new("go")
            .args(["test", "-json", "-modcacherw"])
            .args(config.args.iter().cloned())
            .args(config.packages.iter().cloned());
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        if let Some(ms) = config.timeout_ms {
            command = command.timeout_ms(ms);
        }
        let done = command.run()?;
        let stderr = done.stderr_text();
        let stream = events::parse(&done.stdout_text());
        let report = report::Report::new(&stream, &stderr);
        ctx.write_output(
            "junit.xml",
            "application/xml",
            sluice_sdk::junit::suites_to_xml(&report.suites),
        )?;
        let mut log = stream.text.clone();
        log.push_str(&stderr);
        ctx.write_output("go-test.log", "text/plain", log)?;
        if done.timed_out {
            return Err(Failure::new("go test timed out"));
        }
        let summary = report.verdict().map_err(Failure::new)?;
        if !done.success() {
            // Nothing failed that the events name: go itself did (a bad flag, no go.mod).
            let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(Failure::new(format!(
                "go test exited with {:?}{}",
                done.exit_code,
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {}", last.trim())
                }
            )));
        }
        let seconds: f64 = stream.packages.iter().filter_map(|p| p.elapsed).sum();
        info!(
            "{} tests in {} packages ({seconds:.2} s of test time)",
            report.tests,
            stream.packages.len()
        );
        ctx.set_summary(summary);
        Ok(())
    }
}

sluice_sdk::stage!(GoTest);
