//! Granted capabilities work for real: HTTP and TCP to a granted local server, an allowed host
//! program, a granted folder — and `sluice check` shows grants beside imports.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus::{Error, Failed};

use crate::support::{
    Listener, Outcome, Pipeline, Sandbox, Stage, all_succeeded, refused_before_running, stopped_at,
    table,
};

/// Runs `stage` between `code` and `release` in a fresh sandbox.
fn run_between(stage: Stage) -> Result<Outcome> {
    Sandbox::new()?.run_pipeline(&Pipeline::three_stage(stage))
}

/// A stage named `granted` running the built `plugin`.
fn granted(plugin: &str) -> Stage {
    Stage::new("granted", plugin)
}

#[test]
fn http_to_a_granted_server_works() -> Result<()> {
    let server = Listener::start(true)?;
    let addr = server.addr.to_string();
    let run = run_between(
        granted("http-check")
            .allow("net", [addr.as_str()])
            .config("urls", [format!("http://{addr}/health")])
            .config("count", 2)
            .config("interval_ms", 10)
            .config("expect_body", "ok"),
    )?;
    run.assert_stages(0, &all_succeeded("granted"));
    assert_eq!(server.connections(), 2);
    let probes: serde_json::Value =
        serde_json::from_str(&run.file("artifacts/granted/monitor-report.json")?)?;
    assert_eq!(probes.as_array().map(Vec::len), Some(2));
    assert!(probes[0]["healthy"].as_bool().unwrap_or(false), "{probes}");
    assert_eq!(probes[0]["status"], 200);
    Ok(())
}

#[test]
fn an_unhealthy_endpoint_fails_the_monitor() -> Result<()> {
    let server = Listener::start(true)?;
    let addr = server.addr.to_string();
    let run = run_between(
        granted("http-check")
            .allow("net", [addr.as_str()])
            .config("urls", [format!("http://{addr}/")])
            .config("count", 1)
            .config("expect_body", "healthy"),
    )?;
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("granted", Failed))
        .assert_message("granted", &["body does not contain \"healthy\""]);
    Ok(())
}

#[test]
fn tcp_to_a_granted_port_works() -> Result<()> {
    let server = Listener::start(true)?;
    let addr = server.addr.to_string();
    let run = run_between(
        granted("net-probe")
            .allow("net", [addr.as_str()])
            .config("mode", "tcp")
            .config("target", addr.as_str()),
    )?;
    run.assert_stages(0, &all_succeeded("granted"));
    assert_eq!(server.connections(), 1);
    assert!(
        run.file("artifacts/granted/loot.txt")?
            .starts_with("HTTP/1.1 200 OK")
    );
    Ok(())
}

#[test]
fn an_allowed_program_runs_with_a_filtered_environment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = sandbox.run_pipeline_with_env(
        &Pipeline::three_stage(
            granted("exec")
                .allow("exec", ["sh"])
                .allow("env", ["GRANTED_VAR"])
                .config("program", "sh")
                .config(
                    "args",
                    [
                        "-c",
                        "env | sort > ${out}/env.txt; echo built > ${out}/app.bin",
                    ],
                )
                .config("outputs", ["app.bin", "env.txt"]),
        ),
        &[("SLUICE_CANARY", "host-only"), ("GRANTED_VAR", "visible")],
    )?;
    run.assert_stages(0, &all_succeeded("granted"));
    assert_eq!(run.file("artifacts/granted/app.bin")?, "built\n");
    let env = run.file("artifacts/granted/env.txt")?;
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    for name in &names {
        assert!(
            [
                "GRANTED_VAR",
                "HOME",
                "PATH",
                "PWD",
                "SHLVL",
                "_",
                "SLUICE_OUT",
                "OLDPWD"
            ]
            .contains(name),
            "unexpected variable {name} in {env}"
        );
    }
    assert!(env.contains("GRANTED_VAR=visible"), "{env}");
    assert!(!env.contains("SLUICE_CANARY"), "{env}");
    let outputs: Vec<&str> = run
        .stage("granted")
        .outputs
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(outputs, ["sh.log", "app.bin", "env.txt"]);
    Ok(())
}

#[test]
fn a_failing_program_fails_the_stage_with_its_stderr() -> Result<()> {
    let run = run_between(
        granted("exec")
            .allow("exec", ["sh"])
            .config("program", "sh")
            .config(
                "args",
                ["-c", "echo compiling; echo 'error: oops' >&2; exit 3"],
            ),
    )?;
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("granted", Failed))
        .assert_message("granted", &["exited with 3: error: oops"]);
    // The program's output was streamed into the stage log.
    let log = run.file("logs/granted.log")?;
    assert!(
        log.contains("compiling") && log.contains("error: oops"),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_hung_program_is_stopped_by_the_stage_timeout() -> Result<()> {
    let started = std::time::Instant::now();
    let run = run_between(
        granted("exec")
            .limit("timeout", "1s")
            .allow("exec", ["sleep"])
            .config("program", "sleep")
            .config("args", ["60"]),
    )?;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("granted", Error))
        .assert_message("granted", &["exceeded its 1s timeout"]);
    Ok(())
}

#[test]
fn a_granted_dir_is_readable_at_its_guest_path() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("data"))?;
    std::fs::write(sandbox.path().join("data/file.txt"), "granted content")?;
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        granted("escape")
            .allow("dirs", [table([("host", "data"), ("guest", "/data")])])
            .config("mode", "read")
            .config("path", "/data/file.txt"),
    ))?;
    run.assert_stages(0, &all_succeeded("granted"));
    assert_eq!(run.file("artifacts/granted/loot.txt")?, "granted content");
    Ok(())
}

#[test]
fn a_missing_granted_dir_is_an_error_before_running() -> Result<()> {
    let run = run_between(
        granted("escape")
            .allow("dirs", [table([("host", "nope"), ("guest", "/data")])])
            .config("mode", "env"),
    )?;
    run.assert_stages(exit_codes::STAGE_ERROR, &refused_before_running("granted"))
        .assert_message("granted", &["granted dir", "does not exist"]);
    Ok(())
}

#[test]
fn check_lists_grants_and_imports_and_names_what_is_missing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = sandbox.write(&Pipeline::around([
        Stage::new("deploy", "http-check").config("urls", Vec::<&str>::new()),
        Stage::new("build", "exec")
            .allow("exec", ["cargo"])
            .allow("workspace", "read")
            .config("program", "cargo"),
    ]))?;
    sandbox
        .sluice(&["check", &pipeline.display().to_string()])?
        .assert_exit(exit_codes::STAGE_ERROR)
        .assert_stdout(&[
            "stage `deploy` imports wasi:http/outgoing-handler@0.2",
            "but `allow.net` is empty",
            "grants  exec: cargo",
            "grants  workspace: read at /workspace",
            "imports sluice:pipeline/process@0.1.0",
        ]);
    Ok(())
}
