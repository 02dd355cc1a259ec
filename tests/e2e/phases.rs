//! The six phases for real: the website pipeline against a real nginx (green, red test, gate and
//! resume, failed monitor with rollback), and the rust-crate pipeline through real `cargo`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{Context, Result, bail};
use sluice::exit_codes;
use sluice::model::report::{RunReport, RunStatus, StageStatus};

use crate::support::{Sandbox, eventually, repo_root, stage_outcome};

/// A copy of examples/website in a sandbox, on its own port, with nginx serving its deploy root.
struct Website {
    sandbox: Sandbox,
    dir: PathBuf,
    port: u16,
    nginx: Option<Child>,
}

impl Website {
    fn new() -> Result<Self> {
        let sandbox = Sandbox::new()?;
        // examples/website inside the sandbox, so the pipeline's ../../plugins paths are rewritten.
        let dir = sandbox.path().join("examples/website");
        copy_dir(&repo_root().join("examples/website"), &dir)?;
        let _ = std::fs::remove_dir_all(dir.join(".sluice"));
        let _ = std::fs::remove_dir_all(dir.join(".deploy"));
        std::fs::create_dir_all(dir.join(".deploy"))?;
        let mut site = Self {
            sandbox,
            dir,
            port: 0,
            nginx: None,
        };
        site.start_nginx()?;
        // The pipelines check and deploy to the port nginx listens on.
        let dist = repo_root().join("plugins/dist");
        for file in ["pipeline.toml", "broken-release.toml"] {
            let text = std::fs::read_to_string(site.dir.join(file))?
                .replace("../../plugins/dist", &dist.display().to_string())
                .replace("18080", &site.port.to_string());
            std::fs::write(site.dir.join(file), text)?;
        }
        Ok(site)
    }

    /// nginx on a port that was free a moment ago: nginx cannot bind port 0 and say which port
    /// it got, so another process may take the port first; then nginx exits and another port
    /// is tried.
    fn start_nginx(&mut self) -> Result<()> {
        const TRIES: usize = 5;
        for _ in 0..TRIES {
            let port = crate::support::free_port()?;
            if let Some(child) = self.nginx_on(port)? {
                self.nginx = Some(child);
                self.port = port;
                return Ok(());
            }
        }
        bail!("nginx found every one of {TRIES} free ports taken before it could bind it")
    }

    /// nginx started on `port`, once it listens there; `None` when the port was taken.
    fn nginx_on(&self, port: u16) -> Result<Option<Child>> {
        let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("nginx is not installed: run `cargo xtask setup` (the test command does)")?;
        let prefix = self.sandbox.path().join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let root_user = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        });
        let conf = std::fs::read_to_string(repo_root().join("examples/website/nginx.conf"))?
            .replace("{USER}", if root_user { "user root;" } else { "" })
            .replace("{PREFIX}", &prefix.display().to_string())
            .replace("{ROOT}", &self.dir.join(".deploy").display().to_string())
            .replace("{PORT}", &port.to_string());
        std::fs::write(prefix.join("nginx.conf"), conf)?;
        // nginx writes its pid file once it holds its port: the sign that what answers on the
        // port is this nginx, not whoever took the port first.
        let (pid_file, error_log) = (prefix.join("nginx.pid"), prefix.join("error.log"));
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&error_log);
        let mut child = self
            .sandbox
            .program(binary)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(&error_log)
            .spawn()?;
        let pid = child.id().to_string();
        let said = || std::fs::read_to_string(&error_log).unwrap_or_default();
        let started = eventually(
            std::time::Duration::from_secs(30),
            format_args!("nginx listening on 127.0.0.1:{port}"),
            || {
                if let Some(status) = child.try_wait()? {
                    let said = said();
                    if said.contains("Address already in use") {
                        return Ok(Some(false));
                    }
                    bail!("nginx exited ({status}):\n{said}");
                }
                let ours = std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid);
                Ok(
                    (ours && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
                        .then_some(true),
                )
            },
        );
        match started {
            Ok(true) => Ok(Some(child)),
            Ok(false) => Ok(None),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err.context(format!("nginx said:\n{}", said())))
            }
        }
    }

    fn run(&self, file: &str, extra: &[&str]) -> Result<(crate::support::Ran, RunReport)> {
        let report = self.sandbox.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let pipeline = self.dir.join(file).display().to_string();
        let mut args = vec!["run", pipeline.as_str(), "--format", "plain"];
        args.extend_from_slice(extra);
        let report_arg = report.display().to_string();
        args.extend_from_slice(&["--report", &report_arg]);
        let ran = self.sandbox.sluice(&args)?;
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("no report (exit {}): {}", ran.code, ran.stderr))?;
        Ok((ran, serde_json::from_str(&text)?))
    }

    /// GET from the nginx: (status code, body).
    fn get(&self, path: &str) -> Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    fn current(&self) -> Result<PathBuf> {
        Ok(std::fs::read_link(self.dir.join(".deploy/current"))?)
    }
}

