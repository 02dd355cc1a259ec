//! Distributed runs (issue 19) end to end: a real `nats-server -js`, real `sluice agent`
//! processes and `sluice run --nats` coordinators — many runs on three agents, an agent killed
//! mid-stage, a stage nobody finishes, a coordinator killed mid-run. Every claim is checked on
//! state: the agents' own lines and the records say which agent ran what and how often, a killed
//! process is gone, a secret's value is looked for in every message that crossed the server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use sluice::model::report::{RunReport, RunStatus, StageStatus};

use crate::support::agents::{
    Agent, Wiretap, coordinator, files_containing, finish, read_report, report_dir, slow,
    wait_for_process,
};
use crate::support::{NatsServer, Pipeline, Sandbox, Stage, table};

const TOKEN: &str = "tok-3f9a-never-on-the-wire-7c21";

/// code → leak (prints the agent-side secret everywhere it can, after `pad` bytes: a log over
/// 64 KiB travels as a blob, a smaller one inside the result) → check (reads code's file).
fn small_pipeline(name: &str, text: &str, pad: i32) -> Pipeline {
    Pipeline::new(name)
        .secret("TOKEN", table([("env", "AGENT_TEST_TOKEN")]))
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", text)])))
        .stage(
            Stage::new("leak", "secret-leak")
                .allow("secrets", ["TOKEN"])
                .config("name", "TOKEN")
                .config("pad", pad),
        )
        .stage(
            Stage::new("check", "assert-text")
                .inputs(["code/a.txt"])
                .config("require", [text]),
        )
}

#[test]
fn three_agents_run_thirty_pipelines_each_stage_once_and_no_secret_crosses_nats() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let tap = Wiretap::start(&url)?;
    let sandbox = Sandbox::new()?;
    let env = [("AGENT_TEST_TOKEN", TOKEN)];
    let agents = ["a1", "a2", "a3"]
        .iter()
        .map(|name| Agent::start(&sandbox, &url, name, &["--jobs", "2"], &env))
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Vec::new();
    for batch in 0..3 {
        let mut running = Vec::new();
        for i in 0..10 {
            let n = batch * 10 + i;
            let dir = sandbox.path().join(format!("p{n}"));
            std::fs::create_dir_all(&dir)?;
            let text = format!("pipeline number {n}");
            let toml = small_pipeline(&format!("p{n}"), &text, (n % 2) * 70_000).to_toml();
            let file = sandbox.pipeline(&format!("p{n}/pipeline.toml"), &toml)?;
            let report = dir.join("report.json");
            running.push((
                coordinator(&sandbox, &file, &url, &report, &[])?,
                report,
                text,
            ));
        }
        for (child, report, text) in running {
            let (code, output) = finish(child, 120)?;
            assert_eq!(code, 0, "{output}");
            assert!(
                !output.contains(TOKEN),
                "the secret in the coordinator's output"
            );
            // The agent's log lines are shown live, as a local run shows them.
            assert!(
                output.contains("[leak] stdout | stdout: the secret is ***"),
                "{output}"
            );
            let report = read_report(&report)?;
            assert_eq!(report.status, RunStatus::Succeeded);
            // The artifact came back by digest into the coordinator's run folder.
            let run_dir = report_dir(&report)?;
            assert_eq!(
                std::fs::read_to_string(run_dir.join("artifacts/code/a.txt"))?,
                text
            );
            assert!(files_containing(&run_dir, TOKEN.as_bytes()).is_empty());
            let log = std::fs::read_to_string(run_dir.join("logs/leak.log"))?;
            assert!(log.contains("the secret is ***"), "{log}");
            reports.push(report);
        }
    }
    // Every stage of every run is recorded once, by exactly one agent.
    let mut ran: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for agent in &agents {
        for key in agent.ran() {
            ran.entry(key).or_default().push(agent.name.clone());
        }
    }
    assert_eq!(ran.len(), 90, "{ran:?}");
    for report in &reports {
        for stage in &report.stages {
            assert_eq!(stage.status, StageStatus::Succeeded);
            let by = ran.get(&(report.run_id.clone(), stage.name.clone()));
            assert_eq!(
                by.map(Vec::len),
                Some(1),
                "{} {}: {by:?}",
                report.run_id,
                stage.name
            );
        }
    }
    // The run board lists all thirty, finished, stage by stage.
    let board = sandbox.sluice(&["runs", "--nats", &url, "--json"])?;
    assert_eq!(board.code, 0, "{}", board.stderr);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&board.stdout)?;
    assert_eq!(listed.len(), 30);
    for run in &listed {
        assert_eq!(run["status"], "succeeded", "{run}");
        let stages = run["stages"].as_array().map(Vec::len);
        assert_eq!(stages, Some(3), "{run}");
        assert!(
            reports
                .iter()
                .any(|r| r.run_id == run["run_id"].as_str().unwrap_or_default())
        );
    }
    let busy = agents.iter().filter(|a| !a.ran().is_empty()).count();
    assert!(busy >= 2, "the work went to {busy} agent(s)");
    // Jobs, blobs, events and results all crossed the server; the secret never did.
    // Signed messages carry their JSON in base64: looked at decoded too.
    let messages: Vec<Vec<u8>> = tap
        .messages()
        .into_iter()
        .map(|mut m| {
            let decoded = crate::support::agents::sealed_payload(&m);
            m.extend_from_slice(&decoded);
            m
        })
        .collect();
    let seen = |needle: &[u8]| {
        messages
            .iter()
            .filter(|m| m.windows(needle.len()).any(|w| w == needle))
            .count()
    };
    assert!(
        seen(b"application/vnd.sluice.job+json") >= 90 && seen(b"\"pipeline_sha256\"") >= 90,
        "the wiretap missed the jobs"
    );
    assert!(
        seen(b"the secret is ***") >= 30,
        "the wiretap missed the logs"
    );
    assert_eq!(seen(TOKEN.as_bytes()), 0, "the secret crossed NATS");
    Ok(())
}

