//! Plugin sharing through a real registry (Debian's docker-registry on 127.0.0.1): two teams
//! share a signed stage pinned by pipeline.lock; a tampered blob, a changed store copy and a moved
//! tag are refused here, the other refusal paths in [`refusals`], SLSA provenance, `wkg` and
//! private registries in [`provenance`].

mod provenance;
mod refusals;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::{RunStatus, StageStatus};

use crate::support::{
    CredentialLure, Pipeline, Ran, RegistryServer, Sandbox, Stage, plugin, sha256_of, table,
    toolchains,
};

/// One team: its own folder, plugin store, compile cache and keys.
struct Team {
    sandbox: Sandbox,
    name: &'static str,
}

impl Team {
    fn new(name: &'static str) -> Result<Self> {
        Ok(Self {
            sandbox: Sandbox::new()?,
            name,
        })
    }

    fn path(&self) -> &Path {
        self.sandbox.path()
    }

    fn sluice(&self, args: &[&str]) -> Result<Ran> {
        self.sandbox.sluice(args)
    }

    /// `sluice key generate`; returns (private, public) key files.
    fn keys(&self) -> Result<(PathBuf, PathBuf)> {
        let prefix = self.path().join("keys").join(self.name);
        let ran = self.sluice(&["key", "generate", &prefix.display().to_string()])?;
        anyhow::ensure!(ran.code == 0, "key generate failed: {}", ran.stderr);
        Ok((prefix.with_extension("key"), prefix.with_extension("pub")))
    }

    /// `sluice plugin push FILE REF [--sign KEY]`; returns the manifest digest it printed.
    fn push(&self, file: &Path, reference: &str, key: Option<&Path>) -> Result<String> {
        let key = key.map(|k| k.display().to_string());
        match &key {
            Some(key) => self.push_with(file, reference, &["--sign", key]),
            None => self.push_with(file, reference, &[]),
        }
    }

    /// `sluice plugin push FILE REF --force`: moves an existing tag.
    fn push_forced(&self, file: &Path, reference: &str) -> Result<String> {
        self.push_with(file, reference, &["--force"])
    }

    fn push_with(&self, file: &Path, reference: &str, extra: &[&str]) -> Result<String> {
        let file = file.display().to_string();
        let mut args = vec!["plugin", "push", file.as_str(), reference];
        args.extend_from_slice(extra);
        let ran = self.sluice(&args)?;
        anyhow::ensure!(ran.code == 0, "push failed: {}{}", ran.stdout, ran.stderr);
        ran.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("manifest  "))
            .map(str::to_string)
            .context("push printed no manifest digest")
    }

    fn run(&self, pipeline: &Path, extra: &[&str]) -> Result<Ran> {
        self.run_with_env(pipeline, extra, &[])
    }

    fn run_with_env(&self, pipeline: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Ran> {
        let pipeline = pipeline.display().to_string();
        let runs = self.sandbox.runs_dir().display().to_string();
        let report = self.report_path();
        let _ = std::fs::remove_file(&report);
        let report = report.display().to_string();
        let mut args = vec![
            "run",
            pipeline.as_str(),
            "--format",
            "plain",
            "--runs-dir",
            &runs,
            "--report",
            &report,
        ];
        args.extend_from_slice(extra);
        self.sandbox.sluice_with_env(&args, env)
    }

    fn runs(&self) -> usize {
        std::fs::read_dir(self.sandbox.runs_dir()).map_or(0, |d| d.count())
    }

    fn report_path(&self) -> PathBuf {
        self.path().join("last-report.json")
    }

    /// The report of the last `run` (which must have run).
    fn latest_report(&self) -> Result<sluice::model::report::RunReport> {
        sluice::model::report::RunReport::read(&self.report_path())
    }
}

/// Team B's pipeline: a local first stage, then the shared stage from the registry.
fn consumer_pipeline(team: &Team, reference: &str, trusted: Option<&Path>) -> Result<PathBuf> {
    let mut pipeline = Pipeline::new("team-b");
    if let Some(key) = trusted {
        pipeline = pipeline.set("trusted_keys", [key]);
    }
    team.sandbox.write(
        &pipeline
            .stage(
                Stage::new("code", "emit")
                    .config("files", table([("greeting.txt", "hello from team b\n")])),
            )
            .stage(
                Stage::with_plugin("build", reference)
                    .inputs(["code/*"])
                    .config("op", "upper"),
            ),
    )
}

fn lock_text(pipeline: &Path) -> String {
    std::fs::read_to_string(pipeline.with_extension("lock")).unwrap_or_default()
}

