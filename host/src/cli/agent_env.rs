//! An agent's NATS password out of its own process: a password given in the environment
//! (`SLUICE_NATS_PASSWORD`) or on the command line is readable by every program the agent's
//! stages start, through `/proc/$PPID/environ` and `cmdline`. So the agent replaces itself (same
//! process, `exec`) with a copy of itself whose environment and arguments do not hold it, handing
//! it the password on stdin (`--nats-password-stdin`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;

use crate::error::CliError;

const FLAG: &str = "--nats-password";
const ENV: &str = "SLUICE_NATS_PASSWORD";

/// `args` without `--nats-password VALUE` / `--nats-password=VALUE`.
fn without_password(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg == FLAG {
            skip_value = true;
        } else if !arg.as_encoded_bytes().starts_with(b"--nats-password=") {
            kept.push(arg);
        }
    }
    kept
}

/// Replaces this process with one that reads `password` from stdin: only returns on failure.
pub fn restart_without(password: &str) -> CliError {
    let fail = |what: &str, err: std::io::Error| {
        CliError::internal(format!(
            "cannot restart the agent without its password in its environment ({what}: {err})"
        ))
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return fail("no path to sluice", err),
    };
    let (reader, mut writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(err) => return fail("no pipe", err),
    };
    // A password is far below a pipe's buffer: written whole before the new program reads it.
    if let Err(err) = writer.write_all(password.as_bytes()) {
        return fail("writing the pipe", err);
    }
    drop(writer);
    let mut args = without_password(std::env::args_os().skip(1));
    args.push("--nats-password-stdin".into());
    let err = std::process::Command::new(exe)
        .args(args)
        .env_remove(ENV)
        .stdin(reader)
        .exec();
    fail("exec", err)
}

/// The password on stdin, without a final newline.
pub fn password_from_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|err| {
            CliError::input(format!("cannot read the NATS password from stdin: {err}"))
        })?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_flag_and_its_value_are_left_out() {
        let args = [
            "agent",
            "--nats",
            "nats://x",
            "--nats-password",
            "hunter2",
            "--name",
            "a",
            "--nats-password=other",
            "--label",
            "linux",
        ]
        .map(OsString::from);
        let kept: Vec<String> = without_password(args)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            kept,
            [
                "agent", "--nats", "nats://x", "--name", "a", "--label", "linux"
            ]
        );
    }
}