#[test]
fn an_agent_killed_mid_stage_loses_nothing_the_stage_runs_again_elsewhere() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    // A job is given away after 3 s without a heartbeat (one a second): the killed agent's job
    // soon, the rescuer's 3 s stage never, however slow the machine is for a beat or two.
    let quick = ["--ack-wait", "3s"];
    let mut first = Agent::start(&sandbox, &url, "doomed", &quick, &[])?;
    let file = sandbox.write(
        &Pipeline::new("survives")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "kept")])))
            .stage(slow("long", "3.0417")),
    )?;
    let report = sandbox.path().join("report.json");
    let run = coordinator(&sandbox, &file, &url, &report, &quick)?;
    // `code` is done; `long` is on the first agent: kill it there.
    first.wait_for(": succeeded", Duration::from_secs(60))?;
    wait_for_process("3.0417")?;
    let pid = first.pid();
    first.kill();
    let second = Agent::start(&sandbox, &url, "rescuer", &quick, &[])?;
    let (code, output) = finish(run, 90)?;
    assert_eq!(code, 0, "{output}");
    let report = read_report(&report)?;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.stages[1].status, StageStatus::Succeeded);
    assert!(
        output.contains("running on agent rescuer (delivery 2"),
        "the stage was not redelivered:\n{output}"
    );
    // The first agent is gone and recorded nothing for `long`; the second recorded it once.
    assert!(pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()));
    assert!(!first.ran().iter().any(|(_, stage)| stage == "long"));
    let long: Vec<_> = second
        .ran()
        .into_iter()
        .filter(|(_, s)| s == "long")
        .collect();
    assert_eq!(long.len(), 1, "{}", second.output());
    // `code`'s artifact, finished before the kill, is intact.
    assert_eq!(
        std::fs::read_to_string(report_dir(&report)?.join("artifacts/code/a.txt"))?,
        "kept"
    );
    Ok(())
}

