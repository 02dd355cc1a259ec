//! The command line's shape: every command, flag and help text (clap derive), nothing else —
//! but the `--nats` flags, which are in `nats.rs` with the connection they make.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sluice::exit_codes;

use crate::nats::{NatsConnection, SendToAgents};
pub use crate::shared_flags::{Format, ResolveArgs, ViewArgs};
pub use crate::subcommands::*;

/// `sluice --version`: the version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SLUICE_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version = VERSION,
    about = "Run CI/CD pipelines whose stages are sandboxed WebAssembly components"
)]
#[command(after_help = exit_code_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Where compiled plugins are cached [default: $SLUICE_CACHE_DIR or ~/.cache/sluice/compiled]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every plugin afresh and store nothing
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Where registry plugins are kept by digest [default: ~/.cache/sluice/plugins]
    #[arg(long, global = true, value_name = "DIR", env = "SLUICE_PLUGIN_STORE")]
    pub plugin_store: Option<PathBuf>,
    /// Where the stage cache keeps outputs by key [default: ~/.cache/sluice/stages]
    #[arg(long, global = true, value_name = "DIR", env = "SLUICE_STAGE_CACHE")]
    pub stage_cache: Option<PathBuf>,
    /// Run every stage; neither read nor write the stage cache
    #[arg(long, global = true)]
    pub no_stage_cache: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a pipeline, stopping at the first stage that does not succeed
    Run(RunArgs),
    /// Continue a run that stopped at a manual gate or was killed, without re-running finished
    /// stages
    Resume(ResumeArgs),
    /// Run one stage alone: a plugin with inputs, config and grants from the command line, or a
    /// stage of an earlier run with exactly its inputs (`--from RUN/STAGE`)
    #[command(subcommand)]
    Stage(StageCommand),
    /// List or trim the stage cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List runs, newest first, with status, duration and trigger (a run killed mid-way shows as
    /// interrupted); `runs show RUN` for one, `runs gc` to remove old ones
    Runs(RunsArgs),
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
        /// Accept that this plugin now asks for more (new imports, another world): a stage name,
        /// a registry repository (acme/deploy) or a local plugin path as written; repeatable
        #[arg(long, value_name = "NAME")]
        accept: Vec<String>,
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
    /// Start a pipeline for the project in a folder (a Rust crate, a Node package or a Markdown
    /// site): pipeline.toml using the stages that ship with sluice, written to .sluice/stages/
    Init {
        /// The project's folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Replace an existing pipeline.toml
        #[arg(long)]
        force: bool,
    },
    /// Write a run's web page (report.html in its folder: graph, timeline, logs, artifacts) and
    /// print its path; every run writes one too
    Report {
        /// The run's id (or its folder)
        run: String,
        /// The runs folder it is in [default: the default runs folders]
        #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
        runs_dir: Option<PathBuf>,
        /// Also open it in the browser (xdg-open)
        #[arg(long)]
        open: bool,
    },
    /// Serve stage jobs from a NATS JetStream server: run the stages that `sluice run --nats`
    /// sends, until Ctrl-C or SIGTERM (a running stage is finished first)
    Agent(AgentArgs),
    /// Serve a read-only web view of the runs: the runs list, each run's page updated live, its
    /// logs streamed, and the same as JSON (`/api/runs`)
    Serve(crate::subcommands::ServeArgs),
    /// Print a shell completion script: `sluice completions bash > ~/.local/share/bash-completion/completions/sluice`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file
    pub pipeline: PathBuf,
    /// Approve this gated stage in advance (repeatable); otherwise a terminal asks, and a
    /// non-interactive run stops at the gate
    #[arg(long, value_name = "STAGE")]
    pub approve: Vec<String>,
    /// Where run folders go, outside every folder a stage is given [default:
    /// ~/.local/state/sluice/runs/<pipeline>-<hash>]
    #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Grant nothing more, record every refusal, and print per stage the smallest
    /// [stage.allow] table that would have allowed them (no stage cache)
    #[arg(long)]
    pub learn: bool,
    #[command(flatten)]
    pub flags: RunFlags,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The run id (or the path of its run folder)
    pub run: String,
    /// Approve this gated stage (repeatable)
    #[arg(long, value_name = "STAGE")]
    pub approve: Vec<String>,
    /// The runs folder holding the run [default: found among the default runs folders]
    #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// The pipeline file [default: the one the run was started with]
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    #[command(flatten)]
    pub flags: RunFlags,
}

/// The flags `run` and `resume` share (their `--approve` and `--runs-dir` say different things,
/// so each command keeps its own): stages at once, where they run, how registry plugins resolve,
/// how the run is shown.
#[derive(Args, Debug)]
pub struct RunFlags {
    /// Stages run at once, at most [default: the machine's cores; with --nats, 256]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    #[command(flatten)]
    pub agents: SendToAgents,
    #[command(flatten)]
    pub shared: SharedCacheArgs,
    #[command(flatten)]
    pub resolve: ResolveArgs,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// The stage cache shared through a NATS server (with the `--nats-*` and `--cluster-key` flags).
#[derive(Args, Debug)]
pub struct SharedCacheArgs {
    /// Share the stage cache through this NATS server (JetStream), behind the local one: take
    /// entries signed by this machine's cluster key or a --trust-cache-writer key, and write
    /// this run's, signed, e.g. nats://127.0.0.1:4222
    #[arg(long, value_name = "URL", env = "SLUICE_SHARED_CACHE")]
    pub shared_cache: Option<String>,
    /// Take entries from the shared cache but write none (for pull-request runs)
    #[arg(long, requires = "shared_cache")]
    pub shared_cache_read_only: bool,
    /// A public key whose shared-cache entries this run takes, besides this machine's own
    /// (repeatable)
    #[arg(
        long = "trust-cache-writer",
        value_name = "PUB",
        requires = "shared_cache"
    )]
    pub trust_cache_writer: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The NATS server (JetStream enabled), e.g. nats://127.0.0.1:4222
    #[arg(long, value_name = "URL", env = "SLUICE_NATS")]
    pub nats: String,
    /// What this machine offers, for stages with `runs_on` (repeatable)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Stages run at once [default: the machine's cores]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// The agent's name in records and logs [default: host name and process id]
    #[arg(long)]
    pub name: Option<String>,
    /// Job folders and fetched plugins and artifacts [default: ~/.cache/sluice/agent]
    #[arg(long, value_name = "DIR", env = "SLUICE_AGENT_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Read the NATS password from stdin (the agent restarts itself this way when given one in
    /// its environment or command line, so the password is in neither)
    #[arg(long, conflicts_with = "nats_password")]
    pub nats_password_stdin: bool,
    #[command(flatten)]
    pub connection: NatsConnection,
}

pub fn exit_code_help() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in exit_codes::TABLE {
        text.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    text
}
