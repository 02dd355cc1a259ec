//! Distributed runs (issue 19) keep a local run's rules: labels route stages, a failing stage
//! stops its run on every agent (and its on-failure stages still run), gates, the stage cache and NATS credentials work as on one
//! machine, and an agent keeps its own folders out of a stage's reach. Against a real
//! `nats-server -js` and real `sluice agent` processes; checked on state.

use std::time::{Duration, Instant};

use anyhow::Result;
use sluice::model::report::StageStatus;

use crate::support::agents::{Agent, coordinator, files_containing, finish, read_report, slow};
use crate::support::{NatsServer, Pipeline, Sandbox, Stage, processes_with, table};

#[test]
fn a_stage_with_labels_runs_only_on_an_agent_that_has_them() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let plain = Agent::start(&sandbox, &url, "plain", &["--jobs", "2"], &[])?;
    let cargo = Agent::start(
        &sandbox,
        &url,
        "builder",
        &["--label", "cargo", "--label", "linux"],
        &[],
    )?;
    let mut pipeline = Pipeline::new("labelled");
    for i in 0..6 {
        pipeline = pipeline
            .stage(Stage::new(&format!("any{i}"), "emit").config("files", table([("x", "x")])));
    }
    let pipeline = pipeline.stage(
        Stage::new("build", "emit")
            .set("runs_on", ["cargo"])
            .config("files", table([("y", "y")])),
    );
    let file = sandbox.write(&pipeline)?;
    let report = sandbox.path().join("report.json");
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &[])?, 60)?;
    assert_eq!(code, 0, "{output}");
    assert!(
        plain.ran().iter().all(|(_, s)| s != "build"),
        "{}",
        plain.output()
    );
    assert_eq!(cargo.ran().iter().filter(|(_, s)| s == "build").count(), 1);
    assert_eq!(plain.ran().len() + cargo.ran().len(), 7);
    // A label that is not a subject token is refused where it is written.
    let bad = sandbox.write(
        &Pipeline::new("bad").stage(Stage::new("s", "emit").set("runs_on", ["Big Machine"])),
    )?;
    let checked = sandbox.sluice(&["check", &bad.display().to_string()])?;
    assert_ne!(checked.code, 0);
    assert!(
        checked
            .stderr
            .contains("invalid label \"Big Machine\" in `runs_on`"),
        "{}",
        checked.stderr
    );
    Ok(())
}

#[test]
fn a_failing_stage_stops_its_run_on_every_agent() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let _a = Agent::start(&sandbox, &url, "one", &[], &[])?;
    let _b = Agent::start(&sandbox, &url, "two", &[], &[])?;
    let file = sandbox.write(
        &Pipeline::new("stops")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a")])))
            .stage(slow("long", "30.0427").inputs(["code/a.txt"]))
            .stage(
                Stage::new("bad", "assert-text")
                    .inputs(["code/a.txt"])
                    .config("require", ["not there"]),
            )
            .stage(Stage::new("after", "checksum").set("needs", ["long", "bad"]))
            .stage(
                Stage::new("cleanup", "emit")
                    .set("when", "on-failure")
                    .set("needs", ["after"])
                    .config("files", table([("cleaned.txt", "yes")])),
            ),
    )?;
    let report = sandbox.path().join("report.json");
    let started = Instant::now();
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &[])?, 60)?;
    assert_eq!(code, sluice::exit_codes::STAGE_FAILED, "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the sleeping stage was not stopped"
    );
    let report = read_report(&report)?;
    let status: Vec<_> = report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        status,
        [
            ("code", StageStatus::Succeeded),
            ("long", StageStatus::Cancelled),
            ("bad", StageStatus::Failed),
            ("after", StageStatus::Skipped),
            ("cleanup", StageStatus::Succeeded),
        ]
    );
    // The on-failure stage ran on an agent, and its output came back.
    let run_dir = std::path::PathBuf::from(&report.run_dir);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("artifacts/cleanup/cleaned.txt"))?,
        "yes"
    );
    // The program the other agent started is gone.
    assert!(
        processes_with("30.0427").is_empty(),
        "sleep 30.0427 still runs"
    );
    Ok(())
}

