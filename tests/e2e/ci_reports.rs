//! What CI systems read from a run: `--junit` (checked against the JUnit schema Jenkins and
//! GitLab use, with the suites test stages wrote merged in), `--format github|gitlab` (a fold per
//! stage; a plugin cannot issue the CI's commands), and the run history (`runs show`, `runs gc`,
//! the trigger).

use std::path::Path;

use anyhow::{Context, Result};
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, table, valid_junit};

/// emit writes a JUnit file of its own tests; `check` fails; `after` is skipped.
fn failing_pipeline(sandbox: &Sandbox) -> Result<std::path::PathBuf> {
    let junit = "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"unit &amp; more\" tests=\"2\" failures=\"1\" errors=\"0\"><testcase classname=\"lib\" name=\"adds\"/><testcase classname=\"lib\" name=\"subtracts\"><failure message=\"2 - 1 != 3\">assertion failed</failure></testcase></testsuite></testsuites>\n";
    let pipeline = Pipeline::new("ci")
        .stage(Stage::new("tests", "emit").phase("code").config(
            "files",
            table([("junit.xml", junit), ("notes.txt", "TODO: <b>\n")]),
        ))
        .stage(
            Stage::new("check", "assert-text")
                .inputs(["tests/notes.txt"])
                .config("forbid", vec!["TODO"]),
        )
        .stage(Stage::new("after", "checksum").inputs(["check/*"]));
    sandbox.pipeline("pipeline.toml", &pipeline.to_toml())
}

#[test]
fn junit_has_a_case_per_stage_merges_stage_suites_and_passes_the_jenkins_schema() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let file = failing_pipeline(&sandbox)?;
    let junit = sandbox.path().join("out/junit.xml");
    std::fs::create_dir_all(sandbox.path().join("out"))?;
    let ran = sandbox.sluice(&[
        "run",
        &file.display().to_string(),
        "--junit",
        &junit.display().to_string(),
    ])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let xml = valid_junit(&junit)?;
    // One case per stage, each with its outcome.
    assert!(
        xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"sluice.ci\" name=\"tests\""),
        "{xml}"
    );
    let check = &xml[xml.find("name=\"check\"").context("no check case")?..];
    assert!(check.starts_with("name=\"check\""));
    assert!(
        check.contains("<failure type=\"failed\" message=\""),
        "{xml}"
    );
    let after = &xml[xml.find("name=\"after\"").context("no after case")?..];
    assert!(after.contains("<skipped message="), "{xml}");
    // The suite the stage wrote, as it wrote it.
    assert!(xml.contains("<testsuite name=\"unit &amp; more\""), "{xml}");
    assert!(xml.contains("<failure message=\"2 - 1 != 3\">"), "{xml}");
    Ok(())
}

/// The commands GitHub's runner would act on in `log`: lines starting with `::`, except inside
/// a `::stop-commands::TOKEN` … `::TOKEN::` stretch.
fn github_commands(log: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut stopped: Option<String> = None;
    for line in log.lines() {
        let line = line.trim_start();
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        if let Some(token) = line.strip_prefix("::stop-commands::") {
            stopped = Some(token.to_string());
        }
        if line.starts_with("::") {
            commands.push(line.to_string());
        }
    }
    commands
}

#[test]
fn github_format_folds_each_stage_and_a_plugin_cannot_issue_commands() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let hostile = "::error::forged by a plugin\n::add-mask::x\n::stop-commands::y\n::endgroup::";
    let pipeline = Pipeline::new("gh")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a\n")])))
        .stage(
            Stage::new("inject", "terminal-inject")
                .config("text", hostile)
                .config("fail", true),
        );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let ran = sandbox.sluice(&["run", &file.display().to_string(), "--format", "github"])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let commands = github_commands(&ran.stderr);
    // Only sluice's own: a group per stage with lines, the switch-off around each, one error.
    let kinds: Vec<&str> = commands
        .iter()
        .map(|c| {
            c.trim_start_matches("::")
                .split([':', ' '])
                .next()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "group",
            "stop-commands",
            "endgroup",
            "group",
            "stop-commands",
            "endgroup",
            "error"
        ],
        "{}",
        ran.stderr
    );
    let error = commands.last().context("no error annotation")?;
    assert!(
        error.starts_with("::error title=stage inject failed::"),
        "{error}"
    );
    // The annotation's text is the stage's message, escaped as the runner unescapes it.
    let data = error.splitn(3, "::").nth(2).unwrap_or_default();
    let decoded = data
        .replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%");
    assert!(decoded.contains("forged by a plugin"), "{decoded}");
    assert!(!decoded.contains('\n'), "{decoded}");
    // Every line the plugin printed sits inside a switched-off stretch of its group.
    assert!(
        ran.stderr.contains("::group::✔ [code] succeeded in"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.matches("[inject]").count() >= 3,
        "{}",
        ran.stderr
    );
    Ok(())
}

