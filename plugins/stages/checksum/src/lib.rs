//! Release stage: publishes a `SHA256SUMS` file in the format `sha256sum -c` reads, from the
//! digests the host verified as it handed each input over (computed once per artifact, with the
//! CPU's SHA instructions). With `rehash = true` it also re-hashes every input inside the sandbox,
//! streaming, and refuses any whose bytes differ — defence in depth, at the cost of software
//! SHA-256 in wasm (tens of MB/s).

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info, sha256_hex};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_file")]
    file: String,
    /// Also re-hash every input inside the sandbox.
    #[serde(default)]
    rehash: bool,
}

fn default_file() -> String {
    "SHA256SUMS".into()
}

struct Checksum;

impl Stage for Checksum {
    const PHASE: Phase = Phase::Release;
    const DESCRIPTION: &'static str = "Writes a SHA256SUMS manifest of its inputs, from the digests the host verified (`rehash` re-checks them in the sandbox)";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let mut inputs = ctx.inputs().to_vec();
        if inputs.is_empty() {
            fail!("no inputs to checksum: give this stage `inputs` from an earlier stage");
        }
        inputs.sort_by(|a, b| (&a.stage, &a.name).cmp(&(&b.stage, &b.name)));
        let mut sums = String::new();
        for input in &inputs {
            if !config.rehash {
                sums.push_str(&format!(
                    "{}  {}/{}\n",
                    input.sha256, input.stage, input.name
                ));
                continue;
            }
            // Streamed: an input of any size is hashed in a few KiB of the stage's memory.
            let (digest, size) = sha256_hex(ctx.open(input)?)
                .map_err(|err| Failure::new(format!("cannot read input {}: {err}", input.path)))?;
            if digest != input.sha256 || size != input.size {
                fail!(
                    "{}/{} changed after it was produced: recorded sha256 {} ({} bytes), found {} ({} bytes)",
                    input.stage,
                    input.name,
                    input.sha256,
                    input.size,
                    digest,
                    size
                );
            }
            sums.push_str(&format!("{digest}  {}/{}\n", input.stage, input.name));
        }
        ctx.write_output(&config.file, "text/plain", &sums)?;
        let how = if config.rehash {
            "re-hashed"
        } else {
            "verified by the host"
        };
        info!("{} inputs {how}", inputs.len());
        ctx.set_summary(format!("{} digests {how}", inputs.len()));
        Ok(())
    }
}

sluice_sdk::stage!(Checksum);
