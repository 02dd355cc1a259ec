//! The `sluice` command line: parses arguments, starts the async runtime, hands each command to
//! its handler (one file per command, named for it) and turns the outcome into a documented exit
//! code (one error type, [`error::CliError`], mapped in one place). All behaviour lives in the
//! library.

use std::process::ExitCode;

use clap::Parser;
use sluice::Host;
use sluice::registry::store::PluginStore;
use sluice::sandbox::cache::CompiledCache;

mod args;
mod error;
mod shared_flags;
mod subcommands;

// Helpers some commands share.
mod agent_env;
mod interrupt;
mod nats;
mod refs;
mod resolve;
mod run_dirs;
mod run_options;
mod view;

// One module per command.
mod agent;
mod cache;
mod check;
mod completions;
mod init;
mod inspect;
mod key;
mod lock;
mod plugin;
mod report;
mod resume;
mod run;
mod runs;
mod runs_flaky;
mod serve;
mod stage;
mod verify;

use args::{Cli, Command, GlobalArgs, KeyCommand, StageCommand};
use error::{CliError, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two workers: while stages run on their own threads, the scheduler blocks one of them and
    // the signal handlers keep running on the other.
    let outcome = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let outcome = runtime.block_on(dispatch(cli));
            // A stage stopped mid-way may leave a blocked file read on a pool thread; do not
            // wait for it on the way out.
            runtime.shutdown_background();
            outcome
        }
        Err(err) => Err(CliError::internal(format!(
            "cannot start the async runtime: {err}"
        ))),
    };
    let code = outcome.unwrap_or_else(|err| {
        err.print();
        err.exit_code()
    });
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

async fn dispatch(cli: Cli) -> Outcome {
    // The engine is set up only for commands that load plugins: `runs`, `report`, `init`,
    // `completions` and the sharing commands start without it.
    let host = || {
        make_host(&cli.global).map_err(|err| {
            CliError::internal(format!("cannot set up the WebAssembly engine: {err:#}"))
        })
    };
    let store = PluginStore::new(
        cli.global
            .plugin_store
            .clone()
            .unwrap_or_else(PluginStore::default_root),
    );
    match cli.command {
        Command::Agent(args) => agent::agent(&host()?, args).await,
        Command::Run(args) => run::run(&host()?, &store, &cli.global, args).await,
        Command::Resume(args) => resume::resume(&host()?, &store, &cli.global, args).await,
        Command::Cache(command) => cache::cache(&cli.global, command),
        Command::Stage(StageCommand::Run(args)) => stage::run(&host()?, &store, args).await,
        Command::Runs(args) => runs::runs(args).await,
        Command::Check {
            pipeline,
            json,
            resolve,
        } => check::check(&host()?, &store, &pipeline, json, resolve).await,
        Command::Lock {
            pipeline,
            update,
            offline,
            accept,
        } => lock::lock(&store, &pipeline, update, offline, accept).await,
        Command::Key(KeyCommand::Generate { prefix }) => key::generate(&prefix),
        Command::Verify { envelope, keys } => verify::verify(&envelope, &keys),
        Command::Plugin(command) => plugin::plugin(host, &store, command).await,
        Command::Inspect { plugin, json } => inspect::inspect(host, &store, &plugin, json).await,
        Command::Init { dir, force } => init::init(&dir, force),
        Command::Report {
            run,
            runs_dir,
            open,
        } => report::report(&run, runs_dir.as_deref(), open),
        Command::Serve(args) => serve::serve(args).await,
        Command::Completions { shell } => completions::completions(shell),
    }
}

fn make_host(global: &GlobalArgs) -> anyhow::Result<Host> {
    let root = if global.no_cache {
        None
    } else {
        global
            .cache_dir
            .clone()
            .or_else(CompiledCache::default_root)
    };
    Host::new(root.as_deref())
}
