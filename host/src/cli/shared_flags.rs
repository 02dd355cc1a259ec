//! Flag groups more than one command shares: how registry plugins resolve (`ResolveArgs`) and
//! how a run is shown (`ViewArgs`, `Format`). Both `args.rs` and `subcommands.rs` use them, so
//! they live below both.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How `oci://` plugins are resolved before a run.
#[derive(Args, Debug, Clone, Copy)]
pub struct ResolveArgs {
    /// Use only the local plugin store; say what is missing instead of fetching it
    #[arg(long)]
    pub offline: bool,
    /// Refuse to run if pipeline.lock would have to change (for CI)
    #[arg(long)]
    pub locked: bool,
}

#[derive(Args, Debug)]
pub struct ViewArgs {
    /// Also write the JSON run report here (it is always written to the run folder)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also write the run as JUnit XML here: a test case per stage, plus the test suites stages
    /// wrote as JUnit artifacts
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How progress is shown
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Show only stage results
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also show debug logs, plugin loading and every artifact
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Live view on a terminal, plain lines otherwise
    Auto,
    /// Live view with spinners
    Tty,
    /// Timestamped lines, for CI logs
    Plain,
    /// One JSON event per line on stdout
    Json,
    /// GitHub Actions: a collapsed group per stage, an error annotation per failed stage
    Github,
    /// GitLab CI: a collapsible section per stage
    Gitlab,
}
