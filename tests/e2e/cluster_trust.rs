//! A cluster you can trust (issue 30): a NATS client holding an agent's rights — a plain client
//! here, speaking NATS, not sluice's transport — forges results before any agent, replays another
//! run's honest result, queues jobs signed by a stranger, expired, or seen before, and sends
//! unsigned stops and log events full of escape codes. Each is refused, proven by state: the
//! report's statuses, the stage that did not run after a failure, the lines a host program
//! appended, the agent's refusal log, and the coordinator's output.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use sluice::model::report::StageStatus;

use crate::support::agents::{Agent, coordinator, finish, read_report};
use crate::support::{NatsServer, Pipeline, Sandbox, Stage, table};

/// `test` appends a line to `marker` and exits with `exit`; `release` runs only after it.
fn pipeline(marker: &Path, exit: u8) -> Pipeline {
    let script = format!("echo ran >> '{}'; sleep 1; exit {exit}", marker.display());
    Pipeline::new("trust")
        .stage(
            Stage::new("test", "exec")
                .inputs::<0>([])
                .set("cache", false)
                .allow("exec", vec!["sh"])
                .config("program", "sh")
                .config("args", vec!["-c", script.as_str()])
                .config("log_name", "out.txt"),
        )
        .stage(
            Stage::new("release", "emit")
                .phase("release")
                .inputs::<0>([])
                .set("needs", vec!["test"])
                .config("files", table([("r.txt", "released")])),
        )
}

