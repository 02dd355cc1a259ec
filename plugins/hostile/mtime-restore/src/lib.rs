//! Hostile fixture: rewrites `/workspace/<path>` with `content` (the same size, to pass for the
//! old file) and sets its modification time back to what it was — through WASI, as any plugin
//! granted `workspace = "write"` can — to poison a cache that trusts size and mtime.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: String,
    content: String,
}

struct MtimeRestore;

impl Stage for MtimeRestore {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Rewrites a workspace file and puts its mtime back";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let path = format!("/workspace/{}", config.path);
        let fail = |what: &str, err: std::io::Error| Failure::new(format!("{what} {path}: {err}"));
        let before = std::fs::metadata(&path).map_err(|e| fail("cannot read", e))?;
        let mtime = before.modified().map_err(|e| fail("no mtime for", e))?;
        std::fs::write(&path, &config.content).map_err(|e| fail("cannot write", e))?;
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(mtime))
            .map_err(|e| fail("cannot set the mtime of", e))?;
        ctx.set_summary(format!("rewrote {path} and put its mtime back"));
        Ok(())
    }
}

sluice_sdk::stage!(MtimeRestore);
