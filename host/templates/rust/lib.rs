//! {{name}}: a sluice stage. Reads `greeting` from [stage.config], writes greeting.txt.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, info};

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "hello".into()
}

struct Plugin;

impl Stage for Plugin {
    const PHASE: Phase = Phase::Build;
    const DESCRIPTION: &'static str = "Writes a greeting (edit me)";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        if config.greeting.is_empty() {
            return Err(Failure::new("`greeting` is empty"));
        }
        let text = format!("{} from {}\n", config.greeting, ctx.stage());
        ctx.write_output("greeting.txt", "text/plain", &text)?;
        info!("{} inputs seen", ctx.inputs().len());
        ctx.set_summary(text.trim());
        Ok(())
    }
}

sluice_sdk::stage!(Plugin);
