//! Running allow-listed host programs (`allow.exec`) through the `process` import.

use crate::Failure;
use crate::bindings::sluice::pipeline::process;

/// A host program to run. Build it, then call [`Command::run`].
#[derive(Debug, Clone)]
pub struct Command {
    inner: process::Command,
}

/// How a program ended, with its captured output.
#[derive(Debug, Clone)]
pub struct Completed {
    /// None when it was killed (signal or timeout).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Completed {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl Command {
    /// `program` must be listed in the stage's `allow.exec`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            inner: process::Command {
                program: program.into(),
                args: Vec::new(),
                cwd: None,
                env: Vec::new(),
                timeout_ms: None,
            },
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.inner.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.inner.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// A guest path inside `/workspace` or a granted dir. Default: `/workspace`, or a fresh empty
    /// folder when the stage has none. Never `/out`, `/in` or a cache volume (plugins fill
    /// them): pass the program `${out}`/`${in}` paths, or let it `cd "$SLUICE_OUT"`.
    pub fn cwd(mut self, guest_path: impl Into<String>) -> Self {
        self.inner.cwd = Some(guest_path.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Runs the program; Err when it cannot be started (for example, not granted).
    pub fn run(&self) -> Result<Completed, Failure> {
        let done = process::run(&self.inner)
            .map_err(|err| Failure::new(format!("cannot run `{}`: {err}", self.inner.program)))?;
        Ok(Completed {
            exit_code: done.exit_code,
            timed_out: done.timed_out,
            stdout: done.stdout,
            stderr: done.stderr,
        })
    }
}

/// The value of a secret granted by `allow.secrets`.
pub fn secret(name: &str) -> Result<String, Failure> {
    crate::bindings::sluice::pipeline::secrets::get(name)
        .map_err(|err| Failure::new(format!("secret `{name}`: {err}")))
}
