//! The command line's subcommand groups (`runs`, `plugin`, `key`, `stage`, `cache`):
//! their commands, flags and help text, kept apart from `args.rs` so neither file grows past
//! what one can read at once.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::nats::NatsConnection;
use crate::shared_flags::{ResolveArgs, ViewArgs};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Only this pipeline's runs [default: every pipeline's default runs folder]
    pub pipeline: Option<PathBuf>,
    /// The runs folder to list
    #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Print the list as JSON
    #[arg(long)]
    pub json: bool,
    /// List the distributed runs of every coordinator from this NATS server's run board
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    #[command(flatten)]
    pub connection: NatsConnection,
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// One run: pipeline, status, trigger, times, folder, and each stage's result
    Show {
        /// The run's id (or its folder)
        run: String,
        /// The runs folder it is in [default: the default runs folders]
        #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
        runs_dir: Option<PathBuf>,
        /// Print the run's record (report.json) instead
        #[arg(long)]
        json: bool,
    },
    /// Remove old runs: keep the newest N of each pipeline and/or remove those older than a time
    /// (a run going on now is never removed)
    Gc {
        /// Only this pipeline's runs [default: every pipeline's default runs folder]
        pipeline: Option<PathBuf>,
        /// The runs folder to clean
        #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
        runs_dir: Option<PathBuf>,
        /// Keep the newest N runs of each runs folder
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Remove runs that started longer ago than this (`30d`, `12h`, `2w`)
        #[arg(long, value_name = "AGE")]
        older_than: Option<humantime::Duration>,
        /// Say what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Tests that both passed and failed under the same stage key (identical plugin, config,
    /// grants, inputs and workspace) across the run history: proven flaky
    Flaky {
        /// Only this pipeline's runs [default: every pipeline's default runs folder]
        pipeline: Option<PathBuf>,
        /// The runs folder to read
        #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
        runs_dir: Option<PathBuf>,
        /// Print the list as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
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
    /// Build a plugin made by `sluice plugin new` (runs its build.sh) and inspect the result;
    /// installs what its language needs on first use
    Build {
        /// The plugin's folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the Python, JavaScript and C toolchains are (installed there if missing)
        /// [default: ~/.cache/sluice/toolchains]
        #[arg(long, value_name = "DIR", env = "SLUICE_TOOLCHAINS")]
        toolchains: Option<PathBuf>,
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
pub enum KeyCommand {
    /// Write PREFIX.key (private, PKCS#8 PEM, mode 0600) and PREFIX.pub (public, SPKI PEM)
    Generate {
        /// The path prefix, e.g. keys/team-a
        prefix: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LangArg {
    Rust,
    Python,
    Js,
    C,
}

#[derive(Subcommand, Debug)]
pub enum StageCommand {
    /// Run one stage in the sandbox, outside a pipeline run
    Run(StageRunArgs),
}

#[derive(Args, Debug)]
pub struct StageRunArgs {
    /// The plugin (.wasm component); not needed with --from
    pub plugin: Option<PathBuf>,
    /// Replay stage STAGE of run RUN (an id or a run folder): its pipeline entry, its plugin and
    /// the inputs it had
    #[arg(long, value_name = "RUN/STAGE", conflicts_with_all = ["config", "inputs", "allow"])]
    pub from: Option<String>,
    /// With --from: the pipeline the run was made with (its digest must be the recorded one);
    /// the run folder's own record never says which file grants what [default: pipeline.toml]
    #[arg(long, value_name = "FILE", requires = "from")]
    pub pipeline: Option<PathBuf>,
    /// A config value (repeatable); VALUE is read as TOML when it is one, else as text
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// A file handed to the stage as /in/STAGE/NAME (STAGE defaults to `input`; repeatable)
    #[arg(long = "input", value_name = "[STAGE/]NAME=FILE")]
    pub inputs: Vec<String>,
    /// A grant (repeatable): workspace=read, exec=cargo, net=127.0.0.1:8080, env=NAME,
    /// exec_env=NAME, secrets=NAME
    #[arg(long = "allow", value_name = "KEY=VALUE")]
    pub allow: Vec<String>,
    /// The workspace a `workspace=` grant mounts [default: the current folder]
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The stage's timeout, e.g. 5m
    #[arg(long)]
    pub timeout: Option<String>,
    /// Copy the stage's outputs here
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the run folder goes (and, with --from, where the run is looked for)
    #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Grant nothing more, record every refusal, and print the smallest [stage.allow] table
    /// that would have allowed them
    #[arg(long)]
    pub learn: bool,
    #[command(flatten)]
    pub resolve: ResolveArgs,
    #[command(flatten)]
    pub view: ViewArgs,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Every stage-cache entry, newest first, with its stage and size; then every cache volume
    Ls,
    /// Remove the oldest entries until the cache fits in SIZE, and the least recently used cache
    /// volumes no stage holds until they fit in SIZE too
    Gc {
        /// The most the cache may keep, e.g. `2GiB`
        #[arg(long, value_name = "SIZE")]
        max_size: bytesize::ByteSize,
    },
    /// Why STAGE missed the stage cache: which parts of its key (plugin, a config key, an
    /// input, a grant, an env value, a workspace path, the git state) moved — in run RUN, or
    /// between its two newest entries
    Why {
        /// The stage's name
        stage: String,
        /// A run (id or folder) whose record says why the stage missed
        run: Option<String>,
        /// Where to look for RUN [default: the runs folders sluice knows]
        #[arg(long, value_name = "DIR", env = "SLUICE_RUNS_DIR")]
        runs_dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A runs folder to show (repeat for more) [default: every pipeline's default runs folder]
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Vec<PathBuf>,
    /// The address to listen on; anything but loopback needs --token-file
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
    pub listen: std::net::SocketAddr,
    /// A file holding the token every request must carry (`Authorization: Bearer TOKEN`, or
    /// `?token=TOKEN` in the address)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}
