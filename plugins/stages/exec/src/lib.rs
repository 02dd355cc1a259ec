//! Build/test stage: runs one allow-listed host program (`allow.exec`) — `cargo build`, `make`,
//! a test runner — fails when it exits non-zero, and publishes its log and the files it made.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::{Command, Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    /// A guest path inside /workspace or a granted dir; default /workspace (or a fresh empty
    /// folder). Programs never run in /out: give them `${out}` paths.
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Files the program wrote under /out (e.g. via `${out}` in args) to publish.
    #[serde(default)]
    outputs: Vec<String>,
    /// Files to publish under another name: `{ from = "/workspace/target/release/app", to = "app" }`
    /// (moved when under /out, hard-linked or streamed otherwise).
    #[serde(default)]
    collect: Vec<Collect>,
    /// Scratch paths under /out to delete once outputs are collected (e.g. a build's target dir).
    #[serde(default)]
    remove: Vec<String>,
    /// Publish the program's stdout and stderr under this name (default "<program>.log").
    #[serde(default)]
    log_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Collect {
    from: String,
    to: String,
}

struct Exec;

impl Stage for Exec {
    const PHASE: Phase = Phase::Build;
    const DESCRIPTION: &'static str =
        "Runs an allow-listed host program and publishes its log and the files it produced";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let mut command = Command::new(&config.program).args(config.args.iter().cloned());
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        for (key, value) in &config.env {
            command = command.env(key, value);
        }
        if let Some(ms) = config.timeout_ms {
            command = command.timeout_ms(ms);
        }
        let done = command.run()?;
        let log_name = config.log_name.clone().unwrap_or_else(|| {
            format!(
                "{}.log",
                config.program.rsplit('/').next().unwrap_or("program")
            )
        });
        let mut log = done.stdout.clone();
        log.extend_from_slice(&done.stderr);
        ctx.write_output(&log_name, "text/plain", &log)?;
        if done.timed_out {
            fail!("`{}` timed out", config.program);
        }
        if !done.success() {
            let stderr = done.stderr_text();
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            fail!(
                "`{} {}` exited with {}{}",
                config.program,
                config.args.join(" "),
                done.exit_code
                    .map_or("a signal".to_string(), |c| c.to_string()),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", tail.join(" / "))
                }
            );
        }
        for name in &config.outputs {
            if !ctx.output_path(name).is_file() {
                fail!(
                    "`{}` succeeded but did not write output {name}",
                    config.program
                );
            }
            ctx.declare_output(name, "application/octet-stream");
        }
        for item in &config.collect {
            // Moved or hard-linked, never read through the stage's memory.
            ctx.adopt_output(
                std::path::Path::new(&item.from),
                &item.to,
                "application/octet-stream",
            )
            .map_err(|err| Failure::new(format!("cannot collect {}: {err}", item.from)))?;
            info!("collected {} as {}", item.from, item.to);
        }
        for scratch in &config.remove {
            let path = ctx.output_path(scratch);
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        ctx.set_summary(format!(
            "`{}` exited 0; {} outputs",
            config.program,
            config.outputs.len() + config.collect.len() + 1
        ));
        Ok(())
    }
}

sluice_sdk::stage!(Exec);
