//! The compiled-code cache: the first run compiles, the second loads compiled code from disk.

use anyhow::Result;

use crate::support::{Sandbox, repo_root};

#[test]
fn second_run_loads_every_plugin_from_the_cache() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let (first, cold) = sandbox.run(&pipeline)?;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // `text-transform` ... every stage uses a distinct plugin, so none can hit on the first run.
    for stage in &cold.stages {
        assert_eq!(
            stage.plugin.cache_hit,
            Some(false),
            "{} hit a cold cache",
            stage.name
        );
    }
    let entries = std::fs::read_dir(sandbox.cache_dir())?
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(entries, 4, "one compiled entry per distinct plugin");

    let (second, warm) = sandbox.run(&pipeline)?;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_ne!(cold.run_id, warm.run_id);
    for stage in &warm.stages {
        assert_eq!(
            stage.plugin.cache_hit,
            Some(true),
            "{} missed a warm cache",
            stage.name
        );
    }
    Ok(())
}

#[test]
fn a_corrupt_cache_entry_is_recompiled_not_trusted() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let (first, _) = sandbox.run(&pipeline)?;
    assert_eq!(first.code, 0, "{}", first.stderr);
    for dir in std::fs::read_dir(sandbox.cache_dir())?.flatten() {
        for entry in std::fs::read_dir(dir.path())?.flatten() {
            std::fs::write(entry.path(), b"garbage")?;
        }
    }
    let (second, report) = sandbox.run(&pipeline)?;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        report
            .stages
            .iter()
            .all(|s| s.plugin.cache_hit == Some(false))
    );
    Ok(())
}

#[test]
fn no_cache_compiles_every_time_and_stores_nothing() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let report_path = sandbox.path().join("r.json");
    for _ in 0..2 {
        let ran = sandbox.sluice(&[
            "run",
            &pipeline.display().to_string(),
            "--no-cache",
            "--runs-dir",
            &sandbox.runs_dir().display().to_string(),
            "--report",
            &report_path.display().to_string(),
        ])?;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let report: sluice::model::report::RunReport =
            serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
        assert!(
            report
                .stages
                .iter()
                .all(|s| s.plugin.cache_hit == Some(false))
        );
    }
    assert!(!sandbox.cache_dir().exists());
    Ok(())
}

/// The compiled entry for `plugin` in a sandbox's own cache.
fn entry_for(sandbox: &Sandbox, plugin: &str) -> Result<std::path::PathBuf> {
    let sha = crate::support::sha256_of(&crate::support::plugin(plugin)?)?;
    std::fs::read_dir(sandbox.cache_dir())?
        .flatten()
        .map(|dir| dir.path().join(format!("{sha}.cwasm")))
        .find(|path| path.is_file())
        .ok_or_else(|| anyhow::anyhow!("no compiled entry for {plugin}"))
}

#[test]
fn compiled_code_planted_in_another_plugins_slot_is_never_run() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let (first, cold) = sandbox.run(&pipeline)?;
    assert_eq!(first.code, 0, "{}", first.stderr);
    // A valid, signed entry — of `emit` — put where `text-transform`'s code belongs.
    let planted = std::fs::read(entry_for(&sandbox, "emit")?)?;
    let slot = entry_for(&sandbox, "text-transform")?;
    std::fs::write(&slot, &planted)?;
    let (second, warm) = sandbox.run(&pipeline)?;
    assert_eq!(second.code, 0, "{}", second.stderr);
    for stage in &warm.stages {
        let expected = stage.name != "build";
        assert_eq!(stage.plugin.cache_hit, Some(expected), "{}", stage.name);
    }
    // The real plugin ran: the same output as the first run, and the slot holds its own code.
    let outputs = |report: &sluice::model::report::RunReport| -> Vec<String> {
        report.stages[1]
            .outputs
            .iter()
            .map(|a| a.sha256.clone())
            .collect()
    };
    assert_eq!(outputs(&cold), outputs(&warm));
    assert_ne!(std::fs::read(&slot)?, planted);
    Ok(())
}

