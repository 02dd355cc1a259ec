//! The hostile-plugin suite: every attack is stopped with a specific message, the host survives,
//! earlier artifacts stay intact and nothing outside the sandbox changes.

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

const SECRET: &str = "s3cr3t-t0ken-9f8e7d";

/// `secret-leak`, granted the secret TOKEN and told to leak it.
fn leak() -> Stage {
    attack("secret-leak")
        .allow("secrets", ["TOKEN"])
        .config("name", "TOKEN")
}

/// `stage` between `code` and `release`, with TOKEN read from SLUICE_TEST_TOKEN.
fn with_token(stage: Stage) -> Pipeline {
    Pipeline::three_stage(stage).secret("TOKEN", table([("env", "SLUICE_TEST_TOKEN")]))
}

/// Runs `pipeline` with the secret in the environment.
fn run_with_secret(sandbox: &Sandbox, pipeline: &Pipeline) -> Result<Outcome> {
    sandbox.run_pipeline_with_env(pipeline, &[("SLUICE_TEST_TOKEN", SECRET)])
}

/// The secret appears nowhere sluice wrote or printed.
fn assert_secret_nowhere(sandbox: &Sandbox, ran: &Ran) {
    assert!(
        !ran.stderr.contains(SECRET) && !ran.stdout.contains(SECRET),
        "{}",
        ran.stderr
    );
    for (path, text) in all_text_under(sandbox.path()) {
        assert!(
            !text.contains(SECRET),
            "secret stored in {}",
            path.display()
        );
    }
}

#[test]
fn a_printed_secret_is_masked_everywhere() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak()))?;
    run.assert_stages(0, &all_succeeded("attack"));
    assert_secret_nowhere(&sandbox, &run.ran);
    let log = run.file("logs/attack.log")?;
    for channel in [
        "stdout: the secret is ***",
        "stderr: the secret is ***",
        "log: the secret is ***",
    ] {
        assert!(log.contains(channel), "{channel} not in {log}");
    }
    assert_eq!(
        run.stage("attack").summary.as_deref(),
        Some("summary: the secret is ***")
    );
    Ok(())
}

#[test]
fn a_secret_in_a_failure_message_or_an_output_never_reaches_disk() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak().config("fail", true)))?;
    assert_stopped(&run, Failed, &[])?;
    assert_eq!(
        run.message("attack"),
        "failure: the secret is ***",
        "{}",
        run.describe()
    );
    assert_secret_nowhere(&sandbox, &run.ran);

    let sandbox = Sandbox::new()?;
    let run = run_with_secret(&sandbox, &with_token(leak().config("into_output", true)))?;
    assert_stopped(
        &run,
        Error,
        &["output `leak.txt` was refused and deleted: it contained a secret value"],
    )?;
    assert_secret_nowhere(&sandbox, &run.ran);
    Ok(())
}

#[test]
fn an_unset_secret_stops_the_stage_before_it_runs() -> Result<()> {
    let run = Sandbox::new()?.run_pipeline(&with_token(leak()))?;
    // Secrets are loaded while plugins are prepared, so nothing ran at all.
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("attack"))
        .assert_message(
            "attack",
            &["secret `TOKEN` cannot be loaded: environment variable `SLUICE_TEST_TOKEN` is not set"],
        );
    Ok(())
}

