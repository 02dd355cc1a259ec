//! The `sluice` command line: parses arguments, picks a reporter, calls the engine, and turns
//! the outcome into a documented exit code (one error type, [`error::CliError`], mapped in one
//! place). All behaviour lives in the library.

use std::process::ExitCode;

use clap::Parser;
use sluice::Host;
use sluice::exit_codes;
use sluice::registry::store::PluginStore;
use sluice::sandbox::cache::CompiledCache;
use sluice_toolchains::Toolchains;

mod agent;
mod args;
mod error;
mod run;
mod runs;
mod sharing;
mod show;
mod stage;

use args::{Cli, Command, GlobalArgs, KeyCommand, PluginCommand, RunsCommand, StageCommand};
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
        Command::Resume(args) => run::resume(&host()?, &store, &cli.global, args).await,
        Command::Cache(command) => run::stage_cache(&cli.global, command),
        Command::Stage(StageCommand::Run(args)) => stage::run(&host()?, &store, args).await,
        Command::Runs(args) => match args.command {
            None if args.nats.is_some() => {
                agent::runs_on_board(args.nats.as_deref(), &args.connection, args.json).await
            }
            None => runs::list(
                args.pipeline.as_deref(),
                args.runs_dir.as_deref(),
                args.json,
            ),
            Some(RunsCommand::Show {
                run,
                runs_dir,
                json,
            }) => runs::show(&run, runs_dir.as_deref(), json),
            Some(RunsCommand::Gc {
                pipeline,
                runs_dir,
                keep,
                older_than,
                dry_run,
            }) => runs::gc(
                pipeline.as_deref(),
                runs_dir.as_deref(),
                runs::Keep {
                    newest: keep,
                    younger_than: older_than.map(Into::into),
                },
                dry_run,
            ),
        },
        Command::Check {
            pipeline,
            json,
            resolve,
        } => show::check(&host()?, &store, &pipeline, json, resolve).await,
        Command::Lock {
            pipeline,
            update,
            offline,
        } => sharing::lock(&store, &pipeline, update, offline).await,
        Command::Key(KeyCommand::Generate { prefix }) => sharing::key_generate(&prefix),
        Command::Verify { envelope, keys } => sharing::verify_envelope(&envelope, &keys),
        Command::Plugin(PluginCommand::Push {
            file,
            reference,
            sign,
            force,
        }) => sharing::push(&host()?, &file, &reference, sign.as_deref(), force).await,
        Command::Plugin(PluginCommand::Pull {
            reference,
            output,
            keys,
        }) => sharing::pull(&store, &reference, output.as_deref(), &keys).await,
        Command::Plugin(PluginCommand::Sign { reference, key }) => {
            sharing::sign(&reference, &key).await
        }
        Command::Plugin(PluginCommand::Verify { reference, keys }) => {
            sharing::verify(&reference, &keys).await
        }
        Command::Inspect { plugin, json } => {
            let file = sharing::local_copy(&store, &plugin).await?;
            show::inspect(&host()?, &file, json).await
        }
        Command::Plugin(PluginCommand::New { name, lang, dir }) => {
            show::plugin_new(&name, lang, &dir)
        }
        Command::Plugin(PluginCommand::Build { dir, toolchains }) => {
            let toolchains = match toolchains {
                Some(dir) => dir,
                None => {
                    Toolchains::default_dir().map_err(|err| CliError::input(format!("{err:#}")))?
                }
            };
            let component = sluice::scaffold::build_plugin(&dir, &Toolchains::new(toolchains))
                .map_err(|err| CliError::stage(format!("{err:#}")))?;
            show::inspect(&host()?, &component, false).await
        }
        Command::Init { dir, force } => show::init(&dir, force),
        Command::Report {
            run,
            runs_dir,
            open,
        } => runs::report(&run, runs_dir.as_deref(), open),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
            done()
        }
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

/// The success exit code, for commands that end well.
fn done() -> Outcome {
    Ok(exit_codes::SUCCESS)
}