/// The subject prefix of a stage's results (what anyone can compute from a job).
fn results_prefix(run_id: &str, stage: &str) -> String {
    let digest = Sha256::new()
        .chain_update(run_id.as_bytes())
        .chain_update([0])
        .chain_update(stage.as_bytes())
        .finalize();
    format!("sluice.results.{}", hex::encode(&digest[..16]))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // Multi-threaded: the noise thread drives its publishes through the same runtime.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// Publishes `bytes` into JetStream on a subject of its own under `prefix`.
async fn put(js: &async_nats::jetstream::Context, prefix: &str, bytes: Vec<u8>) -> Result<()> {
    let subject = format!("{prefix}.{}", hex::encode(&Sha256::digest(&bytes)[..16]));
    js.publish(subject, bytes.into()).await?.await?;
    Ok(())
}

/// The JSON inside a sealed message (anyone can read it: it is signed, not encrypted).
fn unsealed(bytes: &[u8]) -> Result<serde_json::Value> {
    let envelope: serde_json::Value = serde_json::from_slice(bytes)?;
    let payload = envelope["payload"].as_str().context("no payload")?;
    let json = base64::engine::general_purpose::STANDARD.decode(payload)?;
    Ok(serde_json::from_slice(&json)?)
}

#[test]
fn forged_replayed_and_unsigned_messages_change_nothing() -> Result<()> {
    use futures_util::StreamExt;
    use sluice::cluster::sealed::seal;
    use sluice::trust::signing::{SigningKey, generate_key_pair};

    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("ran.txt");
    let (stranger_key, _, _) = generate_key_pair(&sandbox.path().join("stranger"))?;
    let stranger = SigningKey::from_file(&stranger_key)?;
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let client = rt.block_on(async_nats::connect(url.as_str()))?;
    let js = async_nats::jetstream::new(client.clone());

    // Run 1 passes: its honest result is what the forger replays later.
    for dir in ["one", "two"] {
        std::fs::create_dir_all(sandbox.path().join(dir))?;
    }
    let mut agent = Agent::start(&sandbox, &url, "a", &[], &[])?;
    let file = sandbox.pipeline("one/pipeline.toml", &pipeline(&marker, 0).to_toml())?;
    let report_one = sandbox.path().join("one/report.json");
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report_one, &[])?, 120)?;
    assert_eq!(code, 0, "{output}");
    let first = read_report(&report_one)?;
    let run_one = first.run_id.clone();
    // The record and the provenance name the agent that built each stage, and its key.
    let ran_on = first
        .stages
        .iter()
        .map(|s| s.ran_on.clone().unwrap_or_default());
    assert!(
        ran_on.clone().all(|r| r.starts_with("a (ed25519:")),
        "{:?}",
        ran_on.collect::<Vec<_>>()
    );
    let provenance: serde_json::Value = serde_json::from_slice(&std::fs::read(
        Path::new(&first.run_dir).join(sluice::run::provenance::STATEMENT_FILE),
    )?)?;
    let builders: Vec<&str> = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["annotations"]["builder"].as_str())
        .collect();
    assert_eq!(builders.len(), 2, "{provenance}");
    assert!(
        builders.iter().all(|b| b.starts_with("a (ed25519:")),
        "{builders:?}"
    );
    let honest_one: Vec<Vec<u8>> = rt.block_on(async {
        let results = sluice::cluster::Results::open(client.clone()).await?;
        anyhow::Ok(
            results
                .since(&run_one, "test", 0)
                .await?
                .into_iter()
                .map(|m| m.bytes)
                .collect(),
        )
    })?;
    assert!(!honest_one.is_empty());
    agent.kill();

    // Run 2 fails. No agent is up: its job waits while the forger acts.
    let mut jobs = rt.block_on(client.subscribe("sluice.jobs.>"))?;
    rt.block_on(client.flush())?;
    let file = sandbox.pipeline("two/pipeline.toml", &pipeline(&marker, 1).to_toml())?;
    let report_two = sandbox.path().join("two/report.json");
    let running = coordinator(&sandbox, &file, &url, &report_two, &[])?;
    let job_bytes = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), jobs.next()).await })?
        .context("no job was queued")?
        .payload
        .to_vec();
    let job = unsealed(&job_bytes)?;
    let run_two = job["run_id"].as_str().context("no run id")?.to_string();
    let prefix = results_prefix(&run_two, "test");
    let mut forged = serde_json::json!({
        "job_sha256": hex::encode(Sha256::digest(&job_bytes)),
        "record": job["record"].clone(),
        "log_sha256": null,
        "by": "a",
        "delivery": 1,
    });
    forged["record"]["status"] = "succeeded".into();
    forged["record"]["message"] = "all good (forged)".into();
    rt.block_on(async {
        // Results written before any agent: unsigned, signed by a stranger, another run's.
        put(&js, &prefix, serde_json::to_vec(&forged)?).await?;
        put(&js, &prefix, seal(&stranger, "result", &forged)?).await?;
        for honest in &honest_one {
            put(&js, &prefix, honest.clone()).await?;
        }
        // Jobs: the same job signed by a stranger, an expired one signed by the trusted key
        // (a leaked old job), and the honest job queued a second time.
        let own = SigningKey::from_file(&sandbox.path().join("xdg/data/sluice/cluster.key"))?;
        let mut expired = job.clone();
        expired["expires_at"] = 1.into();
        for bytes in [
            seal(&stranger, "job", &job)?,
            seal(&own, "job", &expired)?,
            job_bytes.clone(),
        ] {
            js.publish("sluice.jobs.any", bytes.into()).await?.await?;
        }
        anyhow::Ok(())
    })?;

    // While the stage runs: unsigned stops and log events with escape codes, again and again.
    let done = Arc::new(AtomicBool::new(false));
    let noise = {
        let (client, done, run_two) = (client.clone(), done.clone(), run_two.clone());
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let stop = serde_json::json!({"run_id": run_two, "stage": "test", "reason": "\n::error::forged stop"});
                let event = serde_json::json!({"stage": "test", "kind": "log", "source": "stderr",
                    "line": "\u{1b}]0;pwned\u{7}\u{1b}[2J\n::error::forged event"});
                handle.block_on(async {
                    let _ = client
                        .publish(format!("sluice.cancel.{run_two}"), stop.to_string().into())
                        .await;
                    let _ = client
                        .publish(format!("sluice.events.{run_two}"), event.to_string().into())
                        .await;
                    let _ = client.flush().await;
                });
                // The noise's pace, for as long as the run lasts: part of the scenario.
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let agent = Agent::start(&sandbox, &url, "b", &[], &[])?;
    let finished = finish(running, 120);
    done.store(true, Ordering::Relaxed);
    let _ = noise.join();
    let (code, output) = finished?;

    let report = read_report(&report_two)?;
    let status = |name: &str| {
        report
            .stages
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.status)
    };
    assert_eq!(status("test"), Some(StageStatus::Failed), "{output}");
    assert_eq!(status("release"), Some(StageStatus::Skipped), "{output}");
    assert_ne!(code, 0);
    assert!(!output.contains("all good (forged)"), "{output}");
    assert!(
        output
            .matches("refused a result recorded for this stage")
            .count()
            >= 3,
        "{output}"
    );
    assert!(
        !output.contains('\u{1b}'),
        "an escape code reached the terminal"
    );
    assert!(
        !output.lines().any(|l| l.trim_start().starts_with("::")),
        "{output}"
    );
    // The stage ran once per honest job: the refused jobs ran nothing.
    agent.wait_for("it is a replay", Duration::from_secs(30))?;
    assert_eq!(std::fs::read_to_string(&marker)?, "ran\nran\n");
    let refused = std::fs::read_to_string(agent.work_dir.join("refused-jobs.log"))?;
    for why in ["a key not trusted for this", "expired", "it is a replay"] {
        assert!(refused.contains(why), "{why}: {refused}");
    }
    Ok(())
}