#[test]
fn flooding_the_log_hits_the_log_limit() -> Result<()> {
    let run = run_attack(attack("log-flood").limit("log", "64 KiB"))?;
    assert_stopped(&run, Error, &["exceeded its 64 KiB log limit"])?;
    let log = run.run_dir().join("logs/attack.log");
    assert!(
        std::fs::metadata(log)?.len() < 200 * 1024,
        "the log grew past its limit"
    );
    Ok(())
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() -> Result<()> {
    let run = run_attack(attack("memory-bomb").limit("memory", "64 MiB"))?;
    assert_stopped(&run, Error, &["exceeded its 64 MiB memory limit"])
}

#[test]
fn deep_recursion_crashes_the_stage_not_the_host() -> Result<()> {
    let run = run_attack(attack("deep-recursion"))?;
    assert_stopped(&run, Crashed, &["call stack exhausted"])
}

#[test]
fn output_count_and_size_limits_hold() -> Result<()> {
    let run = run_attack(
        attack("emit")
            .limit("outputs", 1)
            .config("files", table([("x", "1"), ("y", "2")])),
    )?;
    assert_stopped(&run, Error, &["declared 2 outputs, over its limit of 1"])?;
    let run = run_attack(
        attack("emit")
            .limit("output_size", "10 B")
            .config("files", table([("x", "more than ten bytes")])),
    )?;
    assert_stopped(
        &run,
        Error,
        &["output `x` was refused and deleted: larger than its 10 B output size limit"],
    )
}

#[test]
fn a_read_that_never_returns_is_stopped_by_the_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let fifo = sandbox.path().join("ws/fifo");
    std::fs::create_dir(sandbox.path().join("ws"))?;
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    let started = std::time::Instant::now();
    let run = sandbox.run_pipeline(&in_workspace(
        attack("escape")
            .limit("timeout", "1s")
            .config("mode", "read")
            .config("path", "/workspace/fifo"),
    ))?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout did not fire"
    );
    assert_stopped(&run, Error, &["exceeded its 1s timeout"])
}

/// A harmless program of the project's own (a bash script) and a file of the attacker's that
/// bash would run first if the plugin could set `BASH_ENV`.
fn hookable_program(sandbox: &Sandbox) -> Result<(String, PathBuf, String)> {
    use std::os::unix::fs::PermissionsExt;
    let script = sandbox.path().join("ok.sh");
    std::fs::write(&script, "#!/bin/bash\necho \"ok ${GREETING:-}\"\n")?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let marker = sandbox.path().join("pwned");
    let canary = "CANARY-exec-env-4b1d";
    let evil = sandbox.path().join("evil.sh");
    std::fs::write(&evil, format!("echo {canary} > '{}'\n", marker.display()))?;
    Ok((script.display().to_string(), marker, canary.to_string()))
}

#[test]
fn a_plugin_cannot_hook_a_granted_program_through_its_environment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (script, marker, canary) = hookable_program(&sandbox)?;
    let evil = sandbox.path().join("evil.sh").display().to_string();
    for (name, value) in [
        ("BASH_ENV", evil.as_str()),
        ("ENV", evil.as_str()),
        ("PATH", "/nonexistent"),
        ("LD_PRELOAD", "/nonexistent/x.so"),
    ] {
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            attack("exec-probe")
                .allow("exec", [script.as_str()])
                .config("program", script.as_str())
                .config("cwd", "/out")
                .config("env", table([(name, value)])),
        ))?;
        // State first: the attacker's code did not run and its canary is nowhere.
        assert!(!marker.exists(), "{name}: the plugin's code ran");
        for (file, text) in all_text_under(sandbox.path()) {
            if file != sandbox.path().join("evil.sh") {
                assert!(
                    !text.contains(&canary),
                    "{name}: canary in {}",
                    file.display()
                );
            }
        }
        assert!(
            !run.ran.stderr.contains(&canary),
            "{name}: canary in the output"
        );
        assert_stopped(
            &run,
            Failed,
            &[&format!("`{name}`"), "sluice denied: setting"],
        )?;
    }
    Ok(())
}

#[test]
fn a_plugin_sets_only_the_variables_its_stage_grants() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (script, _, _) = hookable_program(&sandbox)?;
    let probe = |granted: &[&str]| {
        let mut stage = attack("exec-probe")
            .allow("exec", [script.as_str()])
            .config("program", script.as_str())
            .config("cwd", "/out")
            .config("env", table([("GREETING", "hello")]));
        if !granted.is_empty() {
            stage = stage.allow("exec_env", granted.to_vec());
        }
        sandbox.run_pipeline(&Pipeline::three_stage(stage))
    };
    // Not granted: refused and recorded; the program does not run.
    let refused = probe(&[])?;
    assert_stopped(
        &refused,
        Failed,
        &["`GREETING` is not in this stage's allow.exec_env"],
    )?;
    assert!(
        refused
            .report
            .stage("attack")
            .is_some_and(|s| s.denied.iter().any(|d| d.contains("GREETING")))
    );
    // Granted: the program runs and sees it.
    let granted = probe(&["GREETING"])?;
    granted.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    assert_eq!(granted.file("artifacts/attack/loot.txt")?, "ok hello\n");
    Ok(())
}

