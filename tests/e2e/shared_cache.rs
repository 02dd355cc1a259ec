//! The stage cache shared through NATS (issue 30, item 5): two coordinators on their own local
//! caches, their workspaces at different paths, each with its own cluster key. The second takes
//! the first's entries when it trusts the first's key — the stage's random output is the first
//! run's bytes, so the plugin did not run again; a run that does not trust that key misses, and a
//! read-only run writes nothing — proven by listing the stream and the blob store.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::model::report::RunReport;

use crate::support::agents::read_report;
use crate::support::{NatsServer, Pipeline, Sandbox, Stage};

/// `code` packs the workspace; `stamp` reads it and writes a line no two runs share.
fn pipeline() -> Pipeline {
    Pipeline::new("shared")
        .set("workspace", "ws")
        .stage(Stage::new("code", "checkout").allow("workspace", "read"))
        .stage(
            Stage::new("stamp", "exec")
                .set("cache", true)
                .inputs::<0>([])
                .set("needs", vec!["code"])
                .allow("workspace", "read")
                .allow("exec", vec!["sh"])
                .config("program", "sh")
                .config(
                    "args",
                    vec!["-c", "read id < /proc/sys/kernel/random/uuid; echo $id"],
                )
                .config("log_name", "stamp.txt"),
        )
}

/// A machine of its own: its sandbox (cluster key, stage cache) and a workspace in it.
fn machine() -> Result<(Sandbox, PathBuf)> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(ws.join("src"))?;
    std::fs::write(ws.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n")?;
    std::fs::write(ws.join("README.md"), "# shared\n")?;
    let file = sandbox.pipeline("pipeline.toml", &pipeline().to_toml())?;
    Ok((sandbox, file))
}

/// `sluice run` with the shared cache at `url` and `extra` flags; the report.
fn run(sandbox: &Sandbox, file: &Path, url: &str, extra: &[&str]) -> Result<RunReport> {
    let report = sandbox.path().join("report.json");
    let (file, runs, report_arg) = (
        file.display().to_string(),
        sandbox.runs_dir().display().to_string(),
        report.display().to_string(),
    );
    let mut args = vec![
        "run",
        file.as_str(),
        "--format",
        "plain",
        "--runs-dir",
        runs.as_str(),
        "--report",
        report_arg.as_str(),
        "--shared-cache",
        url,
    ];
    args.extend_from_slice(extra);
    let ran = sandbox.sluice(&args)?;
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    read_report(&report)
}

/// Whether `stage` was a hit, and whose shared entry it came from.
fn cache_of(report: &RunReport, stage: &str) -> (bool, Option<String>) {
    let cache = report
        .stages
        .iter()
        .find(|s| s.name == stage)
        .and_then(|s| s.cache.clone());
    cache.map_or((false, None), |c| (c.hit, c.shared_from))
}

fn stamp(report: &RunReport) -> Result<String> {
    let path = Path::new(&report.run_dir).join("artifacts/stamp/stamp.txt");
    std::fs::read_to_string(&path).with_context(|| format!("no {}", path.display()))
}

/// Messages in the entries' stream and in the blob store's stream.
fn store_counts(url: &str) -> Result<(u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await?);
        let mut entries = js.get_stream("SLUICE_STAGE_CACHE").await?;
        let mut blobs = js.get_stream("OBJ_sluice-blobs").await?;
        let entries = entries.info().await?.state.messages;
        let blobs = blobs.info().await?.state.messages;
        Ok((entries, blobs))
    })
}

#[test]
fn a_second_coordinator_takes_trusted_entries_and_nothing_else() -> Result<()> {
    let server = NatsServer::start()?;
    let url = server.url();

    // The first machine runs everything and shares it.
    let (first, first_file) = machine()?;
    let one = run(&first, &first_file, &url, &[])?;
    assert_eq!(cache_of(&one, "stamp"), (false, None));
    let first_stamp = stamp(&one)?;
    let (entries, blobs) = store_counts(&url)?;
    assert_eq!(
        entries,
        2,
        "one entry per stage: {:?}",
        one.stages
            .iter()
            .map(|s| (&s.name, &s.cache))
            .collect::<Vec<_>>()
    );
    let first_key = first.path().join("xdg/data/sluice/cluster.pub");
    assert!(first_key.is_file(), "the first machine's key was made");

    // A machine that does not trust the first's key, reading only: both stages run (a fresh
    // stamp), and the shared cache gains nothing.
    let (stranger, stranger_file) = machine()?;
    let untrusted = run(
        &stranger,
        &stranger_file,
        &url,
        &["--shared-cache-read-only"],
    )?;
    assert_eq!(cache_of(&untrusted, "stamp"), (false, None));
    assert_eq!(cache_of(&untrusted, "code"), (false, None));
    assert_ne!(stamp(&untrusted)?, first_stamp, "the stage ran again");
    assert_eq!(
        store_counts(&url)?,
        (entries, blobs),
        "a read-only run writes neither entries nor blobs"
    );

    // A machine trusting the first's key, its workspace at another path: both stages served
    // from the first's entries, the stamp the first run's bytes.
    let (second, second_file) = machine()?;
    let key_arg = first_key.display().to_string();
    let two = run(
        &second,
        &second_file,
        &url,
        &["--trust-cache-writer", key_arg.as_str()],
    )?;
    let (hit, from) = cache_of(&two, "stamp");
    assert!(hit, "{:?}", two.stages);
    assert!(from.is_some_and(|id| id.starts_with("ed25519:")));
    assert!(cache_of(&two, "code").0);
    assert_eq!(stamp(&two)?, first_stamp);
    assert_ne!(one.run_dir, two.run_dir);
    // Kept in the second machine's own cache: the next run does not ask the shared one.
    let three = run(
        &second,
        &second_file,
        &url,
        &["--trust-cache-writer", key_arg.as_str()],
    )?;
    assert_eq!(cache_of(&three, "stamp"), (true, None));
    assert_eq!(stamp(&three)?, first_stamp);
    Ok(())
}
