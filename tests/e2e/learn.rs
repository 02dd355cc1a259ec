//! `sluice run --learn` (and `sluice stage run --learn`) on a real plugin that needs a host, a
//! program and a variable: the learning run grants none of them (the listener is never reached,
//! the program's file never appears), the proposed `[stage.allow]` holds exactly those three —
//! the `host:port` and the program's name, never a wildcard — and once pasted the run succeeds
//! with nothing denied.

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Listener, Pipeline, Sandbox, Stage};

/// The `learner` fixture as stage `fetch`: GETs `url`, runs `touch MARKER`, reads GREETING.
fn learner(url: &str, marker: &std::path::Path) -> Pipeline {
    Pipeline::new("learn").stage(
        Stage::new("fetch", "learner")
            .config("url", url)
            .config("marker", marker.display().to_string().as_str())
            .config("variable", "GREETING"),
    )
}

/// The `[stage.allow]` table a learning run printed on stderr: its header and key lines.
fn proposed_table(stderr: &str) -> Result<String> {
    let start = stderr
        .find("[stage.allow]")
        .context("no [stage.allow] table printed")?;
    Ok(stderr[start..]
        .lines()
        .take_while(|line| line.starts_with("[stage.allow]") || line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect())
}

#[test]
fn learn_proposes_exactly_what_was_refused_and_grants_none_of_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = Listener::start(true)?;
    let addr = server.addr.to_string();
    let marker = sandbox.path().join("touched");
    let file = sandbox.write(&learner(&format!("http://{addr}/"), &marker))?;
    let report = sandbox.path().join("learn.json");
    let mut args = sandbox.run_args(&file, &report);
    args.push("--learn".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("GREETING", "hello")];

    // Without --learn, the plugin is refused before it runs: it imports what it is not granted.
    let plain = sandbox.sluice_with_env(&args[..args.len() - 1], &env)?;
    plain.assert_exit(exit_codes::STAGE_ERROR);

    let learning = sandbox.sluice_with_env(&args, &env)?;
    // The run's own outcome: the stage was refused everything, so it failed.
    learning.assert_exit(exit_codes::STAGE_FAILED);
    assert_eq!(server.connections(), 0, "--learn granted the connection");
    assert!(!marker.exists(), "--learn ran the program");
    let table = proposed_table(&learning.stderr)?;
    assert_eq!(
        table.lines().skip(1).collect::<Vec<_>>(),
        [
            format!("net = [\"{addr}\"]"),
            "exec = [\"touch\"]".to_string(),
            "env = [\"GREETING\"]".to_string(),
        ],
        "{}",
        learning.stderr
    );
    learning.assert_stderr(&["could not learn: what it does after a refusal"]);
    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    let learned = &recorded["stages"][0]["learned"];
    assert_eq!(learned["learned"]["net"], serde_json::json!([addr]));
    assert_eq!(learned["learned"]["exec"], serde_json::json!(["touch"]));
    assert_eq!(learned["learned"]["env"], serde_json::json!(["GREETING"]));
    assert_eq!(learned["proposed"], learned["learned"], "{learned}");
    assert!(learned["learned"].get("secrets").is_none(), "{learned}");

    // Pasted under the stage, the same run succeeds with nothing denied.
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, format!("{text}\n{table}"))?;
    let (ran, granted) = sandbox.run_with_env(&file, &env)?;
    ran.assert_exit(exit_codes::SUCCESS);
    let fetch = granted.stage("fetch").context("no stage fetch")?;
    assert_eq!(fetch.status, StageStatus::Succeeded, "{}", ran.stderr);
    assert!(fetch.denied.is_empty(), "{:?}", fetch.denied);
    assert!(fetch.learned.is_none());
    assert_eq!(server.connections(), 1);
    assert!(marker.is_file());
    Ok(())
}

#[test]
fn stage_run_learns_too_and_keeps_the_grants_it_has() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = Listener::start(true)?;
    let addr = server.addr.to_string();
    let marker = sandbox.path().join("touched");
    let plugin = crate::support::plugin("learner")?;
    let ran = sandbox.sluice_with_env(
        &[
            "stage",
            "run",
            &plugin.display().to_string(),
            "--config",
            &format!("url=\"http://{addr}/\""),
            "--config",
            &format!("marker=\"{}\"", marker.display()),
            "--config",
            "variable=\"GREETING\"",
            "--allow",
            "exec=touch",
            "--learn",
        ],
        &[("GREETING", "hello")],
    )?;
    ran.assert_exit(exit_codes::STAGE_FAILED);
    // The program it was granted ran; what it was not granted did not happen.
    assert!(marker.is_file(), "{}", ran.stderr);
    assert_eq!(server.connections(), 0);
    let table = proposed_table(&ran.stderr)?;
    assert_eq!(
        table.lines().skip(1).collect::<Vec<_>>(),
        [
            format!("net = [\"{addr}\"]"),
            "exec = [\"touch\"]".to_string(),
            "env = [\"GREETING\"]".to_string(),
        ],
        "{}",
        ran.stderr
    );
    Ok(())
}

#[test]
fn a_program_asked_to_run_in_the_workspace_teaches_workspace_read() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A checkout of its own: the sandbox's folder also holds the runs folder.
    std::fs::create_dir(sandbox.path().join("project"))?;
    let pipeline = Pipeline::new("learn").set("workspace", "project").stage(
        Stage::new("build", "exec")
            .config("program", "true")
            .config("cwd", "/workspace"),
    );
    let file = sandbox.write(&pipeline)?;
    let report = sandbox.path().join("learn.json");
    let mut args = sandbox.run_args(&file, &report);
    args.push("--learn".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let learning = sandbox.sluice(&args)?;
    learning.assert_exit(exit_codes::STAGE_FAILED);
    let table = proposed_table(&learning.stderr)?;
    assert_eq!(
        table.lines().skip(1).collect::<Vec<_>>(),
        ["workspace = \"read\"", "exec = [\"true\"]"],
        "{}",
        learning.stderr
    );
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, format!("{text}\n{table}"))?;
    let (ran, granted) = sandbox.run(&file)?;
    ran.assert_exit(exit_codes::SUCCESS);
    let build = granted.stage("build").context("no stage build")?;
    assert!(build.denied.is_empty(), "{:?}", build.denied);
    Ok(())
}