#[test]
fn two_teams_share_a_signed_stage_pinned_by_the_lock() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let (private, public) = team_a.keys()?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    let manifest = team_a.push(&component, &reference, Some(&private))?;

    // Team B trusts team A's public key and nothing else.
    let trusted = team_b.path().join("team-a.pub");
    std::fs::copy(&public, &trusted)?;
    let pipeline = consumer_pipeline(&team_b, &reference, Some(&trusted))?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(0)
        .assert_stderr(&["fetched"]);
    let report = team_b.latest_report()?;
    let build = &report.stages[1];
    assert_eq!(build.status, StageStatus::Succeeded);
    assert_eq!(
        build.plugin.sha256.as_deref(),
        Some(sha256_of(&component)?.as_str())
    );
    assert_eq!(
        build.plugin.manifest_digest.as_deref(),
        Some(manifest.as_str())
    );
    assert_eq!(
        build.plugin.signed_by.len(),
        1,
        "{:?}",
        build.plugin.signed_by
    );
    let out = std::fs::read_to_string(Path::new(&report.run_dir).join(&build.outputs[0].path))?;
    assert_eq!(out, "HELLO FROM TEAM B\n");

    // The lock pins the manifest and the component.
    let lock = lock_text(&pipeline);
    assert!(
        lock.contains(&format!("reference = \"{reference}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("manifest = \"{manifest}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("layer = \"sha256:{}\"", sha256_of(&component)?)),
        "{lock}"
    );

    // Pinned by digest in the pipeline itself: the same bytes, no tag involved.
    let by_digest = team_b.sandbox.pipeline(
        "by-digest.toml",
        &std::fs::read_to_string(&pipeline)?.replace(
            &reference,
            &registry.reference(&format!("acme/text-transform@{manifest}")),
        ),
    )?;
    team_b.run(&by_digest, &[])?.assert_exit(0);
    assert_eq!(
        team_b.latest_report()?.stages[1]
            .plugin
            .manifest_digest
            .as_deref(),
        Some(manifest.as_str())
    );

    // The event stream says which bytes each registry stage was pinned to.
    let ran = team_b.sluice(&["run", &pipeline.display().to_string(), "--format", "json"])?;
    ran.assert_exit(0);
    let resolved: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "plugin-resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{}", ran.stdout);
    assert_eq!(resolved[0]["stage"], "build");
    assert_eq!(resolved[0]["manifest_digest"], manifest.as_str());
    assert_eq!(resolved[0]["fetched"], false);

    // A warm run needs no network: with the registry gone it still runs, signature included.
    drop(registry);
    let ran = team_b.run(&pipeline, &["--locked"])?;
    ran.assert_exit(0);
    assert!(!ran.stderr.contains("fetched"), "{}", ran.stderr);
    team_b.run(&pipeline, &["--offline"])?.assert_exit(0);
    assert_eq!(team_b.latest_report()?.status, RunStatus::Succeeded);
    Ok(())
}

#[test]
fn a_blob_changed_in_the_registry_is_refused_before_anything_runs() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    team_a.push(&component, &reference, None)?;

    // Someone with access to the registry's disk rewrites the published component.
    let blob = registry.blob_file(&format!("sha256:{}", sha256_of(&component)?));
    let mut bytes = std::fs::read(&blob)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes)?;

    let pipeline = consumer_pipeline(&team_b, &reference, None)?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["stage `build`", "changed after it was published"]);
    assert_eq!(team_b.runs(), 0, "nothing may run");
    assert!(
        lock_text(&pipeline).is_empty(),
        "a refused plugin is not locked"
    );
    Ok(())
}

#[test]
fn a_changed_copy_in_the_local_store_is_never_run() -> Result<()> {
    let registry = RegistryServer::start()?;
    let team = Team::new("team-b")?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    team.push(&component, &reference, None)?;
    let pipeline = consumer_pipeline(&team, &reference, None)?;
    team.run(&pipeline, &[])?.assert_exit(0);

    let stored = team
        .path()
        .join("plugin-store/blobs/sha256")
        .join(sha256_of(&component)?);
    std::fs::write(&stored, b"\0asm not the published bytes")?;
    // Offline there is nothing to repair it from: refused.
    team.run(&pipeline, &["--offline"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["corrupt"]);
    // Online, the store is refilled from the registry and the pinned bytes run.
    team.run(&pipeline, &[])?.assert_exit(0);
    assert_eq!(sha256_of(&stored)?, sha256_of(&component)?);
    Ok(())
}

#[test]
fn a_moved_tag_changes_nothing_until_lock_update() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let reference = registry.reference("acme/stage:1.0.0");
    let first = plugin("text-transform")?;
    let first_manifest = team_a.push(&first, &reference, None)?;
    // Publishing is reproducible: the same bytes again give the same manifest.
    assert_eq!(team_a.push(&first, &reference, None)?, first_manifest);
    let pipeline = consumer_pipeline(&team_b, &reference, None)?;
    team_b.run(&pipeline, &[])?.assert_exit(0);

    // Different bytes under a published version are refused unless forced...
    let second = plugin("checksum")?;
    let ran = team_a.sluice(&["plugin", "push", &second.display().to_string(), &reference])?;
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    ran.assert_stderr(&["already names", "--force"]);
    // ... and then the tag moves.
    let second_manifest = team_a.push_forced(&second, &reference)?;
    assert_ne!(first_manifest, second_manifest);

    // The lock still wins, even with a fresh store (the old manifest is fetched by digest).
    std::fs::remove_dir_all(team_b.path().join("plugin-store"))?;
    team_b.run(&pipeline, &["--locked"])?.assert_exit(0);
    let report = team_b.latest_report()?;
    assert_eq!(
        report.stages[1].plugin.sha256.as_deref(),
        Some(sha256_of(&first)?.as_str())
    );

    // Re-resolving on purpose moves the pin, and says so.
    team_b
        .sluice(&["lock", &pipeline.display().to_string(), "--update"])?
        .assert_exit(0)
        .assert_stderr(&[&format!("update {reference}")]);
    assert!(lock_text(&pipeline).contains(&second_manifest));

    // A lock whose component digest was edited no longer matches its manifest: refused.
    let lock_file = pipeline.with_extension("lock");
    let honest = lock_text(&pipeline);
    let second_layer = format!("sha256:{}", sha256_of(&second)?);
    std::fs::write(
        &lock_file,
        honest.replace(&second_layer, &format!("sha256:{}", sha256_of(&first)?)),
    )?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["tampered"]);
    std::fs::write(&lock_file, honest)?;

    // With --locked, a pipeline whose lock is out of date is refused.
    let other = registry.reference("acme/stage:2.0.0");
    team_a.push(&second, &other, None)?;
    let pipeline = consumer_pipeline(&team_b, &other, None)?;
    team_b
        .run(&pipeline, &["--locked"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["out of date", "sluice lock"]);
    Ok(())
}
