//! Distributed runs (issue 19) end to end: a real `nats-server -js`, real `sluice agent`
//! processes and `sluice run --nats` coordinators. Every claim is checked on state: the agents'
//! own lines and the records say which agent ran what and how often, a killed process is gone,
//! a secret's value is looked for in every message that crossed the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice::model::report::{RunReport, RunStatus, StageStatus};

use crate::support::agents::{Agent, Wiretap, files_containing};
use crate::support::{NatsServer, Pipeline, Sandbox, Stage, processes_with, table};

const TOKEN: &str = "tok-3f9a-never-on-the-wire-7c21";

/// `sluice run FILE --nats URL`, started, with its report at `report`.
fn coordinator(
    sandbox: &Sandbox,
    file: &Path,
    url: &str,
    report: &Path,
    extra: &[&str],
) -> Result<Child> {
    let (file, report) = (file.display().to_string(), report.display().to_string());
    let mut args = vec![
        "run", &file, "--nats", url, "--format", "plain", "--report", &report,
    ];
    args.extend_from_slice(extra);
    sandbox
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start sluice run --nats")
}

/// Waits for a coordinator (at most `seconds`), returning its exit code and output.
fn finish(child: Child, seconds: u64) -> Result<(i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut child = child;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            bail!(
                "the coordinator did not finish within {seconds} s:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code().unwrap_or(-1), text))
}

fn read_report(path: &Path) -> Result<RunReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("no report {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// code → leak (prints the agent-side secret everywhere it can) → check (reads code's file).
fn small_pipeline(name: &str, text: &str) -> Pipeline {
    Pipeline::new(name)
        .secret("TOKEN", table([("env", "SLUICE_AGENT_TOKEN")]))
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", text)])))
        .stage(
            Stage::new("leak", "secret-leak")
                .allow("secrets", ["TOKEN"])
                .config("name", "TOKEN"),
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
    let env = [("SLUICE_AGENT_TOKEN", TOKEN)];
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
            let file = dir.join("pipeline.toml");
            let toml = small_pipeline(&format!("p{n}"), &text).to_toml();
            std::fs::write(&file, resolve_plugins(&toml)?)?;
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
    let messages = tap.messages();
    let seen = |needle: &[u8]| {
        messages
            .iter()
            .filter(|m| m.windows(needle.len()).any(|w| w == needle))
            .count()
    };
    assert!(seen(b"pipeline_text") >= 90, "the wiretap missed the jobs");
    assert!(
        seen(b"the secret is ***") >= 30,
        "the wiretap missed the logs"
    );
    assert_eq!(seen(TOKEN.as_bytes()), 0, "the secret crossed NATS");
    Ok(())
}

/// `{plugin:NAME}` → the built plugin's path (what `Sandbox::pipeline` does, for any folder).
fn resolve_plugins(text: &str) -> Result<String> {
    let mut text = text.to_string();
    while let Some(start) = text.find("{plugin:") {
        let end = start + text[start..].find('}').context("unclosed {plugin:")?;
        let path = crate::support::plugin(&text[start + 8..end])?;
        text.replace_range(start..=end, &path.display().to_string());
    }
    Ok(text)
}

fn report_dir(report: &RunReport) -> Result<PathBuf> {
    anyhow::ensure!(!report.run_dir.is_empty(), "the report names no run folder");
    Ok(PathBuf::from(&report.run_dir))
}

/// Waits until a process whose command line holds `marker` runs.
fn wait_for_process(marker: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let running = std::fs::read_dir("/proc")?.flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|line| line.windows(marker.len()).any(|w| w == marker.as_bytes()))
        });
        if running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no process with {marker} started")
}

/// A stage that takes a while on whichever agent runs it, marked so its process can be found.
fn slow(name: &str, seconds: &str) -> Stage {
    Stage::new(name, "exec")
        .allow("exec", ["sleep"])
        .config("program", "sleep")
        .config("args", [seconds])
        .config("cwd", "/out")
}

#[test]
fn an_agent_killed_mid_stage_loses_nothing_the_stage_runs_again_elsewhere() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let quick = ["--ack-wait", "2s"];
    let mut first = Agent::start(&sandbox, &url, "doomed", &quick, &[])?;
    let file = sandbox.write(
        &Pipeline::new("survives")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "kept")])))
            .stage(slow("long", "3.0417")),
    )?;
    let report = sandbox.path().join("report.json");
    let run = coordinator(&sandbox, &file, &url, &report, &["--ack-wait", "2s"])?;
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
    let _ = run.kill();
    let _ = run.wait();
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
            .stage(Stage::new("after", "checksum").set("needs", ["long", "bad"])),
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
        ]
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
    // Both runs are on the board with the coordinator's folder.
    let mut board = vec!["runs", "--nats", &url, "--json"];
    board.extend_from_slice(&login);
    let listed = sandbox.sluice(&board)?;
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
    assert_eq!(listed.len(), 2);
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
    // The coordinator's own folders are not touched, so it sends the stage; the agent's are.
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
    assert!(
        message.contains("overlaps the agent's work folder"),
        "{message}"
    );
    assert!(files_containing(&agents, b"pwned").is_empty());
    assert!(!agent.work_dir.join("pwned.txt").exists());
    Ok(())
}
