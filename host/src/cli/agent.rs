//! `sluice agent` and the `--nats` flags of `sluice run`/`resume`: from flags to a NATS
//! connection, and the agent's lines on the terminal.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice::Host;
use sluice::cluster::Remote;
use sluice::cluster::agent::{AgentOptions, serve};
use sluice::cluster::{NatsOptions, Redelivery};

use crate::args::{AgentArgs, NatsConnection};
use crate::error::{CliError, Outcome};

/// The NATS options and queue settings the flags give.
fn nats_options(url: &str, connection: &NatsConnection) -> (NatsOptions, Redelivery) {
    let options = NatsOptions {
        url: url.to_string(),
        user: connection.nats_user.clone(),
        password: connection.nats_password.clone(),
        creds_file: connection.nats_creds.clone(),
        tls_ca: connection.nats_tls_ca.clone(),
        tls_required: connection.nats_tls,
    };
    let redelivery = Redelivery {
        ack_wait: connection.ack_wait.into(),
        // One more than the agents that may run it: the last delivery reports it given up.
        max_deliver: i64::from(connection.deliveries) + 1,
    };
    (options, redelivery)
}

/// The coordinator's connection when `--nats` is given.
pub async fn remote(
    url: Option<&str>,
    connection: &NatsConnection,
) -> Result<Option<Arc<Remote>>, CliError> {
    let Some(url) = url else { return Ok(None) };
    let (options, redelivery) = nats_options(url, connection);
    let cache = cache_home().join("blobs");
    Remote::connect(&options, &cache, redelivery)
        .await
        .map(|remote| Some(Arc::new(remote)))
        .map_err(|err| CliError::input(format!("{err:#}")))
}

fn cache_home() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("sluice")
}

pub async fn agent(host: &Host, args: AgentArgs) -> Outcome {
    let labels: BTreeSet<String> = args.labels.iter().cloned().collect();
    for label in &labels {
        sluice::cluster::jobs::check_label(label)
            .map_err(|err| CliError::input(format!("{err:#}")))?;
    }
    let (options, redelivery) = nats_options(&args.nats, &args.connection);
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| cache_home().join("agent"));
    let remote = Remote::connect(&options, &work_dir.join("blobs"), redelivery)
        .await
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let name = args.name.clone().unwrap_or_else(default_name);
    let agent = AgentOptions {
        name: name.clone(),
        labels: labels.clone(),
        jobs,
        work_dir: work_dir.clone(),
        heartbeat: heartbeat_every(redelivery.ack_wait),
    };
    let stop = crate::run::interrupt_on_ctrl_c();
    let shown: Vec<&str> = labels.iter().map(String::as_str).collect();
    println!(
        "agent {name} serving {} (labels: {}; {jobs} at once; work in {})",
        args.nats,
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(", ")
        },
        work_dir.display()
    );
    let say = |line: String| println!("{line}");
    tokio::task::block_in_place(|| serve(host, &remote, &agent, &stop, &say))
        .map_err(|err| CliError::internal(format!("{err:#}")))?;
    println!("agent {name} stopped");
    crate::done()
}

/// `sluice runs --nats URL`: every coordinator's runs, from the run board.
pub async fn runs_on_board(url: Option<&str>, connection: &NatsConnection, json: bool) -> Outcome {
    let Some(remote) = remote(url, connection).await? else {
        return crate::done();
    };
    let runs = remote
        .board()
        .list()
        .await
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    if json {
        let text = serde_json::to_string_pretty(&runs)
            .map_err(|err| CliError::internal(err.to_string()))?;
        println!("{text}");
        return crate::done();
    }
    if runs.is_empty() {
        println!("no distributed runs on the board yet");
        return crate::done();
    }
    println!(
        "{:<24} {:<16} {:<10} {:>6}  {:<14} FOLDER",
        "RUN", "PIPELINE", "STATUS", "STAGES", "COORDINATOR"
    );
    for run in &runs {
        let done = run
            .stages
            .iter()
            .filter(|(_, status)| !matches!(status.as_str(), "pending" | "running"))
            .count();
        println!(
            "{:<24} {:<16} {:<10} {:>6}  {:<14} {}",
            run.run_id,
            run.pipeline,
            run.status,
            format!("{done}/{}", run.stages.len()),
            run.coordinator,
            run.run_dir
        );
    }
    crate::done()
}

/// A third of the ack wait: two beats can be lost before the job is given away.
fn heartbeat_every(ack_wait: Duration) -> Duration {
    (ack_wait / 3).max(Duration::from_millis(100))
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "agent".into());
    format!("{host}-{}", std::process::id())
}
