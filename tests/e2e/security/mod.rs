//! The hostile-plugin suite: every attack is stopped with a specific message, the host survives,
//! earlier artifacts stay intact and nothing outside the sandbox changes. Files, network and
//! programs here; secrets in [`secrets`]; limits, hooks, terminal text and leftover processes in
//! [`limits`].

mod limits;
mod secrets;

use std::path::PathBuf;

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;
use sluice::model::report::StageStatus::{Crashed, Error, Failed, Succeeded};

use crate::support::{
    Listener, Outcome, Pipeline, Ran, Sandbox, Stage, all_succeeded, all_text_under,
    assert_first_stage_intact, plugin, processes_with, refused_before_running, stopped_at, table,
};

/// A stage named `attack` running the built `plugin`.
fn attack(plugin: &str) -> Stage {
    Stage::new("attack", plugin)
}

/// Runs `stage` between `code` and `release` in a fresh sandbox.
fn run_attack(stage: Stage) -> Result<Outcome> {
    Sandbox::new()?.run_pipeline(&Pipeline::three_stage(stage))
}

/// The attack stage ended with `status` (and the run with its exit code), its message has
/// `expected`, the next stage was skipped, the first stage's artifacts are intact and no loot was
/// published.
fn assert_stopped(run: &Outcome, status: StageStatus, expected: &[&str]) -> Result<()> {
    let exit_code = match status {
        Failed => exit_codes::STAGE_FAILED,
        Crashed => exit_codes::STAGE_CRASHED,
        Error => exit_codes::STAGE_ERROR,
        other => unreachable!("an attack does not end {other:?}"),
    };
    run.assert_stages(exit_code, &stopped_at("attack", status))
        .assert_message("attack", expected);
    assert_first_stage_intact(&run.report)?;
    let loot = run.run_dir().join("artifacts/attack/loot.txt");
    assert!(!loot.exists(), "the attack published loot");
    Ok(())
}

#[test]
fn reading_host_files_is_blocked() -> Result<()> {
    for path in [
        "/etc/passwd",
        "/out/../../../../../../etc/passwd",
        "/in/../../../etc/passwd",
        "../../../../etc/passwd",
        "/proc/self/environ",
    ] {
        let run = run_attack(attack("escape").config("mode", "read").config("path", path))?;
        assert_stopped(&run, Failed, &["blocked: read", path])?;
    }
    Ok(())
}

#[test]
fn the_digest_import_hashes_only_files_inside_the_stages_mounts() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let workspace = sandbox.path().join("ws");
    std::fs::create_dir(&workspace)?;
    let canary = sandbox.path().join("canary.txt");
    std::fs::write(&canary, format!("canary-{}", std::process::id()))?;
    std::fs::write(workspace.join("inside.txt"), "mine\n")?;
    std::os::unix::fs::symlink("/etc/passwd", workspace.join("evil"))?;
    std::os::unix::fs::symlink("../canary.txt", workspace.join("beside"))?;
    let to_root = "../".repeat(workspace.components().count() - 1);
    std::os::unix::fs::symlink(&to_root, workspace.join("up"))?;
    // What a successful escape would reveal: these files' digests.
    let secrets = [
        crate::support::sha256_of(std::path::Path::new("/etc/passwd"))?,
        crate::support::sha256_of(&canary)?,
    ];
    for path in [
        "/etc/passwd",
        "/out/../../../../etc/passwd",
        "/workspace/../canary.txt",
        "/workspace/evil",
        "/workspace/beside",
        "/workspace/up/etc/passwd",
        "/proc/self/environ",
    ] {
        let run = sandbox.run_pipeline(&in_workspace(
            attack("escape")
                .config("mode", "digest")
                .config("path", path),
        ))?;
        assert_stopped(&run, Failed, &[&format!("blocked: digest {path}")])?;
        for digest in &secrets {
            assert!(
                !run.ran.stdout.contains(digest.as_str())
                    && !run.ran.stderr.contains(digest.as_str())
            );
            for (file, text) in all_text_under(&sandbox.runs_dir()) {
                assert!(
                    !text.contains(digest.as_str()),
                    "a host file's digest in {}",
                    file.display()
                );
            }
        }
    }
    // The same import on a file of its own workspace works, and tells the truth.
    let run = sandbox.run_pipeline(&in_workspace(
        attack("escape")
            .config("mode", "digest")
            .config("path", "/workspace/inside.txt"),
    ))?;
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    assert_eq!(
        run.file("artifacts/attack/loot.txt")?,
        crate::support::sha256_of(&workspace.join("inside.txt"))?
    );
    Ok(())
}

