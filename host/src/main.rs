//! The `sluice` command line: parses arguments, picks a reporter, calls the engine, and turns
//! the outcome into a documented exit code. All behaviour lives in the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice::events::EventSink;
use sluice::plugin_store::PluginStore;
use sluice::reporters::{
    self, JsonLinesReporter, PlainReporter, Reporter, TerminalReporter, Verbosity,
};
use sluice::{Host, cache::CompiledCache, exit_codes, manifest, runner};

mod sharing_commands;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Run CI/CD pipelines whose stages are sandboxed WebAssembly components"
)]
#[command(after_help = exit_code_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Args, Debug)]
struct GlobalArgs {
    /// Where compiled plugins are cached [default: $SLUICE_CACHE_DIR or ~/.cache/sluice/compiled]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every plugin afresh and store nothing
    #[arg(long, global = true)]
    no_cache: bool,
    /// Where registry plugins are kept by digest [default: ~/.cache/sluice/plugins]
    #[arg(long, global = true, value_name = "DIR", env = "SLUICE_PLUGIN_STORE")]
    plugin_store: Option<PathBuf>,
}

/// How `oci://` plugins are resolved before a run.
#[derive(Args, Debug, Clone, Copy)]
struct ResolveArgs {
    /// Use only the local plugin store; say what is missing instead of fetching it
    #[arg(long)]
    offline: bool,
    /// Refuse to run if pipeline.lock would have to change (for CI)
    #[arg(long)]
    locked: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline, stopping at the first stage that does not succeed
    Run(RunArgs),
    /// Continue a run that stopped at a manual gate, without re-running finished stages
    Resume(ResumeArgs),
    /// Validate a pipeline file and every plugin it names; runs nothing
    Check {
        /// The pipeline file
        pipeline: PathBuf,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        resolve: ResolveArgs,
    },
    /// Make, build, publish, fetch, sign and verify stage plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Resolve every registry plugin of a pipeline and write pipeline.lock; runs nothing
    Lock {
        /// The pipeline file
        pipeline: PathBuf,
        /// Re-resolve every tag instead of keeping the lock's pins
        #[arg(long)]
        update: bool,
        #[arg(long)]
        offline: bool,
    },
    /// Make ed25519 signing keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check a signed statement (e.g. a run's provenance.intoto.dsse.json) against public keys
    Verify {
        /// The DSSE envelope file
        envelope: PathBuf,
        /// A trusted public key file (repeatable)
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Show what a plugin component is, says about itself, imports and exports
    Inspect {
        /// The .wasm component, or an oci:// reference (fetched into the plugin store first)
        plugin: PathBuf,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Scaffold a new plugin that builds with one command and passes `sluice check`
    New {
        /// The plugin's name (lower-case letters, digits, `-`)
        name: String,
        #[arg(long, value_enum)]
        lang: LangArg,
        /// The folder to create it in
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin made by `sluice plugin new` (runs its build.sh) and inspect the result
    Build {
        /// The plugin's folder
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Publish a component to an OCI registry as a Wasm artifact
    Push {
        /// The .wasm component
        file: PathBuf,
        /// Where to publish it, e.g. oci://127.0.0.1:5000/acme/checkout:1.2.0
        reference: String,
        /// Also sign it with this private key
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Move the tag even if it already names a different component
        #[arg(long)]
        force: bool,
    },
    /// Fetch a plugin into the local plugin store (and optionally copy it out)
    Pull {
        reference: String,
        /// Also write the component here
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Require a signature by this public key (repeatable)
        #[arg(long = "key", value_name = "PUB")]
        keys: Vec<PathBuf>,
    },
    /// Sign a published plugin; the signature is stored in the registry next to it
    Sign {
        reference: String,
        /// The private key (from `sluice key generate`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Check that a published plugin is signed by one of the given keys
    Verify {
        reference: String,
        /// A trusted public key file (repeatable)
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Write PREFIX.key (private, PKCS#8 PEM, mode 0600) and PREFIX.pub (public, SPKI PEM)
    Generate {
        /// The path prefix, e.g. keys/team-a
        prefix: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LangArg {
    Rust,
    Python,
    Js,
    C,
}

#[derive(Args, Debug)]
struct ResumeArgs {
    /// The run id (or the path of its run folder)
    run: String,
    /// Approve this gated stage (repeatable)
    #[arg(long, value_name = "STAGE")]
    approve: Vec<String>,
    /// The runs folder holding the run [default: ./.sluice/runs]
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    /// The pipeline file [default: the one the run was started with]
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    #[command(flatten)]
    resolve: ResolveArgs,
    #[command(flatten)]
    view: ViewArgs,
}

#[derive(Args, Debug)]
struct ViewArgs {
    /// Also write the JSON run report here (it is always written to the run folder)
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// How progress is shown
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Show only stage results
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
    /// Also show debug logs, plugin loading and every artifact
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The pipeline file
    pipeline: PathBuf,
    /// Approve this gated stage in advance (repeatable); otherwise a terminal asks, and a
    /// non-interactive run stops at the gate
    #[arg(long, value_name = "STAGE")]
    approve: Vec<String>,
    /// Where run folders go [default: <pipeline dir>/.sluice/runs]
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    #[command(flatten)]
    resolve: ResolveArgs,
    #[command(flatten)]
    view: ViewArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Live view on a terminal, plain lines otherwise
    Auto,
    /// Live view with spinners
    Tty,
    /// Timestamped lines, for CI logs
    Plain,
    /// One JSON event per line on stdout
    Json,
}

fn exit_code_help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in exit_codes::TABLE {
        text.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(dispatch(cli));
            // A stage stopped mid-way may leave a blocked file read on a pool thread; do not
            // wait for it on the way out.
            runtime.shutdown_background();
            code
        }
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            exit_codes::INTERNAL_ERROR
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

async fn dispatch(cli: Cli) -> i32 {
    let host = match make_host(&cli.global) {
        Ok(host) => host,
        Err(err) => {
            eprintln!("error: cannot set up the WebAssembly engine: {err:#}");
            return exit_codes::INTERNAL_ERROR;
        }
    };
    let store = sluice::plugin_store::PluginStore::new(
        cli.global
            .plugin_store
            .clone()
            .unwrap_or_else(sluice::plugin_store::PluginStore::default_root),
    );
    match cli.command {
        Command::Run(args) => run(&host, &store, args).await,
        Command::Resume(args) => resume(&host, &store, args).await,
        Command::Check {
            pipeline,
            json,
            resolve,
        } => check(&host, &store, &pipeline, json, resolve).await,
        Command::Lock {
            pipeline,
            update,
            offline,
        } => sharing_commands::lock(&store, &pipeline, update, offline).await,
        Command::Key(KeyCommand::Generate { prefix }) => sharing_commands::key_generate(&prefix),
        Command::Verify { envelope, keys } => sharing_commands::verify_envelope(&envelope, &keys),
        Command::Plugin(PluginCommand::Push {
            file,
            reference,
            sign,
            force,
        }) => sharing_commands::push(&host, &file, &reference, sign.as_deref(), force).await,
        Command::Plugin(PluginCommand::Pull {
            reference,
            output,
            keys,
        }) => sharing_commands::pull(&store, &reference, output.as_deref(), &keys).await,
        Command::Plugin(PluginCommand::Sign { reference, key }) => {
            sharing_commands::sign(&reference, &key).await
        }
        Command::Plugin(PluginCommand::Verify { reference, keys }) => {
            sharing_commands::verify(&reference, &keys).await
        }
        Command::Inspect { plugin, json } => {
            match sharing_commands::local_copy(&store, &plugin).await {
                Ok(file) => inspect(&host, &file, json).await,
                Err(code) => code,
            }
        }
        Command::Plugin(PluginCommand::New { name, lang, dir }) => plugin_new(&name, lang, &dir),
        Command::Plugin(PluginCommand::Build { dir }) => match sluice::scaffold::build_plugin(&dir)
        {
            Ok(component) => inspect(&host, &component, false).await,
            Err(err) => {
                eprintln!("error: {err:#}");
                exit_codes::STAGE_ERROR
            }
        },
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

fn load_pipeline(path: &Path) -> Result<manifest::Pipeline, i32> {
    manifest::load(path).map_err(|diag| {
        eprintln!("error: {diag}");
        exit_codes::INVALID_INPUT
    })
}

async fn run(host: &Host, store: &PluginStore, args: RunArgs) -> i32 {
    let mut pipeline = match load_pipeline(&args.pipeline) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let resolve = sharing_commands::resolve_options(store, args.resolve);
    let options = runner::RunOptions {
        runs_dir: args.runs_dir,
        approve: args.approve,
        approver: interactive_approver(),
        interrupt: Some(interrupt_on_ctrl_c()),
    };
    report_run(&args.view, |sink| async move {
        sluice::resolve::resolve_pipeline(&mut pipeline, &resolve, &sink).await?;
        runner::run(host, &pipeline, &options, &sink).await
    })
    .await
}

async fn resume(host: &Host, store: &PluginStore, args: ResumeArgs) -> i32 {
    let run_dir = match find_run(&args) {
        Ok(dir) => dir,
        Err(message) => {
            eprintln!("error: {message}");
            return exit_codes::INVALID_INPUT;
        }
    };
    let report = match sluice::report::RunReport::read(&run_dir.join("report.json")) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err:#}");
            return exit_codes::INVALID_INPUT;
        }
    };
    if report.status != sluice::report::RunStatus::AwaitingApproval {
        eprintln!(
            "error: run {} is not waiting for approval (it {}); start a new run instead",
            report.run_id,
            report.status.label()
        );
        return exit_codes::INVALID_INPUT;
    }
    let pipeline_file = args
        .pipeline
        .clone()
        .unwrap_or_else(|| PathBuf::from(&report.pipeline_file));
    let mut pipeline = match load_pipeline(&pipeline_file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let resolve = sharing_commands::resolve_options(store, args.resolve);
    let options = runner::RunOptions {
        runs_dir: None,
        approve: args.approve,
        approver: interactive_approver(),
        interrupt: Some(interrupt_on_ctrl_c()),
    };
    report_run(&args.view, |sink| async move {
        sluice::resolve::resolve_pipeline(&mut pipeline, &resolve, &sink).await?;
        runner::resume(host, &pipeline, &run_dir, &options, &sink).await
    })
    .await
}

/// Ctrl-C stops the running stage; the run is recorded and the process exits normally.
fn interrupt_on_ctrl_c() -> runner::Interrupt {
    let interrupt = runner::Interrupt::new();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: stopping the running stage and recording the run (Ctrl-C again to quit now)"
            );
            trigger.trigger();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    interrupt
}

/// The run folder `args.run` names: a path, or an id under the runs folder.
fn find_run(args: &ResumeArgs) -> Result<PathBuf, String> {
    let direct = PathBuf::from(&args.run);
    if direct.join("report.json").is_file() {
        return Ok(direct);
    }
    let runs = args
        .runs_dir
        .clone()
        .or_else(|| {
            args.pipeline
                .as_ref()
                .and_then(|p| p.parent().map(|d| d.join(".sluice/runs")))
        })
        .unwrap_or_else(|| PathBuf::from(".sluice/runs"));
    let dir = runs.join(&args.run);
    if dir.join("report.json").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "no run `{}` in {}\n  = help: pass the run folder's path, or --runs-dir DIR (runs live in <pipeline dir>/.sluice/runs)",
            args.run,
            runs.display()
        ))
    }
}

/// Asks on the terminal when both stdin and stderr are one; otherwise gates wait.
fn interactive_approver() -> Option<std::sync::Arc<dyn runner::Approver>> {
    (std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| std::sync::Arc::new(TerminalApprover) as std::sync::Arc<dyn runner::Approver>)
}

struct TerminalApprover;

impl runner::Approver for TerminalApprover {
    fn approve(&self, pipeline: &str, stage: &str) -> bool {
        eprint!("\n⏸  pipeline `{pipeline}`: run stage `{stage}`? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}

/// Runs `work` with the reporter `view` asks for, writes `--report`, returns the exit code.
async fn report_run<F, Fut>(view: &ViewArgs, work: F) -> i32
where
    F: FnOnce(EventSink) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<runner::RunOutcome>>,
{
    let verbosity = if view.quiet {
        Verbosity::Quiet
    } else if view.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let reporter: Box<dyn Reporter> = match view.format {
        Format::Json => Box::new(JsonLinesReporter),
        Format::Tty => Box::new(TerminalReporter::new(verbosity)),
        Format::Plain => Box::new(PlainReporter::new(verbosity)),
        Format::Auto if std::io::stderr().is_terminal() => {
            Box::new(TerminalReporter::new(verbosity))
        }
        Format::Auto => Box::new(PlainReporter::new(verbosity)),
    };
    let (sink, reporter_thread) = reporters::spawn(reporter);
    let outcome = work(sink).await;
    let _ = reporter_thread.join();
    match outcome {
        Ok(outcome) => {
            if let Some(path) = &view.report
                && let Err(err) = outcome.report.write_to(path)
            {
                eprintln!(
                    "error: cannot write the report to {}: {err:#}",
                    path.display()
                );
                return exit_codes::INTERNAL_ERROR;
            }
            outcome.report.exit_code
        }
        Err(err) => match err.downcast_ref::<sluice::resolve::ResolveFailure>() {
            Some(failure) => sharing_commands::report_refusal(failure),
            None => {
                eprintln!("error: {err:#}");
                exit_codes::INTERNAL_ERROR
            }
        },
    }
}

async fn check(
    host: &Host,
    store: &PluginStore,
    path: &Path,
    json: bool,
    resolve: ResolveArgs,
) -> i32 {
    let mut pipeline = match load_pipeline(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = sharing_commands::resolve(&mut pipeline, store, resolve).await {
        return code;
    }
    let report = sluice::check::check(host, &pipeline).await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("error: {err}"),
        }
    } else {
        println!(
            "pipeline `{}`: {} stages",
            report.pipeline,
            report.stages.len()
        );
        for stage in &report.stages {
            match &stage.problem {
                None => println!(
                    "  ✔ {:<12} {} {} ({}) — {}",
                    stage.stage,
                    stage.name.as_deref().unwrap_or("?"),
                    stage.version.as_deref().unwrap_or("?"),
                    stage.phase.as_deref().unwrap_or("?"),
                    stage.description.as_deref().unwrap_or(""),
                ),
                Some(problem) => {
                    println!(
                        "  ✘ {:<12} {}",
                        stage.stage,
                        problem.replace('\n', "\n                 ")
                    )
                }
            }
            if let Some(digest) = &stage.manifest_digest {
                let signed = if stage.signed_by.is_empty() {
                    String::new()
                } else {
                    format!(", signed by {}", stage.signed_by.join(", "))
                };
                println!("      pinned  {} → {digest}{signed}", stage.reference);
            }
            if verbose_check(&stage.grants, &stage.imports) {
                for grant in &stage.grants {
                    println!("      grants  {grant}");
                }
                for import in stage.imports.iter().filter(|i| {
                    !i.starts_with("wasi:cli/")
                        && !i.starts_with("wasi:io/")
                        && !i.starts_with("wasi:clocks/")
                        && !i.starts_with("wasi:random/")
                }) {
                    println!("      imports {import}");
                }
            }
        }
    }
    if report.ok() {
        exit_codes::SUCCESS
    } else {
        if !json {
            eprintln!("error: some stages cannot run; fix the problems above");
        }
        exit_codes::STAGE_ERROR
    }
}

fn plugin_new(name: &str, lang: LangArg, dir: &Path) -> i32 {
    use sluice::scaffold::Lang;
    let lang = match lang {
        LangArg::Rust => Lang::Rust,
        LangArg::Python => Lang::Python,
        LangArg::Js => Lang::Js,
        LangArg::C => Lang::C,
    };
    match sluice::scaffold::new_plugin(name, lang, dir) {
        Ok(created) => {
            println!("created {}", created.display());
            println!("build it:   sluice plugin build {}", created.display());
            println!(
                "use it:     [[stage]] name = \"{name}\" plugin = \"{}/{name}.wasm\"",
                created.display()
            );
            exit_codes::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_codes::INVALID_INPUT
        }
    }
}

/// Grants and the imports that matter (files, network, programs, secrets) are worth a line
/// each; WASI basics every component imports are not.
fn verbose_check(grants: &[String], imports: &[String]) -> bool {
    !grants.is_empty() || !imports.is_empty()
}

async fn inspect(host: &Host, path: &Path, json: bool) -> i32 {
    let inspection = match sluice::inspect::inspect(host, path).await {
        Ok(inspection) => inspection,
        Err(err) => {
            eprintln!("error: {err}");
            return exit_codes::STAGE_ERROR;
        }
    };
    if json {
        match serde_json::to_string_pretty(&inspection) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("error: {err}"),
        }
    } else {
        println!("{}", inspection.file);
        println!("  size     {} bytes", inspection.size);
        println!("  sha256   {}", inspection.sha256);
        match &inspection.stage {
            Some(info) => {
                println!(
                    "  stage    {} {} (phase {})",
                    info.name, info.version, info.phase
                );
                println!("           {}", info.description);
            }
            None => println!("  stage    no"),
        }
        println!("  imports");
        for name in &inspection.imports {
            println!("    {name}");
        }
        println!("  exports");
        for name in &inspection.exports {
            println!("    {name}");
        }
    }
    match inspection.problem {
        None => exit_codes::SUCCESS,
        Some(problem) => {
            eprintln!("error: {problem}");
            exit_codes::STAGE_ERROR
        }
    }
}
