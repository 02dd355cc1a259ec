//! The engine's options for `sluice run` and `sluice resume`, built in one place from the flags
//! the two share ([`RunFlags`]): stages at once, the stage cache, the agents, Ctrl-C, and who
//! approves a gate.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use sluice::cluster::{ClusterTrust, SharedCache, SharedCacheOptions};
use sluice::registry::store::PluginStore;
use sluice::run::{Approver, RunOptions};
use sluice::stage::cache::{SharedStageCache, StageCache};
use sluice::trust::signing::TrustedKey;

use crate::args::{GlobalArgs, RunFlags};
use crate::error::CliError;
use crate::interrupt::interrupt_on_ctrl_c;

/// The options of a run started (`run`) or continued (`resume`) with `flags`. `approve` and
/// `runs_dir` come from each command's own flags: their help differs between the two (a resumed
/// run already has its folder, so `resume` passes none).
pub async fn run_options(
    store: &PluginStore,
    global: &GlobalArgs,
    flags: &RunFlags,
    approve: Vec<String>,
    runs_dir: Option<PathBuf>,
) -> Result<RunOptions, CliError> {
    Ok(RunOptions {
        runs_dir,
        plugin_store: Some(store.root().to_path_buf()),
        jobs: flags.jobs.map(usize::from),
        stage_cache: stage_cache_root(global),
        approve,
        approver: interactive_approver(),
        interrupt: Some(interrupt_on_ctrl_c()),
        remote: flags.agents.remote().await?,
        shared_cache: shared_cache(flags).await?,
    })
}

/// The shared stage cache when `--shared-cache` names one, reached with the `--nats-*` flags.
async fn shared_cache(flags: &RunFlags) -> Result<Option<Arc<dyn SharedStageCache>>, CliError> {
    let Some(url) = &flags.shared.shared_cache else {
        return Ok(None);
    };
    let input = |err: anyhow::Error| CliError::input(format!("{err:#}"));
    let connection = &flags.agents.connection;
    let own = ClusterTrust::load(connection.cluster_key.as_deref(), &[], &[])
        .map_err(input)?
        .own;
    let writers = flags
        .shared
        .trust_cache_writer
        .iter()
        .map(|file| TrustedKey::from_file(file).context("a key given with --trust-cache-writer"))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(input)?;
    let cache = SharedCache::open(SharedCacheOptions {
        nats: crate::nats::nats_options(url, connection).0,
        blob_cache: crate::nats::cache_home().join("blobs"),
        own,
        writers,
        read_only: flags.shared.shared_cache_read_only,
    })
    .await
    .map_err(input)?;
    Ok(Some(Arc::new(cache)))
}

/// The stage cache's folder, or none when it is off.
fn stage_cache_root(global: &GlobalArgs) -> Option<PathBuf> {
    if global.no_stage_cache {
        return None;
    }
    global.stage_cache.clone().or_else(StageCache::default_root)
}

/// Asks on the terminal when both stdin and stderr are one; otherwise gates wait.
fn interactive_approver() -> Option<Arc<dyn Approver>> {
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| Arc::new(TerminalApprover) as Arc<dyn Approver>)
}

struct TerminalApprover;

impl Approver for TerminalApprover {
    fn approve(&self, pipeline: &str, stage: &str) -> bool {
        eprint!("\n⏸  pipeline `{pipeline}`: run stage `{stage}`? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}