#[test]
fn listing_the_root_is_blocked() -> Result<()> {
    let run = run_attack(attack("escape").config("mode", "list").config("path", "/"))?;
    assert_stopped(&run, Failed, &["blocked: list /"])
}

/// A pipeline whose workspace is the sandbox's `ws` folder and whose attack stage may read it.
fn in_workspace(stage: Stage) -> Pipeline {
    Pipeline::three_stage(stage.allow("workspace", "read")).set("workspace", "ws")
}

#[test]
fn a_symlink_in_the_workspace_does_not_lead_out() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let workspace = sandbox.path().join("ws");
    std::fs::create_dir(&workspace)?;
    let canary = format!("canary-beside-the-workspace-{}", std::process::id());
    std::fs::write(sandbox.path().join("canary.txt"), &canary)?;
    // Every target exists on the host, so only the sandbox can stop the reads.
    std::os::unix::fs::symlink("/etc/passwd", workspace.join("evil"))?;
    std::os::unix::fs::symlink("../canary.txt", workspace.join("beside"))?;
    let to_root = "../".repeat(workspace.components().count() - 1);
    assert!(workspace.join(&to_root).join("etc/passwd").is_file());
    std::os::unix::fs::symlink(&to_root, workspace.join("up"))?;
    // A file link out, a file link to a sibling, then a directory link that climbs to `/`.
    for path in [
        "/workspace/evil",
        "/workspace/beside",
        "/workspace/up/etc/passwd",
    ] {
        let run = sandbox.run_pipeline(&in_workspace(
            attack("escape").config("mode", "read").config("path", path),
        ))?;
        assert_stopped(&run, Failed, &[&format!("blocked: read {path}")])?;
        for text in [&run.ran.stdout, &run.ran.stderr] {
            assert!(!text.contains(&canary) && !text.contains("root:x:0"));
        }
        for (file, text) in all_text_under(&sandbox.runs_dir()) {
            assert!(
                !text.contains(&canary) && !text.contains("root:x:0"),
                "host file content in {}",
                file.display()
            );
        }
    }
    Ok(())
}

#[test]
fn inputs_and_a_read_only_workspace_cannot_be_written() -> Result<()> {
    let run = run_attack(
        attack("escape")
            .config("mode", "write")
            .config("path", "/in/code/a.txt"),
    )?;
    assert_stopped(&run, Failed, &["blocked: write /in/code/a.txt"])?;

    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("ws"))?;
    std::fs::write(sandbox.path().join("ws/README"), "original")?;
    let run = sandbox.run_pipeline(&in_workspace(
        attack("escape")
            .config("mode", "write")
            .config("path", "/workspace/README"),
    ))?;
    assert_stopped(&run, Failed, &["blocked: write /workspace/README"])?;
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("ws/README"))?,
        "original"
    );
    Ok(())
}

