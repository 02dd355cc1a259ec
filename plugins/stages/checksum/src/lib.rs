//! Release stage: re-hashes every input, refuses any whose bytes differ from the digest the host
//! recorded, and publishes a `SHA256SUMS` file in the format `sha256sum -c` reads.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_file")]
    file: String,
}

fn default_file() -> String {
    "SHA256SUMS".into()
}

struct Checksum;

impl Stage for Checksum {
    const PHASE: Phase = Phase::Release;
    const DESCRIPTION: &'static str =
        "Verifies every input's sha256 and writes a SHA256SUMS manifest";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let mut inputs = ctx.inputs().to_vec();
        if inputs.is_empty() {
            fail!("no inputs to checksum: give this stage `inputs` from an earlier stage");
        }
        inputs.sort_by(|a, b| (&a.stage, &a.name).cmp(&(&b.stage, &b.name)));
        let mut sums = String::new();
        for input in &inputs {
            let bytes = ctx.read(input)?;
            let digest = hex::encode(Sha256::digest(&bytes));
            if digest != input.sha256 || bytes.len() as u64 != input.size {
                fail!(
                    "{}/{} changed after it was produced: recorded sha256 {} ({} bytes), found {} ({} bytes)",
                    input.stage,
                    input.name,
                    input.sha256,
                    input.size,
                    digest,
                    bytes.len()
                );
            }
            sums.push_str(&format!("{digest}  {}/{}\n", input.stage, input.name));
        }
        ctx.write_output(&config.file, "text/plain", &sums)?;
        info!("verified {} inputs", inputs.len());
        ctx.set_summary(format!("{} digests verified", inputs.len()));
        Ok(())
    }
}

sluice_sdk::stage!(Checksum);
