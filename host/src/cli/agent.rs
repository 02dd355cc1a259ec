//! `sluice agent`: serves stage jobs from a NATS JetStream server until Ctrl-C or SIGTERM, and
//! says on the terminal what it takes and how each ends.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use sluice::Host;
use sluice::cluster::agent::{AgentOptions, serve};

use crate::args::AgentArgs;
use crate::error::{CliError, Outcome, done};
use crate::interrupt::interrupt_on_ctrl_c;
use crate::nats::{NatsConnection, cache_home, connect};

/// `sluice agent`: connects, then runs the jobs its labels match until it is stopped.
pub async fn agent(host: &Host, mut args: AgentArgs) -> Outcome {
    if args.nats_password_stdin {
        args.connection.nats_password = Some(crate::agent_env::password_from_stdin()?);
    } else if let Some(password) = &args.connection.nats_password {
        return Err(crate::agent_env::restart_without(password));
    }
    let labels: BTreeSet<String> = args.labels.iter().cloned().collect();
    for label in &labels {
        sluice::cluster::jobs::check_label(label)
            .map_err(|err| CliError::input(format!("{err:#}")))?;
    }
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| cache_home().join("agent"));
    let remote = connect(&args.nats, &args.connection, &work_dir.join("blobs")).await?;
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
        heartbeat: heartbeat_every(args.connection.ack_wait.into()),
        protected_files: protected_files(&args.connection),
        credentials: credentials(&args.connection),
    };
    let stop = interrupt_on_ctrl_c();
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
    done()
}

/// The files that hold this agent's credentials and keys: no stage may read them.
fn protected_files(connection: &NatsConnection) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    if let Some(creds) = &connection.nats_creds {
        files.push((
            "the agent's NATS credentials file".to_string(),
            creds.clone(),
        ));
    }
    let cluster_key = connection
        .cluster_key
        .clone()
        .or_else(sluice::cluster::identity::default_key_path);
    if let Some(key) = cluster_key {
        files.push(("the agent's cluster key".to_string(), key));
    }
    if let Some(key) = sluice::trust::local_key::path(None) {
        files.push(("the compiled-code cache key".to_string(), key));
    }
    files
}

/// The agent's NATS password and its credentials file's content: masked in what stages send.
fn credentials(connection: &NatsConnection) -> Vec<String> {
    let mut values: Vec<String> = connection.nats_password.iter().cloned().collect();
    if let Some(text) = connection
        .nats_creds
        .as_ref()
        .and_then(|file| std::fs::read_to_string(file).ok())
    {
        values.push(text);
    }
    values
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
