//! `sluice init` on a crate fresh from `cargo new`: the pipeline it writes passes `sluice check`
//! and runs green (cargo build and cargo test through the shipped stages it wrote beside it).

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Sandbox, cache_hits, statuses};

#[test]
fn init_on_a_new_rust_crate_checks_and_runs_green() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let made = sandbox
        .program("cargo")
        .args(["new", "--lib", "--vcs", "none", "fresh"])
        .current_dir(sandbox.path())
        .output()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let project = sandbox.path().join("fresh");
    let init = sandbox.command(&["init"]).current_dir(&project).output()?;
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(
        init.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(said.contains("for a Rust crate"), "{said}");
    assert!(said.contains("  sluice run ./pipeline.toml"), "{said}");
    for stage in ["checkout", "exec", "cargo-test"] {
        assert!(
            project
                .join(format!(".sluice/stages/{stage}.wasm"))
                .is_file()
        );
    }
    assert!(project.join("Cargo.lock").is_file());
    // Never over a pipeline that is there.
    let again = sandbox.command(&["init"]).current_dir(&project).output()?;
    assert_eq!(again.status.code(), Some(exit_codes::INVALID_INPUT));

    let pipeline = project.join("pipeline.toml");
    let checked = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_eq!(checked.code, 0, "{}\n{}", checked.stdout, checked.stderr);
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let statuses: Vec<(&str, StageStatus)> = report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("code", StageStatus::Succeeded),
            ("build", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    // `cargo new --lib` writes one test; cargo-test reports it.
    let junit = std::fs::read_to_string(
        std::path::Path::new(&report.run_dir).join("artifacts/test/junit.xml"),
    )?;
    assert!(junit.contains("name=\"tests::it_works\""), "{junit}");

    // State between runs: cargo's target folder is a cache volume, and nothing changed means
    // build and test come from the stage cache.
    let volumes = sandbox.path().join("volumes");
    let scope = std::fs::read_dir(&volumes)?
        .flatten()
        .next()
        .map(|e| e.path())
        .unwrap_or_default();
    // The build's release profile and the tests' debug one, both kept.
    assert!(
        scope.join("cargo-target/release").is_dir(),
        "no release build kept"
    );
    assert!(
        scope.join("cargo-target/debug").is_dir(),
        "no test build kept"
    );
    crate::support::settle();
    let (ran, again) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(cache_hits(&again), ["code", "build", "test"]);
    // One file touched: build and test run again, and say why.
    std::fs::write(
        project.join("src/lib.rs"),
        std::fs::read_to_string(project.join("src/lib.rs"))? + "\npub fn more() {}\n",
    )?;
    let (ran, touched) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        touched
            .stages
            .iter()
            .all(|s| !s.cache.as_ref().is_some_and(|c| c.hit))
    );
    ran.assert_stderr(&["stage cache miss: workspace: src/lib.rs (changed)"]);
    Ok(())
}

#[test]
fn init_says_what_it_cannot_start() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ran = sandbox
        .command(&["init"])
        .current_dir(sandbox.path())
        .output()?;
    assert_eq!(ran.status.code(), Some(exit_codes::INVALID_INPUT));
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        stderr.contains("holds no project sluice init knows"),
        "{stderr}"
    );
    assert!(!sandbox.path().join("pipeline.toml").exists());
    Ok(())
}

/// `sluice init` in `project` (it must say `for a KIND`) and `sluice check` on what it wrote;
/// the pipeline's path.
pub(crate) fn init_and_check(
    sandbox: &Sandbox,
    project: &std::path::Path,
    kind: &str,
) -> Result<std::path::PathBuf> {
    let init = sandbox.command(&["init"]).current_dir(project).output()?;
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(
        init.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(said.contains(&format!("for a {kind}")), "{said}");
    let pipeline = project.join("pipeline.toml");
    let checked = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_eq!(checked.code, 0, "{}\n{}", checked.stdout, checked.stderr);
    Ok(pipeline)
}

/// `sluice init` in `project`, then `check` and `run`.
fn init_check_run(
    sandbox: &Sandbox,
    project: &std::path::Path,
    kind: &str,
) -> Result<(crate::support::Ran, sluice::model::report::RunReport)> {
    let pipeline = init_and_check(sandbox, project, kind)?;
    sandbox.run(&pipeline)
}

#[test]
fn init_on_a_new_node_package_installs_and_tests_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let project = sandbox.path().join("webapp");
    std::fs::create_dir_all(project.join("test"))?;
    let made = sandbox
        .program("npm")
        .args(["init", "-y"])
        .current_dir(&project)
        .output()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // npm's placeholder test script fails on purpose: give the package a test suite.
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join("package.json"))?)?;
    manifest["scripts"]["test"] = "node --test".into();
    std::fs::write(
        project.join("package.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    std::fs::write(
        project.join("test/add.test.js"),
        "const test = require('node:test');\nconst assert = require('node:assert');\ntest('adds', () => assert.strictEqual(1 + 1, 2));\n",
    )?;
    let (ran, report) = init_check_run(&sandbox, &project, "Node package")?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            ("code", StageStatus::Succeeded),
            ("deps", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    assert!(project.join("package-lock.json").is_file());
    let log = std::fs::read_to_string(
        std::path::Path::new(&report.run_dir).join("artifacts/test/npm.log"),
    )?;
    assert!(log.contains("# pass 1"), "{log}");
    Ok(())
}

#[test]
fn init_on_a_markdown_site_builds_and_checks_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let project = sandbox.path().join("handbook");
    std::fs::create_dir_all(project.join("docs/guide"))?;
    std::fs::write(
        project.join("docs/README.md"),
        "# The `<b>` & handbook\n\n* [Install](guide/install.md#requirements)\n* [Guide](guide/)\n",
    )?;
    std::fs::write(
        project.join("docs/guide/README.md"),
        "# Guide\n\nBack to [the start](../README.md).\n",
    )?;
    std::fs::write(
        project.join("docs/guide/install.md"),
        "# Install\n\n## Requirements\n\nNone.\n",
    )?;
    let (ran, report) = init_check_run(&sandbox, &project, "Markdown site")?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            ("code", StageStatus::Succeeded),
            ("build", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    let site = std::path::Path::new(&report.run_dir).join("artifacts/build/site");
    for page in [
        "index.html",
        "guide/index.html",
        "guide/install.html",
        "style.css",
    ] {
        assert!(site.join(page).is_file(), "{page}");
    }
    Ok(())
}