#[test]
fn the_agents_credentials_and_keys_stay_the_operators() -> Result<()> {
    use crate::support::agents::{Wiretap, sealed_payload};
    const PASSWORD: &str = "agent-pw-7d1e-never-leaves";
    let server = NatsServer::start_with_login("agent", PASSWORD)?;
    let url = server.url();
    let tap = Wiretap::start_with_login(&url, "agent", PASSWORD)?;
    let sandbox = Sandbox::new()?;

    // `sluice check` refuses sluice's own variables and what the operator protects, at the line.
    let env_grant = |name: &str| {
        Pipeline::new("grab").stage(
            Stage::new("grab", "emit")
                .allow("env", vec![name])
                .config("files", table([("a.txt", "a")])),
        )
    };
    let file = sandbox.pipeline("nats.toml", &env_grant("SLUICE_NATS_PASSWORD").to_toml())?;
    let checked = sandbox.sluice(&["check", &file.display().to_string()])?;
    checked
        .assert_exit(sluice::exit_codes::INVALID_INPUT)
        .assert_stderr(&[
            "nats.toml:",
            "`SLUICE_NATS_PASSWORD` is one of sluice's own settings",
        ]);
    let file = sandbox.pipeline("deploy.toml", &env_grant("DEPLOY_KEY").to_toml())?;
    let checked = sandbox.sluice_with_env(
        &["check", &file.display().to_string()],
        &[("SLUICE_PROTECTED_ENV", "NATS_*, DEPLOY_*")],
    )?;
    checked
        .assert_exit(sluice::exit_codes::INVALID_INPUT)
        .assert_stderr(&["deploy.toml:", "`DEPLOY_KEY` is protected on this machine"]);

    // On the agent: a stage that prints the agent's whole environment, and one whose secret is
    // read from the agent's cluster key.
    let key_file = sandbox.path().join("xdg/data/sluice/cluster.key");
    let pipeline = Pipeline::new("creds")
        .secret("KEY", table([("file", key_file.display().to_string())]))
        .stage(
            Stage::new("env", "exec")
                .inputs::<0>([])
                .set("cache", false)
                .allow("exec", vec!["sh"])
                .config("program", "sh")
                .config("args", vec!["-c", "tr '\\0' '\\n' < /proc/$PPID/environ"])
                .config("log_name", "env.txt"),
        )
        .stage(
            Stage::new("key", "secret-leak")
                .inputs::<0>([])
                .set("needs", vec!["env"])
                .set("when", "always")
                .allow("secrets", ["KEY"])
                .config("name", "KEY")
                .config("pad", 0),
        );
    let file = sandbox.pipeline("creds.toml", &pipeline.to_toml())?;
    let login = [
        ("SLUICE_NATS_USER", "agent"),
        ("SLUICE_NATS_PASSWORD", PASSWORD),
    ];
    let agent = Agent::start(&sandbox, &url, "ops", &[], &login)?;
    let report = sandbox.path().join("creds.json");
    let running = coordinator(
        &sandbox,
        &file,
        &url,
        &report,
        &["--nats-user", "agent", "--nats-password", PASSWORD],
    )?;
    let (_, output) = finish(running, 120)?;
    let report = read_report(&report)?;
    let stage = |name: &str| report.stages.iter().find(|s| s.name == name);
    // The agent restarted itself without the password in its environment or arguments: the
    // stage that printed the agent's whole environment found no password to print.
    assert_eq!(
        stage("env").map(|s| s.status),
        Some(StageStatus::Succeeded),
        "{output}"
    );
    let log = std::fs::read_to_string(Path::new(&report.run_dir).join("logs/env.log"))?;
    assert!(log.contains("SLUICE_NATS_USER=agent"), "{log}");
    assert!(!log.contains("SLUICE_NATS_PASSWORD"), "{log}");
    let pid = agent.pid().context("the agent is running")?;
    for view in ["environ", "cmdline"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{view}"))?;
        assert!(!bytes.is_empty(), "/proc/{pid}/{view} could not be read");
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the agent's {view} holds its NATS password"
        );
    }
    assert_eq!(
        stage("key").map(|s| s.status),
        Some(StageStatus::Error),
        "{output}"
    );
    assert!(
        stage("key")
            .and_then(|s| s.message.clone())
            .is_some_and(|m| m.contains("the agent's cluster key")),
        "{output}"
    );
    // Neither the password nor any line of the key crossed NATS, or reached the coordinator.
    let key_lines: Vec<String> = std::fs::read_to_string(&key_file)?
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    assert!(!key_lines.is_empty());
    let mut needles = vec![PASSWORD.to_string()];
    needles.extend(key_lines);
    let messages = tap.messages();
    assert!(messages.len() > 10, "the wiretap heard nothing");
    for message in &messages {
        let mut bytes = message.clone();
        bytes.extend_from_slice(&sealed_payload(message));
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a credential crossed NATS"
            );
        }
    }
    for needle in &needles {
        assert!(
            !output.contains(needle.as_str()),
            "a credential in the output"
        );
        assert!(
            crate::support::agents::files_containing(Path::new(&report.run_dir), needle.as_bytes())
                .is_empty()
        );
    }
    Ok(())
}