#[test]
fn a_stage_no_agent_finishes_within_its_deliveries_is_an_error_with_the_reason() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let queue = ["--ack-wait", "1s", "--deliveries", "1"];
    let mut first = Agent::start(&sandbox, &url, "doomed", &queue, &[])?;
    let file = sandbox.write(
        &Pipeline::new("gives-up")
            .stage(slow("long", "5.0419"))
            .stage(Stage::new("after", "emit").config("files", table([("b.txt", "b")]))),
    )?;
    let report = sandbox.path().join("report.json");
    let run = coordinator(&sandbox, &file, &url, &report, &queue)?;
    first.wait_until_busy(Duration::from_secs(60))?;
    first.kill();
    let _second = Agent::start(&sandbox, &url, "reporter", &queue, &[])?;
    let (code, output) = finish(run, 60)?;
    assert_eq!(code, sluice::exit_codes::STAGE_ERROR, "{output}");
    let report = read_report(&report)?;
    let long = &report.stages[0];
    assert_eq!(long.status, StageStatus::Error);
    let message = long.message.clone().unwrap_or_default();
    assert!(
        message.contains("no agent finished this stage in 1 deliveries"),
        "{message}"
    );
    assert_eq!(report.stages[1].status, StageStatus::Skipped);
    Ok(())
}

#[test]
fn a_coordinator_killed_mid_run_is_resumed_and_no_stage_runs_twice() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let agent = Agent::start(&sandbox, &url, "steady", &["--jobs", "2"], &[])?;
    let file = sandbox.write(
        &Pipeline::new("resumable")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a")])))
            .stage(slow("long", "2.0413"))
            .stage(Stage::new("after", "checksum")),
    )?;
    let report = sandbox.path().join("report.json");
    let mut run = coordinator(&sandbox, &file, &url, &report, &[])?;
    agent.wait_for("code: succeeded", Duration::from_secs(60))?;
    wait_for_process("2.0413")?;
    // The coordinator dies while the agent runs `long`, which goes on and records its result.
    run.kill();
    agent.wait_for("long: succeeded", Duration::from_secs(60))?;
    let runs = std::fs::read_dir(sandbox.runs_dir())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("20"))
        .collect::<Vec<_>>();
    let [run_id] = runs.as_slice() else {
        bail!("expected one run, found {runs:?}")
    };
    let resumed = sandbox.sluice(&["resume", run_id, "--nats", &url, "--format", "plain"])?;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let report = RunReport::read(&sandbox.runs_dir().join(run_id).join("report.json"))?;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        report
            .stages
            .iter()
            .all(|s| s.status == StageStatus::Succeeded)
    );
    // `long` was adopted from its recorded result, not run again; `after` read its output.
    let ran = agent.ran();
    for stage in ["code", "long", "after"] {
        assert_eq!(
            ran.iter().filter(|(_, s)| s == stage).count(),
            1,
            "{stage}: {ran:?}"
        );
    }
    let dir = sandbox.runs_dir().join(run_id);
    assert!(dir.join("logs/long.log").is_file());
    Ok(())
}

#[test]
fn a_nats_restart_mid_stage_does_not_lose_the_run() -> Result<()> {
    let mut server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let agent = Agent::start(&sandbox, &url, "patient", &[], &[])?;
    let file = sandbox.write(
        &Pipeline::new("restart")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "a")])))
            .stage(slow("long", "3.0431"))
            .stage(Stage::new("after", "checksum")),
    )?;
    let report = sandbox.path().join("report.json");
    let run = coordinator(&sandbox, &file, &url, &report, &[])?;
    wait_for_process("3.0431")?;
    // The server goes away while the agent runs `long` — long enough for the stage to end and
    // the coordinator to look for its result meanwhile — and comes back with its storage.
    server.restart_after(Duration::from_secs(4))?;
    let (code, output) = finish(run, 90)?;
    assert_eq!(code, 0, "{output}");
    let report = read_report(&report)?;
    assert!(
        report
            .stages
            .iter()
            .all(|s| s.status == StageStatus::Succeeded)
    );
    let ran = agent.ran();
    for stage in ["code", "long", "after"] {
        assert_eq!(
            ran.iter().filter(|(_, s)| s == stage).count(),
            1,
            "{stage}: {ran:?}"
        );
    }
    Ok(())
}
