//! The hostile-plugin suite: every attack is stopped with a specific message, the host survives,
//! earlier artifacts stay intact and nothing outside the sandbox changes.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::{RunReport, StageStatus};

use crate::support::{
    Listener, Sandbox, all_text_under, assert_first_stage_intact, stage_outcome, statuses,
    three_stage, three_stage_with,
};

/// Runs `plugin` as the middle stage with `extra` TOML lines (config, allow, limits).
fn attack(
    sandbox: &Sandbox,
    plugin: &str,
    extra: &str,
) -> Result<(crate::support::Ran, RunReport)> {
    let pipeline = three_stage(
        sandbox,
        &format!("[[stage]]\nname = \"attack\"\nplugin = \"{{plugin:{plugin}}}\"\n{extra}\n"),
    )?;
    sandbox.run(&pipeline)
}

/// The attack stage ended with `status`, its message has `expected`, the next stage was skipped,
/// the first stage's artifacts are intact and no loot was published.
fn assert_stopped(report: &RunReport, status: StageStatus, expected: &[&str]) -> Result<()> {
    let (actual, message) = stage_outcome(report, "attack");
    assert_eq!(actual, status, "{message}");
    for part in expected {
        assert!(message.contains(part), "`{part}` not in: {message}");
    }
    assert_eq!(
        statuses(report),
        [StageStatus::Succeeded, status, StageStatus::Skipped]
    );
    assert_first_stage_intact(report)?;
    let loot = std::path::Path::new(&report.run_dir).join("artifacts/attack/loot.txt");
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
        let sandbox = Sandbox::new()?;
        let (ran, report) = attack(
            &sandbox,
            "escape",
            &format!("[stage.config]\nmode = \"read\"\npath = \"{path}\""),
        )?;
        assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{path}: {}", ran.stderr);
        assert_stopped(&report, StageStatus::Failed, &["blocked: read", path])?;
    }
    Ok(())
}

#[test]
fn listing_the_root_is_blocked() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (_, report) = attack(
        &sandbox,
        "escape",
        "[stage.config]\nmode = \"list\"\npath = \"/\"",
    )?;
    assert_stopped(&report, StageStatus::Failed, &["blocked: list /"])
}

#[test]
fn a_symlink_in_the_workspace_does_not_lead_out() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let workspace = sandbox.path().join("ws");
    std::fs::create_dir(&workspace)?;
    std::os::unix::fs::symlink("/etc/passwd", workspace.join("evil"))?;
    std::os::unix::fs::symlink("../../", workspace.join("up"))?;
    let pipeline = three_stage_with(
        &sandbox,
        "workspace = \"ws\"",
        "[[stage]]\nname = \"attack\"\nplugin = \"{plugin:escape}\"\n[stage.allow]\nworkspace = \"read\"\n[stage.config]\nmode = \"read\"\npath = \"/workspace/evil\"\n",
    )?;
    let (_, report) = sandbox.run(&pipeline)?;
    assert_stopped(
        &report,
        StageStatus::Failed,
        &["blocked: read /workspace/evil"],
    )?;
    // The same through a directory link that climbs out.
    let text =
        std::fs::read_to_string(&pipeline)?.replace("/workspace/evil", "/workspace/up/etc/passwd");
    std::fs::write(&pipeline, text)?;
    let (_, report) = sandbox.run(&pipeline)?;
    assert_stopped(
        &report,
        StageStatus::Failed,
        &["blocked: read /workspace/up/etc/passwd"],
    )
}

#[test]
fn inputs_and_a_read_only_workspace_cannot_be_written() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (_, report) = attack(
        &sandbox,
        "escape",
        "[stage.config]\nmode = \"write\"\npath = \"/in/code/a.txt\"",
    )?;
    assert_stopped(
        &report,
        StageStatus::Failed,
        &["blocked: write /in/code/a.txt"],
    )?;

    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("ws"))?;
    std::fs::write(sandbox.path().join("ws/README"), "original")?;
    let pipeline = three_stage_with(
        &sandbox,
        "workspace = \"ws\"",
        "[[stage]]\nname = \"attack\"\nplugin = \"{plugin:escape}\"\n[stage.allow]\nworkspace = \"read\"\n[stage.config]\nmode = \"write\"\npath = \"/workspace/README\"\n",
    )?;
    let (_, report) = sandbox.run(&pipeline)?;
    assert_stopped(
        &report,
        StageStatus::Failed,
        &["blocked: write /workspace/README"],
    )?;
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("ws/README"))?,
        "original"
    );
    Ok(())
}

