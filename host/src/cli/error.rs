//! The one error type of the command line, mapped to a documented exit code in one place
//! ([`CliError::exit_code`]) and printed in one place (`main`); and [`Outcome`], what every
//! command's handler returns.

use std::fmt;

use sluice::config::diagnostic::Diagnostic;
use sluice::exit_codes;
use sluice::resolve::{ResolveError, ResolveFailure};

/// Why a command did not succeed; each kind has one exit code.
#[derive(Debug)]
pub enum CliError {
    /// The user's input is wrong: a pipeline file, an argument, a key file (exit 2).
    Input(String),
    /// A plugin or stage cannot be used as it is (exit 4).
    Stage(String),
    /// A registry plugin, a signature or a pin was refused (exit 6).
    Refused(String),
    /// sluice itself could not do its part (exit 70).
    Internal(String),
    /// Already reported in full on the terminal; only the exit code is left.
    Reported(i32),
}

/// What a command returns: an exit code (success, or a run's own code) or an error.
pub type Outcome = Result<i32, CliError>;

/// The success exit code, for commands that end well.
pub fn done() -> Outcome {
    Ok(exit_codes::SUCCESS)
}

impl CliError {
    pub fn input(message: impl fmt::Display) -> Self {
        Self::Input(message.to_string())
    }

    pub fn stage(message: impl fmt::Display) -> Self {
        Self::Stage(message.to_string())
    }

    pub fn refused(message: impl fmt::Display) -> Self {
        Self::Refused(message.to_string())
    }

    pub fn internal(message: impl fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Input(_) => exit_codes::INVALID_INPUT,
            Self::Stage(_) => exit_codes::STAGE_ERROR,
            Self::Refused(_) => exit_codes::PLUGIN_REFUSED,
            Self::Internal(_) => exit_codes::INTERNAL_ERROR,
            Self::Reported(code) => *code,
        }
    }

    /// Prints the error for a person, unless it was already shown.
    pub fn print(&self) {
        match self {
            Self::Reported(_) => {}
            Self::Input(message)
            | Self::Stage(message)
            | Self::Refused(message)
            | Self::Internal(message) => eprintln!("error: {message}"),
        }
    }
}

impl From<Diagnostic> for CliError {
    fn from(diag: Diagnostic) -> Self {
        Self::Input(diag.to_string())
    }
}

impl From<ResolveError> for CliError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::Input(diag) => diag.into(),
            ResolveError::Refused(failure) => failure.into(),
        }
    }
}

impl From<ResolveFailure> for CliError {
    fn from(failure: ResolveFailure) -> Self {
        Self::Refused(format!(
            "a plugin was refused before anything ran\n{failure}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_code() {
        assert_eq!(CliError::input("x").exit_code(), exit_codes::INVALID_INPUT);
        assert_eq!(CliError::stage("x").exit_code(), exit_codes::STAGE_ERROR);
        assert_eq!(
            CliError::refused("x").exit_code(),
            exit_codes::PLUGIN_REFUSED
        );
        assert_eq!(
            CliError::internal("x").exit_code(),
            exit_codes::INTERNAL_ERROR
        );
        assert_eq!(CliError::Reported(9).exit_code(), 9);
    }
}