#[test]
fn a_cache_folder_other_users_can_write_is_refused() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::with_own_cache()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    std::fs::create_dir_all(sandbox.cache_dir())?;
    std::fs::set_permissions(sandbox.cache_dir(), std::fs::Permissions::from_mode(0o777))?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_ne!(ran.code, 0);
    ran.assert_stderr(&["can be written by other users", "chmod go-w"]);
    assert!(
        report.stages.iter().all(|s| s.duration_ms.is_none()),
        "nothing ran"
    );
    let compiled = std::fs::read_dir(sandbox.cache_dir())?.count();
    assert_eq!(compiled, 0, "nothing was written into it");
    Ok(())
}

/// A file in the sandbox's own cache, in whichever engine folder holds it.
fn cached_file(sandbox: &Sandbox, name: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(sandbox.cache_dir())
        .ok()?
        .flatten()
        .map(|dir| dir.path().join(name))
        .find(|path| path.is_file())
}

#[test]
fn a_settled_entry_is_trusted_by_identity_and_any_change_is_verified_again() -> Result<()> {
    let sandbox = Sandbox::with_own_cache()?;
    let stage_file = sandbox.path().join("stage.wasm");
    std::fs::copy(crate::support::plugin("emit")?, &stage_file)?;
    let emit_sha = crate::support::sha256_of(&stage_file)?;
    let pipeline = sandbox.pipeline(
        "pipeline.toml",
        &format!(
            "version = 1\n[pipeline]\nname = \"identity\"\n[[stage]]\nname = \"s\"\nplugin = \"{}\"\n[stage.config.files]\n\"a.txt\" = \"hello\"\n",
            stage_file.display()
        ),
    )?;
    let run = |expect_hit: bool, sha: &str| -> Result<()> {
        let (ran, report) = sandbox.run(&pipeline)?;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let stage = &report.stages[0];
        assert_eq!(stage.plugin.cache_hit, Some(expect_hit), "{}", ran.stderr);
        assert_eq!(stage.plugin.sha256.as_deref(), Some(sha));
        Ok(())
    };
    run(false, &emit_sha)?;
    // The entry just written is trusted by identity only once its times are settled.
    crate::support::settle();
    run(true, &emit_sha)?;
    // That run verified the entry in full and recorded its identity, and the plugin's digest.
    let tag = std::fs::read(
        cached_file(&sandbox, &format!("{emit_sha}.tag")).expect("the entry's tag file"),
    )?;
    assert_eq!(tag.len(), 104);
    assert!(tag[32..72].iter().any(|b| *b != 0), "no identity recorded");
    let digests = std::fs::read_dir(tag_dir(&sandbox, &emit_sha)?)?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "digest"))
        .count();
    assert_eq!(digests, 1, "the plugin's digest is remembered");
    run(true, &emit_sha)?;

    // Compiled code changed in place (same inode, new times): verified again, refused, rebuilt.
    let code = cached_file(&sandbox, &format!("{emit_sha}.cwasm")).expect("the entry");
    let mut tampered = std::fs::read(&code)?;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    std::fs::write(&code, &tampered)?;
    run(false, &emit_sha)?;
    assert_ne!(std::fs::read(&code)?, tampered, "the tampered code stayed");

    // The plugin file replaced by another: its remembered digest is not used.
    std::fs::copy(crate::support::plugin("noop")?, &stage_file)?;
    let noop_sha = crate::support::sha256_of(&stage_file)?;
    assert_ne!(noop_sha, emit_sha);
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        report.stages[0].plugin.sha256.as_deref(),
        Some(noop_sha.as_str())
    );
    Ok(())
}

/// The engine folder holding `sha`'s entry.
fn tag_dir(sandbox: &Sandbox, sha: &str) -> Result<std::path::PathBuf> {
    cached_file(sandbox, &format!("{sha}.tag"))
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .ok_or_else(|| anyhow::anyhow!("no entry for {sha}"))
}