#[test]
fn a_symlink_planted_among_outputs_is_refused() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(
        &sandbox,
        "escape",
        "[stage.config]\nmode = \"symlink-output\"\npath = \"/etc/passwd\"",
    )?;
    let (status, message) = stage_outcome(&report, "attack");
    assert_ne!(status, StageStatus::Succeeded, "{message}");
    assert!(
        message.contains("blocked: symlink") || message.contains("not a regular file"),
        "{message}\n{}",
        ran.stderr
    );
    assert_first_stage_intact(&report)?;
    assert!(report.stage("attack").is_some_and(|s| s.outputs.is_empty()));
    Ok(())
}

#[test]
fn the_environment_is_empty_unless_granted() -> Result<()> {
    let env = [
        ("SLUICE_CANARY", "host-only-value"),
        ("GRANTED_VAR", "visible"),
    ];
    for (allow, expected) in [
        ("", ""),
        (
            "[stage.allow]\nenv = [\"GRANTED_VAR\"]\n",
            "GRANTED_VAR=visible",
        ),
    ] {
        let sandbox = Sandbox::new()?;
        let pipeline = three_stage(
            &sandbox,
            &format!(
                "[[stage]]\nname = \"attack\"\nplugin = \"{{plugin:escape}}\"\n{allow}[stage.config]\nmode = \"env\"\n"
            ),
        )?;
        let (ran, report) = sandbox.run_with_env(&pipeline, &env)?;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let seen = std::fs::read_to_string(
            std::path::Path::new(&report.run_dir).join("artifacts/attack/env.txt"),
        )?;
        assert_eq!(seen, expected);
    }
    Ok(())
}

#[test]
fn tcp_to_a_port_not_granted_never_connects() -> Result<()> {
    let listener = Listener::start(false)?;
    let granted = Listener::start(false)?;
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(
        &sandbox,
        "net-probe",
        &format!(
            "[stage.allow]\nnet = [\"{}\"]\n[stage.config]\nmode = \"tcp\"\ntarget = \"{}\"",
            granted.addr, listener.addr
        ),
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    assert_stopped(
        &report,
        StageStatus::Failed,
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
    let sandbox = Sandbox::new()?;
    let (_, report) = attack(
        &sandbox,
        "net-probe",
        &format!(
            "[stage.allow]\nnet = [\"{}\"]\n[stage.config]\nmode = \"http\"\ntarget = \"http://{}/\"",
            granted.addr, listener.addr
        ),
    )?;
    assert_stopped(
        &report,
        StageStatus::Failed,
        &["blocked: http", "sluice denied: HTTP GET http://127.0.0.1"],
    )?;
    assert_eq!(listener.connections(), 0, "the listener saw a connection");
    let denied = &report
        .stage("attack")
        .map(|s| s.denied.clone())
        .unwrap_or_default();
    assert_eq!(denied.len(), 1, "{denied:?}");
    Ok(())
}

#[test]
fn a_plugin_importing_http_without_a_net_grant_is_refused_before_running() -> Result<()> {
    let listener = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(
        &sandbox,
        "net-probe",
        &format!(
            "[stage.config]\nmode = \"http\"\ntarget = \"http://{}/\"",
            listener.addr
        ),
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    let (status, message) = stage_outcome(&report, "attack");
    assert_eq!(status, StageStatus::Error);
    assert!(
        message.contains("stage `attack` imports wasi:http/outgoing-handler@0.2")
            && message.contains("but `allow.net` is empty"),
        "{message}"
    );
    // Refused before anything ran.
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Skipped,
            StageStatus::Error,
            StageStatus::Skipped
        ]
    );
    assert_eq!(listener.connections(), 0);
    Ok(())
}

#[test]
fn a_program_not_in_exec_is_not_run() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("ran");
    let (_, report) = attack(
        &sandbox,
        "exec-probe",
        &format!(
            "[stage.allow]\nexec = [\"echo\"]\n[stage.config]\nprogram = \"touch\"\nargs = [\"{}\"]\ncwd = \"/out\"",
            marker.display()
        ),
    )?;
    assert_stopped(
        &report,
        StageStatus::Failed,
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
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(&sandbox, "exec-probe", "[stage.config]\nprogram = \"echo\"")?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    let (_, message) = stage_outcome(&report, "attack");
    assert!(
        message.contains("imports sluice:pipeline/process@0.1.0 but `allow.exec` is empty"),
        "{message}"
    );
    Ok(())
}

const SECRET: &str = "s3cr3t-t0ken-9f8e7d";

fn secret_pipeline(sandbox: &Sandbox, config: &str) -> Result<std::path::PathBuf> {
    three_stage_with(
        sandbox,
        "[secrets]\nTOKEN = { env = \"SLUICE_TEST_TOKEN\" }",
        &format!(
            "[[stage]]\nname = \"attack\"\nplugin = \"{{plugin:secret-leak}}\"\n[stage.allow]\nsecrets = [\"TOKEN\"]\n[stage.config]\nname = \"TOKEN\"\n{config}\n"
        ),
    )
}

/// The secret appears nowhere sluice wrote or printed.
fn assert_secret_nowhere(sandbox: &Sandbox, ran: &crate::support::Ran) {
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
    let pipeline = secret_pipeline(&sandbox, "")?;
    let (ran, report) = sandbox.run_with_env(&pipeline, &[("SLUICE_TEST_TOKEN", SECRET)])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_secret_nowhere(&sandbox, &ran);
    let log =
        std::fs::read_to_string(std::path::Path::new(&report.run_dir).join("logs/attack.log"))?;
    for channel in [
        "stdout: the secret is ***",
        "stderr: the secret is ***",
        "log: the secret is ***",
    ] {
        assert!(log.contains(channel), "{channel} not in {log}");
    }
    let summary = report
        .stage("attack")
        .and_then(|s| s.summary.clone())
        .unwrap_or_default();
    assert_eq!(summary, "summary: the secret is ***");
    Ok(())
}

#[test]
fn a_secret_in_a_failure_message_or_an_output_never_reaches_disk() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = secret_pipeline(&sandbox, "fail = true")?;
    let (ran, report) = sandbox.run_with_env(&pipeline, &[("SLUICE_TEST_TOKEN", SECRET)])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED);
    let (_, message) = stage_outcome(&report, "attack");
    assert_eq!(message, "failure: the secret is ***");
    assert_secret_nowhere(&sandbox, &ran);

    let sandbox = Sandbox::new()?;
    let pipeline = secret_pipeline(&sandbox, "into_output = true")?;
    let (ran, report) = sandbox.run_with_env(&pipeline, &[("SLUICE_TEST_TOKEN", SECRET)])?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR);
    assert_stopped(
        &report,
        StageStatus::Error,
        &[
            "output `leak.txt` contains the value of a secret",
            "deleted",
        ],
    )?;
    assert_secret_nowhere(&sandbox, &ran);
    Ok(())
}