impl Drop for Website {
    fn drop(&mut self) {
        if let Some(mut child) = self.nginx.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        // Leave out what a local demo run left behind.
        if [".deploy", ".sluice", "target"].contains(&entry.file_name().to_string_lossy().as_ref())
        {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn statuses(report: &RunReport) -> Vec<(String, StageStatus)> {
    report
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.status))
        .collect()
}

fn names_with(report: &RunReport, status: StageStatus) -> Vec<&str> {
    report
        .stages
        .iter()
        .filter(|s| s.status == status)
        .map(|s| s.name.as_str())
        .collect()
}

#[test]
fn the_website_goes_through_all_six_phases_to_a_real_nginx() -> Result<()> {
    let site = Website::new()?;
    assert_eq!(site.get("/")?.0, 404, "nothing is deployed yet");
    let (ran, report) = site.run("pipeline.toml", &["--approve", "deploy"])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        names_with(&report, StageStatus::Succeeded),
        ["code", "build", "test", "release", "deploy", "monitor"]
    );
    assert_eq!(names_with(&report, StageStatus::Skipped), ["rollback"]);
    let phases: Vec<&str> = report
        .stages
        .iter()
        .filter_map(|s| s.phase.as_deref())
        .collect();
    // As the pipeline file marks them (the skipped rollback is a deploy too).
    assert_eq!(
        phases,
        [
            "code", "build", "test", "release", "deploy", "monitor", "deploy"
        ]
    );
    // nginx serves the rendered release.
    let (status, body) = site.get("/")?;
    assert_eq!(status, 200);
    assert!(
        body.contains("<h1 id=\"welcome-to-acme-widgets\">Welcome to Acme Widgets</h1>"),
        "{body}"
    );
    assert!(
        body.contains("href=\"about.html\""),
        "links were rewritten: {body}"
    );
    assert_eq!(site.get("/docs/getting-started.html")?.0, 200);
    assert_eq!(site.current()?, Path::new("releases/1.0.0"));
    // The release manifest names the version, its files and the plugins that ran before it.
    let run_dir = Path::new(&report.run_dir);
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        run_dir.join("artifacts/release/release.json"),
    )?)?;
    assert_eq!(manifest["version"], "1.0.0");
    let plugins: Vec<&str> = manifest["plugins"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["plugin"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(plugins, ["checkout", "markdown-site", "link-check"]);
    let checkout = report
        .stage("code")
        .and_then(|s| s.plugin.sha256.clone())
        .unwrap_or_default();
    assert_eq!(manifest["plugins"][0]["sha256"], checkout.as_str());
    let sums = std::fs::read_to_string(run_dir.join("artifacts/release/SHA256SUMS"))?;
    let archive = report
        .stage("release")
        .and_then(|s| {
            s.outputs
                .iter()
                .find(|a| a.name.ends_with(".tar.gz"))
                .cloned()
        })
        .context("no archive")?;
    assert!(
        sums.starts_with(&format!("{}  acme-site-1.0.0.tar.gz\n", archive.sha256)),
        "{sums}"
    );
    let junit = std::fs::read_to_string(run_dir.join("artifacts/test/junit.xml"))?;
    assert!(junit.contains("tests=\"4\" failures=\"0\""), "{junit}");
    Ok(())
}

#[test]
fn a_red_test_stops_the_website_before_release() -> Result<()> {
    let site = Website::new()?;
    let index = site.dir.join("site/index.md");
    let text = std::fs::read_to_string(&index)? + "\n[Pricing](pricing.md)\n";
    std::fs::write(&index, text)?;
    let (ran, report) = site.run("pipeline.toml", &["--approve", "deploy"])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (status, message) = stage_outcome(&report, "test");
    assert_eq!(status, StageStatus::Failed);
    assert!(message.contains("index.html → pricing.md"), "{message}");
    assert_eq!(
        names_with(&report, StageStatus::Skipped),
        ["release", "deploy", "monitor", "rollback"]
    );
    let (_, rollback) = stage_outcome(&report, "rollback");
    assert!(
        rollback.contains("needs `deploy/deploy.json`"),
        "{rollback}"
    );
    let junit =
        std::fs::read_to_string(Path::new(&report.run_dir).join("artifacts/test/junit.xml"))?;
    assert!(
        junit.contains("<failure message=\"1 broken link\">pricing.md: broken</failure>"),
        "{junit}"
    );
    assert_eq!(site.get("/")?.0, 404, "nothing may be deployed");
    Ok(())
}

#[test]
fn a_gate_stops_a_non_interactive_run_and_resume_finishes_it() -> Result<()> {
    let site = Website::new()?;
    let (ran, report) = site.run("pipeline.toml", &[])?;
    assert_eq!(ran.code, exit_codes::AWAITING_APPROVAL, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::AwaitingApproval);
    assert_eq!(
        names_with(&report, StageStatus::Succeeded),
        ["code", "build", "test", "release"]
    );
    assert_eq!(
        names_with(&report, StageStatus::AwaitingApproval),
        ["deploy"]
    );
    assert_eq!(
        names_with(&report, StageStatus::Pending),
        ["monitor", "rollback"]
    );
    assert!(
        ran.stderr
            .contains(&format!("sluice resume {} --approve deploy", report.run_id))
    );
    assert_eq!(site.get("/")?.0, 404, "the gate held");

    // Resuming without approving the gate stops there again.
    let runs = site.sandbox.runs_dir().display().to_string();
    let again = site.sandbox.sluice(&[
        "resume",
        &report.run_id,
        "--runs-dir",
        &runs,
        "--format",
        "plain",
    ])?;
    assert_eq!(
        again.code,
        exit_codes::AWAITING_APPROVAL,
        "{}",
        again.stderr
    );

    let resumed = site.sandbox.sluice(&[
        "resume",
        &report.run_id,
        "--approve",
        "deploy",
        "--runs-dir",
        &runs,
        "--format",
        "plain",
    ])?;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let after = RunReport::read(&Path::new(&report.run_dir).join("report.json"))?;
    assert_eq!(after.run_id, report.run_id);
    assert_eq!(after.status, RunStatus::Succeeded);
    assert_eq!(after.resumed_at.len(), 2);
    // Finished stages were not run again: same start times and outputs.
    for name in ["code", "build", "test", "release"] {
        assert_eq!(
            after.stage(name),
            report.stage(name),
            "stage {name} changed on resume"
        );
    }
    assert!(
        !resumed.stderr.contains("[code] started"),
        "{}",
        resumed.stderr
    );
    assert_eq!(names_with(&after, StageStatus::Succeeded).len(), 6);
    assert_eq!(site.get("/")?.0, 200);
    // A finished run cannot be resumed.
    let finished = site.sandbox.sluice(&[
        "resume",
        &report.run_id,
        "--approve",
        "deploy",
        "--runs-dir",
        &runs,
    ])?;
    assert_eq!(
        finished.code,
        exit_codes::INVALID_INPUT,
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains("is not waiting for approval and was not interrupted (it succeeded)"),
        "{}",
        finished.stderr
    );
    Ok(())
}

#[test]
fn a_failed_monitor_rolls_back_to_the_previous_release() -> Result<()> {
    let site = Website::new()?;
    let (ran, _) = site.run("pipeline.toml", &["--approve", "deploy"])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(site.current()?, Path::new("releases/1.0.0"));

    let (ran, report) = site.run("broken-release.toml", &[])?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    assert_eq!(report.status, RunStatus::Failed);
    let (status, message) = stage_outcome(&report, "monitor");
    assert_eq!(status, StageStatus::Failed);
    assert!(
        message.contains("body does not contain \"healthy\""),
        "{message}"
    );
    assert_eq!(
        statuses(&report).last(),
        Some(&("rollback".to_string(), StageStatus::Succeeded))
    );
    let summary = report
        .stage("rollback")
        .and_then(|s| s.summary.clone())
        .unwrap_or_default();
    assert_eq!(summary, "rolled back 1.1.0 → 1.0.0");
    // The previous release is served again; the broken one stays on disk for inspection.
    assert_eq!(site.current()?, Path::new("releases/1.0.0"));
    let (status, body) = site.get("/health.html")?;
    assert_eq!(status, 200);
    assert!(body.contains("healthy"), "{body}");
    assert!(site.dir.join(".deploy/releases/1.1.0/index.html").is_file());
    Ok(())
}

#[test]
fn the_rust_crate_is_built_and_tested_with_real_cargo() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let dir = sandbox.path().join("examples/rust-crate");
    copy_dir(&repo_root().join("examples/rust-crate"), &dir)?;
    let _ = std::fs::remove_dir_all(dir.join(".sluice"));
    let _ = std::fs::remove_dir_all(dir.join("target"));
    let dist = repo_root().join("plugins/dist").display().to_string();
    let text =
        std::fs::read_to_string(dir.join("pipeline.toml"))?.replace("../../plugins/dist", &dist);
    std::fs::write(dir.join("pipeline.toml"), text)?;
    let (ran, report) = sandbox.run(&dir.join("pipeline.toml"))?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let run_dir = Path::new(&report.run_dir);
    // The real binary came out of the build stage; run it.
    let binary = run_dir.join("artifacts/build/wordcount");
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let output = Command::new(&binary)
        .stdin(std::fs::File::open(dir.join("Cargo.toml"))?)
        .output()?;
    let counts = String::from_utf8_lossy(&output.stdout);
    assert_eq!(counts.split_whitespace().count(), 3, "{counts}");
    let junit = std::fs::read_to_string(run_dir.join("artifacts/test/junit.xml"))?;
    assert!(junit.contains("tests=\"2\" failures=\"0\""), "{junit}");
    assert!(
        !run_dir.join("artifacts/build/target").exists(),
        "scratch target dir was kept"
    );

    // A failing test turns the test stage red with the test's name.
    let lib = dir.join("src/lib.rs");
    let broken = std::fs::read_to_string(&lib)?.replace(
        "assert_eq!(count(\"one two\\nthree\\n\").words, 3);",
        "assert_eq!(count(\"one two\\nthree\\n\").words, 4);",
    );
    std::fs::write(&lib, broken)?;
    let (ran, report) = sandbox.run(&dir.join("pipeline.toml"))?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (_, message) = stage_outcome(&report, "test");
    assert!(
        message.contains("1 of 2 tests failed: tests::counts_words_across_lines"),
        "{message}"
    );
    Ok(())
}