#[test]
fn gates_the_stage_cache_and_credentials_work_as_in_a_local_run() -> Result<()> {
    let server = NatsServer::start_with_login("ci", "pw-5150-sluice")?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let login = ["--nats-user", "ci", "--nats-password", "pw-5150-sluice"];
    let agent = Agent::start(&sandbox, &url, "gatekeeper", &login, &[])?;
    let file = sandbox.write(
        &Pipeline::new("gated")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "gated")])))
            .stage(
                Stage::new("ship", "checksum")
                    .inputs(["code/a.txt"])
                    .set("approval", "manual"),
            ),
    )?;
    let file = file.display().to_string();
    // The wrong password: a clear error before anything runs.
    let refused = sandbox.sluice(&[
        "run",
        &file,
        "--nats",
        &url,
        "--nats-user",
        "ci",
        "--nats-password",
        "wrong",
    ])?;
    assert_eq!(
        refused.code,
        sluice::exit_codes::INVALID_INPUT,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("cannot connect to NATS"),
        "{}",
        refused.stderr
    );
    assert!(
        !sandbox.runs_dir().exists() || std::fs::read_dir(sandbox.runs_dir())?.next().is_none()
    );
    // Stops at the gate; approved on resume, the gated stage runs on the agent.
    let mut args = vec!["run", &file, "--nats", &url, "--format", "plain"];
    args.extend_from_slice(&login);
    let gated = sandbox.sluice(&args)?;
    assert_eq!(
        gated.code,
        sluice::exit_codes::AWAITING_APPROVAL,
        "{}",
        gated.stderr
    );
    assert_eq!(agent.ran().len(), 1, "{}", agent.output());
    let run_id = agent.ran()[0].0.clone();
    let mut resume = vec![
        "resume",
        &run_id,
        "--approve",
        "ship",
        "--nats",
        &url,
        "--format",
        "plain",
    ];
    resume.extend_from_slice(&login);
    let resumed = sandbox.sluice(&resume)?;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let ran = agent.ran();
    assert_eq!(
        ran.iter()
            .filter(|(r, s)| *r == run_id && s == "ship")
            .count(),
        1,
        "{ran:?}"
    );
    // A second run: `code` comes from the coordinator's stage cache and is never sent.
    args.extend_from_slice(&["--approve", "ship"]);
    let again = sandbox.sluice(&args)?;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let codes = agent.ran().iter().filter(|(_, s)| s == "code").count();
    assert_eq!(codes, 1, "{}", agent.output());
    // `--no-stage-cache`: every stage is sent, and the agent runs it (it keeps no cache).
    args.push("--no-stage-cache");
    let uncached = sandbox.sluice(&args)?;
    assert_eq!(uncached.code, 0, "{}", uncached.stderr);
    let codes = agent.ran().iter().filter(|(_, s)| s == "code").count();
    assert_eq!(codes, 2, "{}", agent.output());
    // All three runs are on the board.
    let mut board = vec!["runs", "--nats", &url, "--json"];
    board.extend_from_slice(&login);
    let listed = sandbox.sluice(&board)?;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|r| r["status"] == "succeeded"),
        "{listed:?}"
    );
    Ok(())
}

#[test]
fn an_agent_refuses_a_stage_whose_grants_reach_its_own_folders() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let agent = Agent::start(&sandbox, &url, "careful", &[], &[])?;
    let agents = sandbox.path().join("agents");
    // A folder of the coordinator's machine (here: the agent's own, which the coordinator shares
    // in this test) is refused before any job is sent.
    let file = sandbox.write(
        &Pipeline::new("reach").stage(
            Stage::new("attack", "escape")
                .allow(
                    "dirs",
                    [table([
                        ("host", agents.display().to_string()),
                        ("guest", "/a".to_string()),
                        ("mode", "write".to_string()),
                    ])],
                )
                .config("mode", "write")
                .config("path", "/a/careful/pwned.txt"),
        ),
    )?;
    let report = sandbox.path().join("report.json");
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &[])?, 60)?;
    assert_eq!(code, sluice::exit_codes::STAGE_ERROR, "{output}");
    let report = read_report(&report)?;
    let message = report.stages[0].message.clone().unwrap_or_default();
    // Folders of the coordinator's machine are never sent: the stage does not reach an agent.
    assert!(
        message.contains("which an agent does not have"),
        "{message}"
    );
    assert!(files_containing(&agents, b"pwned").is_empty());
    assert!(!agent.work_dir.join("pwned.txt").exists());
    Ok(())
}