/// Outputs of the remote stage in the big-result test: its record is far over one NATS message.
const MANY_OUTPUTS: usize = 10_000;

#[test]
fn a_stage_with_ten_thousand_outputs_runs_on_an_agent_and_is_recorded_once() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    // Ten distinct pages, a thousand times over: what is big is the record (10,000 outputs),
    // not the bytes, so the store holds ten blobs and the test stays quick.
    let files: Vec<(String, String)> = (0..MANY_OUTPUTS)
        .map(|i| {
            (
                format!("site/page-{i:05}.html"),
                format!("page {}\n", i % 10),
            )
        })
        .collect();
    let table = crate::support::Toml::Table(
        files
            .iter()
            .map(|(name, text)| (name.clone(), text.as_str().into()))
            .collect(),
    );
    let pipeline = Pipeline::new("big").stage(
        Stage::new("site", "emit")
            .set("cache", false)
            .config("files", table),
    );
    let file = sandbox.pipeline("big.toml", &pipeline.to_toml())?;
    let agent = Agent::start(&sandbox, &url, "big", &[], &[])?;
    let report = sandbox.path().join("big.json");
    let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &[])?, 300)?;
    assert_eq!(code, 0, "{output}");
    let report = read_report(&report)?;
    let site = report
        .stages
        .iter()
        .find(|s| s.name == "site")
        .context("no site stage")?;
    assert_eq!(site.outputs.len(), MANY_OUTPUTS);
    let last = Path::new(&report.run_dir).join(format!(
        "artifacts/site/site/page-{:05}.html",
        MANY_OUTPUTS - 1
    ));
    assert_eq!(
        std::fs::read_to_string(last)?,
        format!("page {}\n", (MANY_OUTPUTS - 1) % 10)
    );
    // Recorded once: the agent ran it once and said so once.
    assert_eq!(agent.ran().len(), 1, "{}", agent.output());
    Ok(())
}

/// checkout → build (a host program reading the workspace) → test → release, the workspace
/// granted read-only: what agents on machines without the checkout must run.
fn shipped(ws: &Path) -> Pipeline {
    Pipeline::new("apart")
        .set("workspace", ws.display().to_string())
        .stage(
            Stage::new("code", "checkout")
                .phase("code")
                .allow("workspace", "read"),
        )
        .stage(
            Stage::new("build", "exec")
                .phase("build")
                .inputs::<0>([])
                .set("needs", vec!["code"])
                .allow("workspace", "read")
                .allow("exec", vec!["sh"])
                .config("program", "sh")
                .config(
                    "args",
                    vec![
                        "-c",
                        "cat src/lib.txt > \"$SLUICE_OUT/built.txt\"; \
                         if [ -e target/app ]; then echo shipped >> \"$SLUICE_OUT/built.txt\"; fi",
                    ],
                )
                .config("outputs", vec!["built.txt"]),
        )
        .stage(
            Stage::new("test", "assert-text")
                .phase("test")
                .inputs(["build/built.txt"])
                .config("require", ["version two"]),
        )
        .stage(
            Stage::new("release", "checksum")
                .phase("release")
                .inputs(["build/built.txt"]),
        )
}