/// Runs `sluice run` inside a pseudo-terminal (util-linux `script`), typing `answer`.
fn run_on_a_terminal(site: &Website, answer: &str) -> Result<(i32, RunReport)> {
    use std::io::Write;
    let report = site.sandbox.path().join("tty-report.json");
    let _ = std::fs::remove_file(&report);
    let command = format!(
        "{} run {} --report {}",
        env!("CARGO_BIN_EXE_sluice"),
        site.dir.join("pipeline.toml").display(),
        report.display()
    );
    // The terminal's shell starts sluice with the sandbox's environment (its cache, runs folder,
    // HOME), as `Sandbox::command` would.
    let mut script = Command::new("script");
    for (name, value) in site.sandbox.command(&[]).get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    let mut child = script
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("util-linux `script` is needed to give sluice a terminal")?;
    if let Some(mut stdin) = child.stdin.take() {
        // Answer once the prompt is up; the terminal keeps the line until sluice reads it.
        stdin.write_all(answer.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let code = output.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&report).with_context(|| {
        format!(
            "no report (exit {code}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        screen.contains("run stage `deploy`? [y/N]"),
        "no prompt on the terminal:\n{screen}"
    );
    Ok((code, serde_json::from_str(&text)?))
}

#[test]
fn on_a_terminal_the_gate_asks_and_a_yes_deploys() -> Result<()> {
    let site = Website::new()?;
    let (code, report) = run_on_a_terminal(&site, "n\n")?;
    assert_eq!(code, exit_codes::AWAITING_APPROVAL);
    assert_eq!(
        names_with(&report, StageStatus::AwaitingApproval),
        ["deploy"]
    );
    let (code, report) = run_on_a_terminal(&site, "y\n")?;
    assert_eq!(code, 0);
    assert_eq!(
        report.stage("deploy").map(|s| s.status),
        Some(StageStatus::Succeeded)
    );
    assert_eq!(site.get("/")?.0, 200);
    Ok(())
}
