//! `sluice completions SHELL`: the shell completion script clap writes from the command line's
//! shape.

use clap::CommandFactory;

use crate::args::Cli;
use crate::error::{Outcome, done};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Outcome {
    clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
    done()
}