#[test]
fn agents_that_share_no_folder_with_the_coordinator_get_the_workspace_by_content() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(ws.join("src"))?;
    std::fs::create_dir_all(sandbox.runs_dir())?;
    for i in 0..50 {
        std::fs::write(ws.join(format!("src/file{i}.txt")), format!("file {i}\n"))?;
    }
    std::fs::write(ws.join("src/lib.txt"), "version one\n")?;
    // A git work tree whose build output is ignored: it stays on the coordinator.
    crate::real_content::git(&ws, &["init", "-q"])?;
    std::fs::write(ws.join(".gitignore"), "/target\n")?;
    std::fs::create_dir_all(ws.join("target"))?;
    std::fs::write(ws.join("target/app"), "a build output\n")?;
    // Two agents in mount namespaces of their own, where the checkout and the coordinator's
    // runs folder are empty: nothing of the coordinator's is at its path there.
    let runs = sandbox.runs_dir();
    let hidden = [ws.as_path(), runs.as_path()];
    let agents = ["far1", "far2"]
        .iter()
        .map(|name| Agent::start_apart(&sandbox, &url, name, &[], &[], &hidden))
        .collect::<Result<Vec<_>>>()?;
    let file = sandbox.pipeline("apart.toml", &shipped(&ws).to_toml())?;
    let run = |round: &str| -> Result<(i32, String, sluice::model::report::RunReport)> {
        let report = sandbox.path().join(format!("apart-{round}.json"));
        let (code, output) = finish(
            coordinator(&sandbox, &file, &url, &report, &["--no-stage-cache"])?,
            120,
        )?;
        Ok((code, output, read_report(&report)?))
    };
    // The test stage wants "version two": the first run fails there, having built from the
    // shipped workspace.
    let (code, output, _) = run("one")?;
    assert_eq!(code, sluice::exit_codes::STAGE_FAILED, "{output}");
    assert!(
        output.contains("workspace sent by content: 52 files, 52 new")
            && output.contains("1 ignored by git left here"),
        "{output}"
    );
    std::fs::write(ws.join("src/lib.txt"), "version two\n")?;
    let (code, output, report) = run("two")?;
    assert_eq!(code, 0, "{output}");
    // One file changed: one file sent.
    assert!(
        output.contains("workspace sent by content: 52 files, 1 new"),
        "{output}"
    );
    let built =
        std::fs::read_to_string(Path::new(&report.run_dir).join("artifacts/build/built.txt"))?;
    assert_eq!(built, "version two\n");
    // Every stage ran on one of the agents, and the provenance says which.
    for stage in &report.stages {
        let ran_on = stage.ran_on.clone().unwrap_or_default();
        assert!(
            ran_on.starts_with("far"),
            "{} ran on {ran_on:?}",
            stage.name
        );
    }
    let provenance = std::fs::read_to_string(
        Path::new(&report.run_dir).join(sluice::run::provenance::STATEMENT_FILE),
    )?;
    assert!(provenance.contains("\"builder\": \"far"), "{provenance}");
    // The agents really could not see the checkout: a stage reading the coordinator's path
    // finds nothing there.
    for agent in &agents {
        let pid = agent.pid().context("agent pid")?;
        let seen = std::fs::read_dir(format!("/proc/{pid}/root{}", ws.display()))?.count();
        assert_eq!(seen, 0, "agent {} sees the checkout", agent.name);
    }
    Ok(())
}

#[test]
fn a_stage_that_would_write_the_workspace_or_use_this_machines_dirs_is_not_sent() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    let _agent = Agent::start(&sandbox, &url, "near", &[], &[])?;
    for (name, stage) in [
        (
            "write",
            Stage::new("w", "emit")
                .allow("workspace", "write")
                .config("files", table([("a.txt", "a")])),
        ),
        (
            "dirs",
            Stage::new("d", "emit")
                .allow("dirs", [table([("host", "ws"), ("guest", "/data")])])
                .config("files", table([("a.txt", "a")])),
        ),
    ] {
        let pipeline = Pipeline::new(name).set("workspace", "ws").stage(stage);
        let file = sandbox.pipeline(&format!("{name}.toml"), &pipeline.to_toml())?;
        let report = sandbox.path().join(format!("{name}.json"));
        let (code, output) = finish(coordinator(&sandbox, &file, &url, &report, &[])?, 60)?;
        assert_eq!(code, sluice::exit_codes::STAGE_ERROR, "{output}");
        let message = read_report(&report)?.stages[0]
            .message
            .clone()
            .unwrap_or_default();
        let expected = if name == "write" {
            "which an agent cannot be given"
        } else {
            "which an agent does not have"
        };
        assert!(message.contains(expected), "{message}");
    }
    Ok(())
}
