//! The hostile-plugin suite: every attack is stopped with a specific message, the host survives,
//! earlier artifacts stay intact and nothing outside the sandbox changes. Files, network and
//! programs here; secrets in [`secrets`]; limits, hooks, terminal text and leftover processes in
//! [`limits`]; where programs run in [`programs`]; the state checks in [`state`].

mod limits;
mod programs;
mod secrets;
mod state;

use std::path::{Path, PathBuf};

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;
use sluice::model::report::StageStatus::{Crashed, Error, Failed, Succeeded};

use crate::support::{
    Listener, Outcome, Pipeline, Ran, Sandbox, Stage, all_succeeded, all_text_under,
    assert_first_stage_intact, plugin, processes_with, refused_before_running, stopped_at, table,
};
use state::*;

#[test]
fn reading_host_files_is_blocked() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (file, canary, to_canary) = host_only_file(&sandbox)?;
    // Only sluice's own environment has this: what `/proc/self/environ` would give away.
    let in_env = unique("canary-env");
    let paths = [
        "/etc/passwd",
        "/out/../../../../../../etc/passwd",
        "/in/../../../etc/passwd",
        "../../../../etc/passwd",
        "/proc/self/environ",
    ]
    .map(str::to_string)
    .into_iter()
    .chain(to_canary);
    for path in paths {
        let run = sandbox.run_pipeline_with_env(
            &Pipeline::three_stage(
                attack("escape")
                    .config("mode", "read")
                    .config("path", path.as_str()),
            ),
            &[("SLUICE_E2E_CANARY", in_env.as_str())],
        )?;
        // State first: what the file holds is in no file, output or log, and the canary file is
        // as it was.
        assert_nowhere(
            sandbox.path(),
            &run.ran,
            &[&canary, &in_env, "root:x:0:"],
            &[&file],
        );
        assert_eq!(std::fs::read_to_string(&file)?, canary);
        assert_stopped(&run, Failed, &["blocked: read", &path])?;
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
        // State first: no host file's digest in any file, output or log.
        let secrets = secrets.each_ref().map(String::as_str);
        assert_nowhere(&sandbox.runs_dir(), &run.ran, &secrets, &[]);
        assert_stopped(&run, Failed, &[&format!("blocked: digest {path}")])?;
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

/// Lines of `text` that name an entry of the host's `/` (`etc`, `usr`, `proc`…), counted once
/// each: three or more is a listing of the host's root.
fn host_root_names_in(text: &str, root: &[String]) -> usize {
    let lines: std::collections::BTreeSet<&str> = text.lines().map(str::trim).collect();
    root.iter()
        .filter(|name| lines.contains(name.as_str()))
        .count()
}

#[test]
fn listing_the_root_is_blocked() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // An entry only the host has, in a host folder outside every mount.
    let only_here = unique("host-only-entry");
    std::fs::create_dir(sandbox.path().join(&only_here))?;
    let root: Vec<String> = std::fs::read_dir("/")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(root.len() >= 3, "the host's / lists {root:?}");
    let folder = sandbox.path().display().to_string();
    let climb = "../".repeat(24);
    for path in [
        "/".to_string(),
        "/out/../../../../../..".to_string(),
        folder.clone(),
        format!("/out/{climb}{}", folder.trim_start_matches('/')),
        format!("{climb}{}", folder.trim_start_matches('/')),
    ] {
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            attack("escape")
                .config("mode", "list")
                .config("path", path.as_str()),
        ))?;
        // State first: no name only the host has reached a file, an output or a log.
        assert_nowhere(sandbox.path(), &run.ran, &[&only_here], &[]);
        let texts = all_text_under(sandbox.path()).into_iter().chain([
            (PathBuf::from("stdout"), run.ran.stdout.clone()),
            (PathBuf::from("stderr"), run.ran.stderr.clone()),
        ]);
        for (file, text) in texts {
            let named = host_root_names_in(&text, &root);
            assert!(
                named < 3,
                "{named} of /'s entries listed in {}",
                file.display()
            );
        }
        assert_stopped(&run, Failed, &[&format!("blocked: list {path}")])?;
    }
    Ok(())
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
    let canary = unique("canary-beside-the-workspace");
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
        // State first: no host file's content in any file, output or log.
        assert_nowhere(&sandbox.runs_dir(), &run.ran, &[&canary, "root:x:0"], &[]);
        assert_stopped(&run, Failed, &[&format!("blocked: read {path}")])?;
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
    // State first: the published input still holds what `code` wrote, by digest.
    let code = &run.stage("code").outputs[0];
    let published = run.run_dir().join(&code.path);
    assert_eq!(std::fs::read_to_string(&published)?, "alpha\n");
    assert_eq!(crate::support::sha256_of(&published)?, code.sha256);
    assert_nowhere(run.run_dir(), &run.ran, &["pwned"], &[]);
    assert_stopped(&run, Failed, &["blocked: write /in/code/a.txt"])?;

    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("ws"))?;
    std::fs::write(sandbox.path().join("ws/README"), "original")?;
    let run = sandbox.run_pipeline(&in_workspace(
        attack("escape")
            .config("mode", "write")
            .config("path", "/workspace/README"),
    ))?;
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("ws/README"))?,
        "original"
    );
    assert_eq!(
        entries_under(&sandbox.path().join("ws")),
        [sandbox.path().join("ws/README")]
    );
    assert_stopped(&run, Failed, &["blocked: write /workspace/README"])?;
    Ok(())
}

