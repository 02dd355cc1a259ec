//! Four languages in one pipeline (examples/polyglot): Rust, Python (componentize-py), C (zig cc +
//! wit-bindgen) and JavaScript (componentize-js), all built from source by `cargo xtask plugins`,
//! passing artifacts to each other — and each language's failure stopping the chain the same way.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::{RunReport, StageStatus};

use crate::support::{Listener, Ran, Sandbox, repo_root, sha256_of, stage_outcome};

/// examples/polyglot copied into a sandbox, pointed at `webhook`.
fn project(sandbox: &Sandbox, webhook: &Listener) -> Result<PathBuf> {
    project_at(sandbox, &webhook.addr.to_string())
}

fn project_at(sandbox: &Sandbox, webhook: &str) -> Result<PathBuf> {
    let dir = sandbox.path().join("polyglot");
    std::fs::create_dir_all(dir.join("project"))?;
    for entry in std::fs::read_dir(repo_root().join("examples/polyglot/project"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dir.join("project").join(entry.file_name()))?;
    }
    let dist = repo_root().join("plugins/dist").display().to_string();
    let text = std::fs::read_to_string(repo_root().join("examples/polyglot/pipeline.toml"))?
        .replace("../../plugins/dist", &dist)
        .replace("127.0.0.1:18090", webhook);
    std::fs::write(dir.join("pipeline.toml"), text)?;
    Ok(dir)
}

fn run(sandbox: &Sandbox, dir: &Path) -> Result<(Ran, RunReport)> {
    sandbox.run(&dir.join("pipeline.toml"))
}

fn statuses(report: &RunReport) -> Vec<StageStatus> {
    report.stages.iter().map(|s| s.status).collect()
}

/// The webhook the example's header says to start (`python3 examples/polyglot/webhook.py`), on a
/// free port; what it printed, once stopped.
struct DocumentedWebhook {
    child: std::process::Child,
    port: u16,
}

impl DocumentedWebhook {
    fn start() -> Result<Self> {
        use std::io::BufRead;
        let port = crate::support::free_port()?;
        let mut child = std::process::Command::new("python3")
            .arg(repo_root().join("examples/polyglot/webhook.py"))
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        // It says so once it listens.
        let mut first = String::new();
        if let Some(out) = child.stdout.as_mut() {
            std::io::BufReader::new(out).read_line(&mut first)?;
        }
        anyhow::ensure!(first.contains("listening"), "webhook.py said {first:?}");
        Ok(Self { child, port })
    }

    fn stop(mut self) -> Result<String> {
        let _ = self.child.kill();
        let mut said = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut said)?;
        }
        self.child.wait()?;
        Ok(said)
    }
}

#[test]
fn rust_python_c_and_js_stages_pass_artifacts_to_each_other() -> Result<()> {
    let webhook = DocumentedWebhook::start()?;
    let sandbox = Sandbox::new()?;
    let dir = project_at(&sandbox, &format!("127.0.0.1:{}", webhook.port))?;
    let (ran, report) = run(&sandbox, &dir)?;
    let posted = webhook.stop()?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let plugins: Vec<&str> = report
        .stages
        .iter()
        .filter_map(|s| s.plugin.name.as_deref())
        .collect();
    assert_eq!(plugins, ["checkout", "config-check", "digest", "notify"]);
    // Python read the Rust stage's archive.
    let run_dir = Path::new(&report.run_dir);
    let lint: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        run_dir.join("artifacts/lint/config-report.json"),
    )?)?;
    assert_eq!(lint["checked"], 2);
    // C hashed the Rust and Python outputs, agreeing with the host's digests.
    let digests = std::fs::read_to_string(run_dir.join("artifacts/digest/digests.txt"))?;
    for stage in ["code", "lint"] {
        for artifact in &report
            .stage(stage)
            .map(|s| s.outputs.clone())
            .unwrap_or_default()
        {
            let expected = sha256_of(&run_dir.join(&artifact.path))?;
            let line = format!("SHA256 ({}/{}) = {expected}", artifact.stage, artifact.name);
            assert!(digests.contains(&line), "{line} not in {digests}");
        }
    }
    // JavaScript posted to the documented webhook, once.
    assert_eq!(
        posted.matches("webhook: POST /hook: ").count(),
        1,
        "{posted}"
    );
    assert!(posted.contains("polyglot pipeline finished"), "{posted}");
    let summary = report
        .stage("notify")
        .and_then(|s| s.summary.clone())
        .unwrap_or_default();
    assert!(summary.contains(": 200"), "{summary}");
    Ok(())
}

#[test]
fn a_failing_python_stage_stops_the_chain() -> Result<()> {
    let webhook = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let dir = project(&sandbox, &webhook)?;
    std::fs::write(
        dir.join("project/package.json"),
        "{\n  \"name\": \"x\",\n  \"version\": \n}\n",
    )?;
    let (ran, report) = run(&sandbox, &dir)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (_, message) = stage_outcome(&report, "lint");
    assert!(message.contains("package.json:4:1"), "{message}");
    assert_eq!(
        statuses(&report),
        [
            StageStatus::Succeeded,
            StageStatus::Failed,
            StageStatus::Skipped,
            StageStatus::Skipped
        ]
    );
    assert_eq!(webhook.connections(), 0);
    Ok(())
}

#[test]
fn a_failing_c_stage_stops_the_chain() -> Result<()> {
    let webhook = Listener::start(true)?;
    let sandbox = Sandbox::new()?;
    let dir = project(&sandbox, &webhook)?;
    let file = dir.join("pipeline.toml");
    let text =
        std::fs::read_to_string(&file)?.replace("inputs = [\"code/*\", \"lint/*\"]", "inputs = []");
    std::fs::write(&file, text)?;
    let (ran, report) = run(&sandbox, &dir)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (status, message) = stage_outcome(&report, "digest");
    assert_eq!(status, StageStatus::Failed);
    assert!(message.contains("no inputs to digest"), "{message}");
    assert_eq!(
        report.stage("notify").map(|s| s.status),
        Some(StageStatus::Skipped)
    );
    Ok(())
}

#[test]
fn a_failing_js_stage_stops_the_chain() -> Result<()> {
    let webhook = Listener::start_answering(true, 500)?;
    let sandbox = Sandbox::new()?;
    let dir = project(&sandbox, &webhook)?;
    let (ran, report) = run(&sandbox, &dir)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (status, message) = stage_outcome(&report, "notify");
    assert_eq!(status, StageStatus::Failed);
    assert!(message.contains("answered 500"), "{message}");
    assert_eq!(webhook.connections(), 1);
    Ok(())
}
