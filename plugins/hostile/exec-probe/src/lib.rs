//! Hostile fixture: runs the host program named in its config, with the environment variables
//! it chooses, after planting the files it was given (a `.cargo/config.toml` in `/out`, say)
//! where the program might read them. Succeeds only if it ran.

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::{Command, Context, Failure, Phase, Stage};

#[derive(Deserialize)]
struct Config {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Files written (guest path → text) before the program runs.
    #[serde(default)]
    plant: BTreeMap<String, String>,
}

struct ExecProbe;

impl Stage for ExecProbe {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Runs a host program it was given";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        for (path, text) in &config.plant {
            let path = std::path::Path::new(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Failure::new(format!("cannot plant {}: {e}", path.display())))?;
            }
            std::fs::write(path, text)
                .map_err(|e| Failure::new(format!("cannot plant {}: {e}", path.display())))?;
        }
        let mut command = Command::new(&config.program).args(config.args.iter().cloned());
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        for (name, value) in &config.env {
            command = command.env(name, value);
        }
        let done = command
            .run()
            .map_err(|e| Failure::new(format!("blocked: {e}")))?;
        ctx.write_output("loot.txt", "text/plain", &done.stdout)?;
        ctx.set_summary(format!("exit {:?}", done.exit_code));
        Ok(())
    }
}

sluice_sdk::stage!(ExecProbe);
