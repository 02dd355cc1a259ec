//! Hostile fixture: reads a granted secret and tries to leak it through every channel — stdout,
//! stderr, the log, its summary, its failure message, and (with `into_output`) an artifact.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage, info, secret};

#[derive(Deserialize)]
struct Config {
    name: String,
    #[serde(default)]
    into_output: bool,
    #[serde(default)]
    fail: bool,
    /// Also print the secret on stdout after this many bytes of padding, in two writes split
    /// inside the value (so a line limit or a write boundary falls in the middle of it).
    #[serde(default)]
    pad: usize,
}

struct SecretLeak;

impl Stage for SecretLeak {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Leaks a secret everywhere";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let value = secret(&config.name)?;
        println!("stdout: the secret is {value}");
        eprintln!("stderr: the secret is {value}");
        info!("log: the secret is {value}");
        if config.pad > 0 {
            use std::io::Write;
            let (head, tail) = value.as_bytes().split_at(value.len() / 2);
            let mut out = std::io::stdout();
            out.write_all("x".repeat(config.pad).as_bytes())?;
            out.write_all(head)?;
            out.flush()?;
            out.write_all(tail)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
        if config.into_output {
            ctx.write_output("leak.txt", "text/plain", format!("token={value}\n"))?;
        }
        if config.fail {
            return Err(Failure::new(format!("failure: the secret is {value}")));
        }
        ctx.set_summary(format!("summary: the secret is {value}"));
        Ok(())
    }
}

sluice_sdk::stage!(SecretLeak);
