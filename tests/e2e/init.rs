//! `sluice init` on a crate fresh from `cargo new`: the pipeline it writes passes `sluice check`
//! and runs green (cargo build and cargo test through the shipped stages it wrote beside it).

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::Sandbox;

#[test]
fn init_on_a_new_rust_crate_checks_and_runs_green() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let made = std::process::Command::new("cargo")
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
