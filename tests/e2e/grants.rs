//! Granted capabilities work for real: HTTP and TCP to a granted local server, an allowed host
//! program, a granted folder — and `sluice check` shows grants beside imports.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Listener, Sandbox, stage_outcome, three_stage, three_stage_with};

fn run_middle(
    sandbox: &Sandbox,
    plugin: &str,
    extra: &str,
) -> Result<(crate::support::Ran, sluice::model::report::RunReport)> {
    let pipeline = three_stage(
        sandbox,
        &format!("[[stage]]\nname = \"granted\"\nplugin = \"{{plugin:{plugin}}}\"\n{extra}\n"),
    )?;
    sandbox.run(&pipeline)
}

fn artifact(report: &sluice::model::report::RunReport, path: &str) -> Result<String> {
    Ok(std::fs::read_to_string(
        std::path::Path::new(&report.run_dir).join(path),
    )?)
}

#[test]
fn http_to_a_granted_server_works() -> Result<()> {
    let server = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let (ran, report) = run_middle(
        &sandbox,
        "http-check",
        &format!(
            "[stage.allow]\nnet = [\"{0}\"]\n[stage.config]\nurls = [\"http://{0}/health\"]\ncount = 2\ninterval_ms = 10\nexpect_body = \"ok\"",
            server.addr
        ),
    )?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(server.connections(), 2);
    let probes: serde_json::Value =
        serde_json::from_str(&artifact(&report, "artifacts/granted/monitor-report.json")?)?;
    assert_eq!(probes.as_array().map(Vec::len), Some(2));
    assert!(probes[0]["healthy"].as_bool().unwrap_or(false), "{probes}");
    assert_eq!(probes[0]["status"], 200);
    Ok(())
}

#[test]
fn an_unhealthy_endpoint_fails_the_monitor() -> Result<()> {
    let server = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let (ran, report) = run_middle(
        &sandbox,
        "http-check",
        &format!(
            "[stage.allow]\nnet = [\"{0}\"]\n[stage.config]\nurls = [\"http://{0}/\"]\ncount = 1\nexpect_body = \"healthy\"",
            server.addr
        ),
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (_, message) = stage_outcome(&report, "granted");
    assert!(
        message.contains("body does not contain \"healthy\""),
        "{message}"
    );
    Ok(())
}

#[test]
fn tcp_to_a_granted_port_works() -> Result<()> {
    let server = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let (ran, report) = run_middle(
        &sandbox,
        "net-probe",
        &format!(
            "[stage.allow]\nnet = [\"{0}\"]\n[stage.config]\nmode = \"tcp\"\ntarget = \"{0}\"",
            server.addr
        ),
    )?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(server.connections(), 1);
    assert!(artifact(&report, "artifacts/granted/loot.txt")?.starts_with("HTTP/1.1 200 OK"));
    Ok(())
}

#[test]
fn an_allowed_program_runs_with_a_filtered_environment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage(
        &sandbox,
        "[[stage]]\nname = \"granted\"\nplugin = \"{plugin:exec}\"\n[stage.allow]\nexec = [\"sh\"]\nenv = [\"GRANTED_VAR\"]\n[stage.config]\nprogram = \"sh\"\nargs = [\"-c\", \"env | sort > ${out}/env.txt; echo built > ${out}/app.bin\"]\noutputs = [\"app.bin\", \"env.txt\"]\n",
    )?;
    let (ran, report) = sandbox.run_with_env(
        &pipeline,
        &[("SLUICE_CANARY", "host-only"), ("GRANTED_VAR", "visible")],
    )?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(artifact(&report, "artifacts/granted/app.bin")?, "built\n");
    let env = artifact(&report, "artifacts/granted/env.txt")?;
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
    let outputs: Vec<String> = report
        .stage("granted")
        .map(|s| s.outputs.iter().map(|a| a.name.clone()).collect())
        .unwrap_or_default();
    assert_eq!(outputs, ["sh.log", "app.bin", "env.txt"]);
    Ok(())
}

#[test]
fn a_failing_program_fails_the_stage_with_its_stderr() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = run_middle(
        &sandbox,
        "exec",
        "[stage.allow]\nexec = [\"sh\"]\n[stage.config]\nprogram = \"sh\"\nargs = [\"-c\", \"echo compiling; echo 'error: oops' >&2; exit 3\"]",
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (_, message) = stage_outcome(&report, "granted");
    assert!(message.contains("exited with 3: error: oops"), "{message}");
    // The program's output was streamed into the stage log.
    let log = artifact(&report, "logs/granted.log")?;
    assert!(
        log.contains("compiling") && log.contains("error: oops"),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_hung_program_is_stopped_by_the_stage_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let started = std::time::Instant::now();
    let (ran, report) = run_middle(
        &sandbox,
        "exec",
        "limits = { timeout = \"1s\" }\n[stage.allow]\nexec = [\"sleep\"]\n[stage.config]\nprogram = \"sleep\"\nargs = [\"60\"]",
    )?;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    let (status, message) = stage_outcome(&report, "granted");
    assert_eq!(status, StageStatus::Error);
    assert!(message.contains("exceeded its 1s timeout"), "{message}");
    Ok(())
}

#[test]
fn a_granted_dir_is_readable_at_its_guest_path() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("data"))?;
    std::fs::write(sandbox.path().join("data/file.txt"), "granted content")?;
    let (ran, report) = run_middle(
        &sandbox,
        "escape",
        "[stage.allow]\ndirs = [{ host = \"data\", guest = \"/data\" }]\n[stage.config]\nmode = \"read\"\npath = \"/data/file.txt\"",
    )?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        artifact(&report, "artifacts/granted/loot.txt")?,
        "granted content"
    );
    Ok(())
}

#[test]
fn a_missing_granted_dir_is_an_error_before_running() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ran, report) = run_middle(
        &sandbox,
        "escape",
        "[stage.allow]\ndirs = [{ host = \"nope\", guest = \"/data\" }]\n[stage.config]\nmode = \"env\"",
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR);
    let (_, message) = stage_outcome(&report, "granted");
    assert!(
        message.contains("granted dir") && message.contains("does not exist"),
        "{message}"
    );
    Ok(())
}

#[test]
fn check_lists_grants_and_imports_and_names_what_is_missing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = three_stage_with(
        &sandbox,
        "",
        "[[stage]]\nname = \"deploy\"\nplugin = \"{plugin:http-check}\"\n[stage.config]\nurls = []\n\n[[stage]]\nname = \"build\"\nplugin = \"{plugin:exec}\"\n[stage.allow]\nexec = [\"cargo\"]\nworkspace = \"read\"\n[stage.config]\nprogram = \"cargo\"\n",
    )?;
    let ran = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("stage `deploy` imports wasi:http/outgoing-handler@0.2")
            && ran.stdout.contains("but `allow.net` is empty"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("grants  exec: cargo"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("grants  workspace: read at /workspace"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("imports sluice:pipeline/process@0.1.0"),
        "{}",
        ran.stdout
    );
    Ok(())
}