#[test]
fn a_symlink_planted_among_outputs_is_refused() -> Result<()> {
    let run = run_attack(
        attack("escape")
            .config("mode", "symlink-output")
            .config("path", "/etc/passwd"),
    )?;
    let (status, message) = (run.stage("attack").status, run.message("attack"));
    assert_ne!(status, Succeeded, "{}", run.describe());
    assert!(
        message.contains("blocked: symlink")
            || message.contains("output `passwd` was refused and deleted: a symlink"),
        "{}",
        run.describe()
    );
    assert_first_stage_intact(&run.report)?;
    assert!(run.stage("attack").outputs.is_empty());
    // The link itself is gone, and said so.
    let out = run.run_dir().join("artifacts/attack");
    assert!(
        std::fs::read_dir(&out)?.next().is_none(),
        "left in {}",
        out.display()
    );
    assert!(
        run.stage("attack")
            .denied
            .iter()
            .any(|d| d.contains("`passwd` in its output folder: a symlink")),
        "{}",
        run.describe()
    );
    Ok(())
}

#[test]
fn the_environment_is_empty_unless_granted() -> Result<()> {
    let env = [
        ("SLUICE_CANARY", "host-only-value"),
        ("GRANTED_VAR", "visible"),
    ];
    for (granted, expected) in [(None, ""), (Some("GRANTED_VAR"), "GRANTED_VAR=visible")] {
        let mut stage = attack("escape").config("mode", "env");
        if let Some(name) = granted {
            stage = stage.allow("env", [name]);
        }
        let run = Sandbox::new()?.run_pipeline_with_env(&Pipeline::three_stage(stage), &env)?;
        run.assert_stages(0, &all_succeeded("attack"));
        assert_eq!(run.file("artifacts/attack/env.txt")?, expected);
    }
    Ok(())
}

#[test]
fn tcp_to_a_port_not_granted_never_connects() -> Result<()> {
    let listener = Listener::start(false)?;
    let granted = Listener::start(false)?;
    let run = run_attack(
        attack("net-probe")
            .allow("net", [granted.addr.to_string()])
            .config("mode", "tcp")
            .config("target", listener.addr.to_string()),
    )?;
    assert_stopped(
        &run,
        Failed,
        &["blocked: tcp", "sluice denied: socket TcpConnect to"],
    )?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    Ok(())
}

#[test]
fn http_to_a_host_not_granted_never_connects() -> Result<()> {
    let listener = Listener::start(true)?;
    let granted = Listener::start(true)?;
    let run = run_attack(
        attack("net-probe")
            .allow("net", [granted.addr.to_string()])
            .config("mode", "http")
            .config("target", format!("http://{}/", listener.addr)),
    )?;
    assert_stopped(
        &run,
        Failed,
        &["blocked: http", "sluice denied: HTTP GET http://127.0.0.1"],
    )?;
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    let denied = &run.stage("attack").denied;
    assert_eq!(denied.len(), 1, "{denied:?}");
    Ok(())
}

#[test]
fn a_plugin_importing_http_without_a_net_grant_is_refused_before_running() -> Result<()> {
    let listener = Listener::start(true)?;
    let run = run_attack(
        attack("net-probe")
            .config("mode", "http")
            .config("target", format!("http://{}/", listener.addr)),
    )?;
    // Refused before anything ran.
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &[
                "stage `attack` imports wasi:http/outgoing-handler@0.2",
                "but `allow.net` is empty",
            ],
        );
    assert_eq!(listener.connections(), 0);
    Ok(())
}

#[test]
fn a_program_not_in_exec_is_not_run() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("ran");
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", ["echo"])
            .config("program", "touch")
            .config("args", [&marker])
            .config("cwd", "/out"),
    ))?;
    assert_stopped(
        &run,
        Failed,
        &[
            "`touch` is not in this stage's allow.exec (echo)",
            "sluice denied: exec of `touch`",
        ],
    )?;
    assert!(!marker.exists(), "the program ran");
    Ok(())
}

#[test]
fn a_plugin_importing_process_without_an_exec_grant_is_refused() -> Result<()> {
    let run = run_attack(attack("exec-probe").config("program", "echo"))?;
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &["imports sluice:pipeline/process@0.1.0 but `allow.exec` is empty"],
        );
    Ok(())
}
