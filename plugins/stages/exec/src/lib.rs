//! Build/test stage: runs one allow-listed host program (`allow.exec`) — `cargo build`, `make`,
//! a test runner — after the commands `before` lists (`python3 -m venv .venv`), fails when one
//! exits non-zero, and publishes the log and the files the program made (a folder's whole
//! content when an output ends in `/`, like `dist/` for a wheel whose name holds a version).

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::{Command, Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    /// Commands run first, in order, each a program and its arguments (`["python3", "-m",
    /// "venv", ".venv"]`), in the same folder with the same environment; the first that fails
    /// fails the stage.
    #[serde(default)]
    before: Vec<Vec<String>>,
    /// A guest path inside /workspace or a granted dir; default /workspace (or a fresh empty
    /// folder). Programs never run in /out: give them `${out}` paths.
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Files the program wrote under /out (e.g. via `${out}` in args) to publish; a name ending
    /// in `/` publishes every file in that folder (at least one).
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
        let log_name = config.log_name.clone().unwrap_or_else(|| {
            format!(
                "{}.log",
                config.program.rsplit('/').next().unwrap_or("program")
            )
        });
        let mut log = Vec::new();
        let main = std::iter::once(config.program.clone())
            .chain(config.args.iter().cloned())
            .collect::<Vec<_>>();
        let mut declared = 0;
        for words in config.before.iter().chain(std::iter::once(&main)) {
            let ran = run_one(&config, words, &mut log);
            if let Err(failure) = ran {
                // The log of what ran so far is kept either way.
                ctx.write_output(&log_name, "text/plain", &log)?;
                return Err(failure);
            }
        }
        ctx.write_output(&log_name, "text/plain", &log)?;
        for name in &config.outputs {
            if let Some(folder) = name.strip_suffix('/') {
                let files = files_under(&ctx.output_path(folder), folder);
                if files.is_empty() {
                    fail!(
                        "`{}` succeeded but wrote no file in output folder {name}",
                        config.program
                    );
                }
                for file in files {
                    ctx.declare_output(&file, "application/octet-stream");
                    declared += 1;
                }
                continue;
            }
            if !ctx.output_path(name).is_file() {
                fail!(
                    "`{}` succeeded but did not write output {name}",
                    config.program
                );
            }
            ctx.declare_output(name, "application/octet-stream");
            declared += 1;
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
            declared + config.collect.len() + 1
        ));
        Ok(())
    }
}

/// Runs one command (`words`: program and arguments) as the config says, its output appended
/// to `log`; a failure names the command and the end of what it printed.
fn run_one(config: &Config, words: &[String], log: &mut Vec<u8>) -> Result<(), Failure> {
    let Some((program, args)) = words.split_first() else {
        fail!("an empty command in `before`: give a program and its arguments");
    };
    let mut command = Command::new(program).args(args.iter().cloned());
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
    log.extend_from_slice(&done.stdout);
    log.extend_from_slice(&done.stderr);
    if done.timed_out {
        fail!("`{program}` timed out");
    }
    if !done.success() {
        // Where a program says why: its error output, else the end of what it printed
        // (pytest's `FAILED tests/...` lines and its summary).
        let stderr = done.stderr_text();
        let said = if stderr.trim().is_empty() {
            done.stdout_text()
        } else {
            stderr
        };
        let tail: Vec<&str> = said
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        fail!(
            "`{}` exited with {}{}",
            words.join(" "),
            done.exit_code
                .map_or("a signal".to_string(), |c| c.to_string()),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {}", tail.join(" / "))
            }
        );
    }
    Ok(())
}

/// Every regular file under `dir`, named `prefix/relative/path`, sorted.
fn files_under(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), prefix.to_string())];
    while let Some((folder, name)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push((entry.path(), child)),
                Ok(kind) if kind.is_file() => found.push(child),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

sluice_sdk::stage!(Exec);