#[test]
fn an_unset_secret_stops_the_stage_before_it_runs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = secret_pipeline(&sandbox, "")?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR);
    let (_, message) = stage_outcome(&report, "attack");
    assert!(
        message.contains(
            "secret `TOKEN` cannot be loaded: environment variable `SLUICE_TEST_TOKEN` is not set"
        ),
        "{message}"
    );
    Ok(())
}

#[test]
fn flooding_the_log_hits_the_log_limit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(&sandbox, "log-flood", "limits = { log = \"64 KiB\" }")?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_stopped(
        &report,
        StageStatus::Error,
        &["exceeded its 64 KiB log limit"],
    )?;
    let log = std::path::Path::new(&report.run_dir).join("logs/attack.log");
    assert!(
        std::fs::metadata(log)?.len() < 200 * 1024,
        "the log grew past its limit"
    );
    Ok(())
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(&sandbox, "memory-bomb", "limits = { memory = \"64 MiB\" }")?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_stopped(
        &report,
        StageStatus::Error,
        &["exceeded its 64 MiB memory limit"],
    )
}

#[test]
fn deep_recursion_crashes_the_stage_not_the_host() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = attack(&sandbox, "deep-recursion", "")?;
    assert_eq!(ran.code, exit_codes::STAGE_CRASHED, "{}", ran.stderr);
    assert_stopped(&report, StageStatus::Crashed, &["call stack exhausted"])
}

#[test]
fn output_count_and_size_limits_hold() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (_, report) = attack(
        &sandbox,
        "emit",
        "limits = { outputs = 1 }\n[stage.config.files]\n\"x\" = \"1\"\n\"y\" = \"2\"",
    )?;
    assert_stopped(
        &report,
        StageStatus::Error,
        &["declared 2 outputs, over its limit of 1"],
    )?;
    let sandbox = Sandbox::new()?;
    let (_, report) = attack(
        &sandbox,
        "emit",
        "limits = { output_size = \"10 B\" }\n[stage.config.files]\n\"x\" = \"more than ten bytes\"",
    )?;
    assert_stopped(
        &report,
        StageStatus::Error,
        &["wrote more than its 10 B output size limit"],
    )
}

#[test]
fn a_read_that_never_returns_is_stopped_by_the_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let workspace = sandbox.path().join("ws");
    std::fs::create_dir(&workspace)?;
    let fifo = workspace.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    let pipeline = three_stage_with(
        &sandbox,
        "workspace = \"ws\"",
        "[[stage]]\nname = \"attack\"\nplugin = \"{plugin:escape}\"\nlimits = { timeout = \"1s\" }\n[stage.allow]\nworkspace = \"read\"\n[stage.config]\nmode = \"read\"\npath = \"/workspace/fifo\"\n",
    )?;
    let started = std::time::Instant::now();
    let (ran, report) = sandbox.run(&pipeline)?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout did not fire"
    );
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert_stopped(&report, StageStatus::Error, &["exceeded its 1s timeout"])
}
