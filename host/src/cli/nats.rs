//! The `--nats` flags in one place — how to reach a NATS server (`--nats-user`, `--nats-tls`,
//! ...), how its job queue treats a job whose agent stops, and `run`/`resume`'s `--nats URL` —
//! and the connection they make. `agent`, `run`, `resume` and `runs --nats` all come here, so
//! none of them needs another.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use sluice::cluster::{ClusterTrust, NatsOptions, Redelivery, Remote};

use crate::error::CliError;

/// How to reach a NATS server, and how its job queue treats a job whose agent stops.
#[derive(Args, Debug, Clone)]
pub struct NatsConnection {
    /// NATS user (with --nats-password)
    #[arg(long, value_name = "USER", env = "SLUICE_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SLUICE_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
    /// NATS credentials file (nkey/JWT, as `nsc` writes them)
    #[arg(long, value_name = "FILE", env = "SLUICE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for a TLS NATS server
    #[arg(long, value_name = "PEM", env = "SLUICE_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Refuse a NATS server that does not offer TLS
    #[arg(long)]
    pub nats_tls: bool,
    /// A job its agent stops heartbeating for this long goes to another agent (set when the
    /// queue is first made)
    #[arg(long, value_name = "TIME", default_value = "30s")]
    pub ack_wait: humantime::Duration,
    /// Agents that may take a stage in turn before it is recorded as an error (set when the
    /// queue is first made)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..100))]
    pub deliveries: u16,
    /// This machine's cluster key, which signs its jobs, results and stops (ed25519, as `sluice
    /// key generate` writes; default ~/.local/share/sluice/cluster.key, made on first use)
    #[arg(long, value_name = "FILE", env = "SLUICE_CLUSTER_KEY")]
    pub cluster_key: Option<PathBuf>,
    /// A coordinator's public key whose jobs and stops this agent takes, besides its own key
    /// (repeatable)
    #[arg(long = "trust-coordinator", value_name = "PUB")]
    pub trust_coordinator: Vec<PathBuf>,
    /// An agent's public key whose results this coordinator adopts, besides its own key:
    /// `FILE`, or `FILE=LABEL,LABEL` for only stages whose `runs_on` labels are all listed
    /// (repeatable)
    #[arg(long = "trust-agent", value_name = "PUB[=LABELS]")]
    pub trust_agent: Vec<String>,
}

/// `--nats URL` of `run` and `resume`: the stages go to agents instead of running here.
#[derive(Args, Debug)]
pub struct SendToAgents {
    /// Send the stages to agents (`sluice agent`) through this NATS server instead of running
    /// them here, e.g. nats://127.0.0.1:4222
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    #[command(flatten)]
    pub connection: NatsConnection,
}

impl SendToAgents {
    /// The coordinator's connection when `--nats` is given.
    pub async fn remote(&self) -> Result<Option<Arc<Remote>>, CliError> {
        remote(self.nats.as_deref(), &self.connection).await
    }
}

/// The NATS options and queue settings the flags give.
pub fn nats_options(url: &str, connection: &NatsConnection) -> (NatsOptions, Redelivery) {
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

/// Connects to the NATS server at `url`, keeping fetched blobs in `blobs`.
pub async fn connect(
    url: &str,
    connection: &NatsConnection,
    blobs: &Path,
) -> Result<Remote, CliError> {
    let (options, redelivery) = nats_options(url, connection);
    let trust = ClusterTrust::load(
        connection.cluster_key.as_deref(),
        &connection.trust_coordinator,
        &connection.trust_agent,
    )
    .map_err(|err| CliError::input(format!("{err:#}")))?;
    Remote::connect(&options, blobs, redelivery, trust)
        .await
        .map_err(|err| CliError::input(format!("{err:#}")))
}

/// The connection when a URL is given (a coordinator's, or the run board's reader's).
pub async fn remote(
    url: Option<&str>,
    connection: &NatsConnection,
) -> Result<Option<Arc<Remote>>, CliError> {
    let Some(url) = url else { return Ok(None) };
    let remote = connect(url, connection, &cache_home().join("blobs")).await?;
    Ok(Some(Arc::new(remote)))
}

/// `~/.cache/sluice`: the coordinator's blob cache and the agent's default work folder are in it.
pub fn cache_home() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("sluice")
}
