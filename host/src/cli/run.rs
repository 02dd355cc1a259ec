//! `sluice run`: loads the pipeline, resolves its registry plugins and runs it with the reporter
//! the user asked for; the run's own exit code is the command's.

use sluice::Host;
use sluice::config::pipeline;
use sluice::registry::store::PluginStore;
use sluice::resolve::resolve_pipeline;

use crate::args::{GlobalArgs, RunArgs};
use crate::error::{CliError, Outcome};
use crate::resolve::resolve_options;
use crate::run_options::run_options;
use crate::view::report_run;

/// `sluice run PIPELINE`: every stage, stopping at the first that does not succeed.
pub async fn run(host: &Host, store: &PluginStore, global: &GlobalArgs, args: RunArgs) -> Outcome {
    let pipeline = pipeline::load(&args.pipeline)?;
    let resolve = resolve_options(store, args.flags.resolve);
    let mut options = run_options(store, global, &args.flags, args.approve, args.runs_dir).await?;
    if args.learn {
        if options.remote.is_some() {
            return Err(CliError::input(
                "--learn runs every stage on this machine, where its refusals are seen\n  = help: drop --nats (or SLUICE_NATS) for the learning run".to_string(),
            ));
        }
        // A stage served from a cache would not run, and would teach nothing.
        options.stage_cache = None;
        options.shared_cache = None;
        host.learn_grants();
    }
    report_run(&args.flags.view, |sink| async move {
        let (resolved, _) = resolve_pipeline(pipeline, &resolve, &sink).await?;
        sluice::run::run(host, &resolved, &options, &sink).await
    })
    .await
}