#[test]
fn gitlab_format_opens_and_closes_a_section_per_stage() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let file = failing_pipeline(&sandbox)?;
    let ran = sandbox.sluice(&["run", &file.display().to_string(), "--format", "gitlab"])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let starts: Vec<&str> = ran
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("\x1b[0Ksection_start:"))
        .collect();
    let ends: Vec<&str> = ran
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("\x1b[0Ksection_end:"))
        .collect();
    assert!(starts.len() >= 2, "{}", ran.stderr);
    assert_eq!(ends.len(), starts.len());
    for (start, end) in starts.iter().zip(&ends) {
        let name = |marker: &str| {
            marker
                .split(':')
                .nth(1)
                .map(|n| n.split(['[', '\r']).next().unwrap_or("").to_string())
        };
        assert_eq!(name(start), name(end));
    }
    assert!(
        ran.stderr.contains("ERROR: stage check failed:"),
        "{}",
        ran.stderr
    );
    Ok(())
}

/// The runs in `runs`, oldest first (by when they started: ids made in the same second sort by
/// their random part).
fn run_ids(runs: &Path) -> Result<Vec<String>> {
    let mut found: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(runs)?.flatten() {
        let report = entry.path().join("report.json");
        if entry.path().is_symlink() || !report.is_file() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
        let started = record["started_at"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        found.push((started, entry.file_name().to_string_lossy().into_owned()));
    }
    found.sort();
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

#[test]
fn runs_show_and_gc_keep_what_they_are_told_and_never_a_run_going_on() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let runs = sandbox.path().join("history");
    let runs_arg = runs.display().to_string();
    let pipeline = Pipeline::new("hist")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a\n")])));
    let file = sandbox
        .pipeline("pipeline.toml", &pipeline.to_toml())?
        .display()
        .to_string();
    for event in ["push", "schedule", "workflow_dispatch", "push"] {
        let ran = sandbox
            .command(&["run", &file, "--runs-dir", &runs_arg])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .output()?;
        assert!(ran.status.success());
    }
    let ids = run_ids(&runs)?;
    assert_eq!(ids.len(), 4);

    let listed = sandbox.sluice(&["runs", "--runs-dir", &runs_arg])?;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("github schedule"),
        "{}",
        listed.stdout
    );
    let shown = sandbox.sluice(&["runs", "show", &ids[1], "--runs-dir", &runs_arg])?;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("trigger   github schedule"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("  code "), "{}", shown.stdout);

    // The oldest run is "going on": its lock is held.
    let lock = runs.join(&ids[0]).join("run.lock");
    // One process from start to end (no fork, `exec`): killing it lets the lock go.
    let mut holder = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(&lock)
        .args(["-c", "echo locked; exec sleep 60"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut first = String::new();
    if let Some(out) = holder.stdout.as_mut() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut first)?;
    }
    assert_eq!(first.trim(), "locked");
    let refused = sandbox.sluice(&["runs", "gc", "--runs-dir", &runs_arg])?;
    assert_eq!(refused.code, exit_codes::INVALID_INPUT);
    let dry = sandbox.sluice(&[
        "runs",
        "gc",
        "--keep",
        "1",
        "--dry-run",
        "--runs-dir",
        &runs_arg,
    ])?;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(run_ids(&runs)?.len(), 4);
    let gc = sandbox.sluice(&["runs", "gc", "--keep", "1", "--runs-dir", &runs_arg])?;
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let _ = holder.kill();
    let _ = holder.wait();
    // Kept: the newest, and the one whose lock was held.
    assert_eq!(run_ids(&runs)?, [ids[0].clone(), ids[3].clone()]);
    assert!(runs.join("latest/report.json").is_file());

    // By age: a run recorded as started in 2020 goes, today's stays.
    let old = runs.join(&ids[0]).join("report.json");
    let text = std::fs::read_to_string(&old)?;
    let mut report: serde_json::Value = serde_json::from_str(&text)?;
    report["started_at"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&old, serde_json::to_string(&report)?)?;
    let aged = sandbox.sluice(&["runs", "gc", "--older-than", "30d", "--runs-dir", &runs_arg])?;
    assert_eq!(aged.code, 0, "{}", aged.stderr);
    assert_eq!(run_ids(&runs)?, [ids[3].clone()]);
    Ok(())
}
