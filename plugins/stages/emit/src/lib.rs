//! Code stage: turns the `files` table of its config into artifacts, so a pipeline can start
//! from content it declares (a seed, a template, a fixture).

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Output name → text content.
    files: BTreeMap<String, String>,
    #[serde(default = "default_media_type")]
    media_type: String,
}

fn default_media_type() -> String {
    "text/plain".into()
}

struct Emit;

impl Stage for Emit {
    const PHASE: Phase = Phase::Code;
    const DESCRIPTION: &'static str =
        "Writes the files listed in [stage.config.files] as artifacts";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        if config.files.is_empty() {
            fail!("[stage.config.files] is empty: list at least one `name = \"content\"`");
        }
        let mut bytes = 0;
        for (name, content) in &config.files {
            ctx.write_output(name, &config.media_type, content)?;
            info!("wrote {name} ({} bytes)", content.len());
            bytes += content.len();
        }
        ctx.set_summary(format!("{} files, {bytes} bytes", config.files.len()));
        Ok(())
    }
}

sluice_sdk::stage!(Emit);
