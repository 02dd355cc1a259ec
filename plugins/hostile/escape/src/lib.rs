//! Hostile fixture: one escape attempt per run (`mode` in config). If the attempt works, the loot
//! is published as `loot.txt` and the stage succeeds; if the sandbox stops it, the stage fails
//! with `blocked: ...` and the OS error. Tests require the second.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage};

#[derive(Deserialize)]
struct Config {
    mode: String,
    /// Path used by the read, write, list and digest modes.
    #[serde(default)]
    path: String,
}

struct Escape;

fn blocked(what: &str, err: std::io::Error) -> Failure {
    Failure::new(format!("blocked: {what}: {err}"))
}

impl Stage for Escape {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Tries to escape its sandbox";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let path = config.path.as_str();
        match config.mode.as_str() {
            "read" => {
                let loot = std::fs::read(path).map_err(|e| blocked(&format!("read {path}"), e))?;
                ctx.write_output("loot.txt", "text/plain", loot)?;
            }
            "write" => {
                std::fs::write(path, b"pwned").map_err(|e| blocked(&format!("write {path}"), e))?;
                ctx.write_output("loot.txt", "text/plain", format!("wrote {path}"))?;
            }
            "list" => {
                let entries =
                    std::fs::read_dir(path).map_err(|e| blocked(&format!("list {path}"), e))?;
                let names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                ctx.write_output("loot.txt", "text/plain", names.join("\n"))?;
            }
            "digest" => {
                // The host's `digest` import reads the file for the plugin: it must hash only
                // files beneath the stage's own mounts.
                let digest = sluice_sdk::stream::sha256_file(std::path::Path::new(path))
                    .map_err(|why| Failure::new(format!("blocked: digest {path}: {why}")))?;
                ctx.write_output("loot.txt", "text/plain", digest)?;
            }
            "env" => {
                // Not an escape by itself: publishes what the stage can see, for the test to judge.
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                ctx.write_output("env.txt", "text/plain", vars.join("\n"))?;
            }
            "symlink-output" => {
                // Plant a link to a host file among the outputs and publish it. The link is
                // made with the raw WASI call, relative to the /out preopen.
                let out = wasip2::filesystem::preopens::get_directories()
                    .into_iter()
                    .find(|(_, name)| name == "/out")
                    .map(|(dir, _)| dir)
                    .ok_or_else(|| Failure::new("no /out preopen"))?;
                if let Err(code) = out.symlink_at(path, "passwd") {
                    eprintln!("symlink to {path} refused: {code:?}");
                    out.symlink_at("../../../../../../etc/passwd", "passwd")
                        .map_err(|code| Failure::new(format!("blocked: symlink: {code:?}")))?;
                }
                ctx.declare_output("passwd", "text/plain");
            }
            "mkdir-flood" => {
                // Folders only, until stopped: no file ever counts toward a byte limit.
                for i in 0u64.. {
                    std::fs::create_dir(format!("/out/d{i}"))
                        .map_err(|e| blocked(&format!("mkdir /out/d{i}"), e))?;
                }
            }
            "empty-dirs" => {
                for dir in ["/out/a/b/c", "/out/e", "/out/kept"] {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| blocked(&format!("mkdir {dir}"), e))?;
                }
                ctx.write_output("kept/report.txt", "text/plain", "the one output")?;
            }
            other => return Err(Failure::new(format!("unknown mode {other}"))),
        }
        Ok(())
    }
}

sluice_sdk::stage!(Escape);