#[test]
fn a_symlink_planted_among_outputs_is_refused() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (file, canary, _) = host_only_file(&sandbox)?;
    let passwd = crate::support::sha256_of(Path::new("/etc/passwd"))?;
    // A link to a host file of the test's (and, if that is refused, to /etc/passwd).
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("escape")
            .config("mode", "symlink-output")
            .config("path", &file),
    ))?;
    // State first: the link is gone, nothing was published, neither target's content reached a
    // file, output or log, and both targets are as they were.
    let out = run.run_dir().join("artifacts/attack");
    let left = entries_under(&out);
    assert!(left.is_empty(), "left in {}: {left:?}", out.display());
    assert!(run.stage("attack").outputs.is_empty());
    assert_nowhere(sandbox.path(), &run.ran, &[&canary, "root:x:0:"], &[&file]);
    assert_eq!(std::fs::read_to_string(&file)?, canary);
    assert_eq!(crate::support::sha256_of(Path::new("/etc/passwd"))?, passwd);
    assert_first_stage_intact(&run.report)?;
    // Then what was said: refused, and recorded as a symlink.
    assert!(
        run.stage("attack")
            .denied
            .iter()
            .any(|d| d.contains("`passwd` in its output folder: a symlink")),
        "{}",
        run.describe()
    );
    let (status, message) = (run.stage("attack").status, run.message("attack"));
    assert_ne!(status, Succeeded, "{}", run.describe());
    assert!(
        message.contains("blocked: symlink")
            || message.contains("output `passwd` was refused and deleted: a symlink"),
        "{}",
        run.describe()
    );
    Ok(())
}

#[test]
fn the_environment_is_empty_unless_granted() -> Result<()> {
    let hidden = unique("host-only-value");
    let env = [
        ("SLUICE_CANARY", hidden.as_str()),
        ("GRANTED_VAR", "visible"),
    ];
    for (granted, expected) in [(None, ""), (Some("GRANTED_VAR"), "GRANTED_VAR=visible")] {
        let mut stage = attack("escape").config("mode", "env");
        if let Some(name) = granted {
            stage = stage.allow("env", [name]);
        }
        let sandbox = Sandbox::new()?;
        let run = sandbox.run_pipeline_with_env(&Pipeline::three_stage(stage), &env)?;
        // State first: the ungranted value is in no file, output or log; then what the stage saw.
        assert_nowhere(sandbox.path(), &run.ran, &[&hidden], &[]);
        assert_eq!(run.file("artifacts/attack/env.txt")?, expected);
        run.assert_stages(0, &all_succeeded("attack"));
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
    // State first: neither listener was reached (a late connection gets time to arrive).
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    assert_eq!(
        granted.connections(),
        0,
        "the granted listener saw a connection"
    );
    assert_stopped(
        &run,
        Failed,
        &["blocked: tcp", "sluice denied: socket TcpConnect to"],
    )?;
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
    // State first: neither listener was reached (a late connection gets time to arrive).
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    assert_eq!(
        granted.connections(),
        0,
        "the granted listener saw a connection"
    );
    assert_stopped(
        &run,
        Failed,
        &["blocked: http", "sluice denied: HTTP GET http://127.0.0.1"],
    )?;
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
    // State first: the listener was never reached and nothing was published; refused before
    // anything ran.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    assert_nothing_ran(&run);
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &[
                "stage `attack` imports wasi:http/outgoing-handler@0.2",
                "but `allow.net` is empty",
            ],
        );
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
            .config("args", [&marker]),
    ))?;
    // State first: the program left no mark.
    assert!(!marker.exists(), "the program ran");
    assert_stopped(
        &run,
        Failed,
        &[
            "`touch` is not in this stage's allow.exec (echo)",
            "sluice denied: exec of `touch`",
        ],
    )?;
    Ok(())
}

#[test]
fn a_plugin_importing_process_without_an_exec_grant_is_refused() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("ran");
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .config("program", "touch")
            .config("args", [&marker]),
    ))?;
    // State first: the program left no mark and nothing was published.
    assert!(!marker.exists(), "the program ran");
    assert_nothing_ran(&run);
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &["imports sluice:pipeline/process@0.1.0 but `allow.exec` is empty"],
        );
    Ok(())
}