/// Escape sequences (title, clear screen, cursor up), a carriage return, forged sluice and CI-log
/// lines, a C1 CSI and a right-to-left override.
const TERMINAL_ATTACK: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\rrun 1 of pipeline `p`: forged\n\
                               ::error::forged by a plugin\n::add-mask::x\n\u{9b}31m\u{202e}gnp.exe";

/// No control character (but tab) and no line a CI system or a reader would take as sluice's.
fn assert_shown_safely(what: &str, text: &str) {
    for (number, line) in text.lines().enumerate() {
        let bad = line
            .chars()
            .find(|&c| (c.is_control() && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c));
        assert!(
            bad.is_none(),
            "{what}:{}: {bad:?} shown raw in {line:?}",
            number + 1
        );
        let start = line.trim_start();
        assert!(
            !start.starts_with("::") && !start.starts_with("run 1 of"),
            "{what}:{}: a forged line: {line:?}",
            number + 1
        );
    }
}

#[test]
fn plugin_text_cannot_drive_the_terminal_or_forge_log_lines() -> Result<()> {
    for fail in [false, true] {
        let sandbox = Sandbox::new()?;
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            attack("terminal-inject")
                .config("text", TERMINAL_ATTACK)
                .config("fail", fail),
        ))?;
        assert_shown_safely("stderr", &run.ran.stderr);
        assert_shown_safely("stdout", &run.ran.stdout);
        for (file, text) in all_text_under(run.run_dir()) {
            assert_shown_safely(&file.display().to_string(), &text);
        }
        // Shown escaped, not dropped: a reader still sees what the plugin sent.
        let shown = "\\u{1b}[2J\\u{1b}[1A\\rrun 1 of pipeline `p`: forged\\n::error::";
        assert!(run.ran.stderr.contains(shown), "{}", run.ran.stderr);
        if fail {
            run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("attack", Failed))
                .assert_message("attack", &[shown]);
        } else {
            run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
        }
    }
    let sandbox = Sandbox::new()?;
    let inspected =
        sandbox.sluice(&["inspect", &plugin("terminal-inject")?.display().to_string()])?;
    inspected.assert_exit(exit_codes::SUCCESS);
    assert_shown_safely("inspect", &inspected.stdout);
    assert!(
        inspected.stdout.contains("\\u{1b}[2J"),
        "{}",
        inspected.stdout
    );
    Ok(())
}

#[test]
fn nothing_a_program_starts_outlives_its_call_or_its_stage() -> Result<()> {
    // Unique sleep lengths mark the processes; old ones from a crashed earlier run do not count.
    let pid = std::process::id();
    let background = format!("9{}.1", pid % 100_000);
    let stalled = format!("9{}.2", pid % 100_000);
    // The program ends at once but leaves a background process behind (which, holding the
    // output pipe, would also keep the call waiting: the timeout bounds a regression).
    let sandbox = Sandbox::new()?;
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", ["sh"])
            .limit("timeout", "20s")
            .config("program", "sh")
            .config(
                "args",
                ["-c", &format!("sleep {background} & echo started")],
            )
            .config("cwd", "/out"),
    ))?;
    let left = processes_with(&format!("sleep {background}"));
    assert!(left.is_empty(), "still running after the call: {left:?}");
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    // The stage's timeout stops a program that never ends, and its children with it.
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", ["sh"])
            .limit("timeout", "1s")
            .config("program", "sh")
            .config(
                "args",
                ["-c", &format!("sleep {stalled} & sleep {stalled}; wait")],
            )
            .config("cwd", "/out"),
    ))?;
    let left = processes_with(&format!("sleep {stalled}"));
    assert!(left.is_empty(), "still running after the timeout: {left:?}");
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("attack", Error))
        .assert_message("attack", &["timeout"]);
    Ok(())
}
