//! A run watched as it happens: its page in Chromium shows the first stage succeeded and the
//! middle one running (its log streamed in), then — with no reload — the middle one succeeded.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::browser::Browser;
use super::{Server, get, only_run};
use crate::support::{Pipeline, Sandbox, Stage, table};

/// The pipeline: `first` (emit), `wait` (a shell loop until `release` exists), `last`.
fn waiting_pipeline(release: &Path) -> Pipeline {
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; echo released",
        release.display()
    );
    Pipeline::new("live")
        .stage(Stage::new("first", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("wait", "exec")
                .set("needs", ["first"])
                .allow("exec", ["sh"])
                // Logged when it ends, while the program below still waits.
                .config("before", [["sh", "-c", "echo waiting-for-release"]])
                .config("program", "sh")
                .config("args", ["-c", script.as_str()]),
        )
        .stage(
            Stage::new("last", "checksum")
                .set("needs", ["wait"])
                .inputs(["first/a.txt"]),
        )
}

/// Waits until the run's record (through the server's API) shows `stage` as `status`.
fn wait_for_stage(server: &Server, run: &str, stage: &str, status: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = get(server.address, &format!("/api/runs/{run}"))?;
        if answer.status == 200 {
            let report: serde_json::Value = serde_json::from_str(&answer.body)?;
            let found = report["stages"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == json!(stage) && s["status"] == json!(status));
            if found {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{stage} never became {status}: {}", answer.body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn section_status(stage: &str) -> String {
    format!(
        "(document.querySelector('section[data-stage=\"{stage}\"]') || {{dataset: {{}}}}).dataset.status"
    )
}

#[test]
fn a_running_stage_turns_green_on_the_page_without_a_reload() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let release = sandbox.path().join("release-the-stage");
    let file = sandbox.write(&waiting_pipeline(&release))?;
    let runs = sandbox.runs_dir();
    std::fs::create_dir_all(&runs)?;
    let server = Server::start(&sandbox, &["--runs-dir", &runs.display().to_string()])?;
    let report = sandbox.path().join("report.json");
    let args = sandbox.run_args(&file, &report);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = sandbox
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let outcome = (|| -> Result<()> {
        let started = Instant::now();
        let id = loop {
            if let Ok(id) = only_run(&runs) {
                break id;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no run folder appeared");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        wait_for_stage(&server, &id, "wait", "running")?;

        let mut browser = Browser::start(&sandbox)?;
        browser.open(&server.url(&format!("/runs/{id}")))?;
        let wait = section_status("wait");
        assert_eq!(browser.eval(&section_status("first"))?, json!("succeeded"));
        assert_eq!(browser.eval(&wait)?, json!("running"));
        assert_eq!(
            browser.eval("document.getElementById('run-status').textContent")?,
            json!("running")
        );
        // The running stage's log is streamed in as it is written.
        browser.wait_for(
            "document.querySelector('pre[data-log=\"wait\"]').textContent.includes('waiting-for-release')",
            Duration::from_secs(20),
        )?;
        browser.eval("window.__kept = 1")?;
        if std::env::var_os("SLUICE_SAVE_SCREENSHOTS").is_some() {
            save_screenshots(&mut browser)?;
        }

        std::fs::write(&release, "go")?;
        browser.wait_for(
            &format!("{wait} === 'succeeded' && document.getElementById('run-status').textContent === 'succeeded'"),
            Duration::from_secs(60),
        )?;
        // Not reloaded: the marker set before is still there.
        assert_eq!(browser.eval("window.__kept")?, json!(1));
        assert_eq!(browser.eval(&section_status("last"))?, json!("succeeded"));
        // The finished run's page is its report page, with download links.
        let page = get(server.address, &format!("/runs/{id}"))?;
        assert!(
            !page.body.contains("<script"),
            "a finished run's page has no script"
        );
        assert!(page.body.contains("/artifacts/"), "no artifact link");
        Ok(())
    })();
    let _ = std::fs::write(&release, "go");
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = run.kill();
    let status = run.wait().context("the run")?;
    outcome?;
    assert!(status.success(), "the run did not succeed: {status}");
    Ok(())
}

/// The README's pictures: the running page at desktop and phone widths, in docs/.
fn save_screenshots(browser: &mut Browser) -> Result<()> {
    let docs = crate::support::repo_root().join("docs");
    std::fs::create_dir_all(&docs)?;
    for (name, width, height, mobile) in [
        ("serve-desktop.png", 1280, 800, false),
        ("serve-phone.png", 390, 844, true),
    ] {
        let png = browser.screenshot(width, height, mobile)?;
        assert!(png.len() > 10_000, "{name} is {} bytes", png.len());
        std::fs::write(docs.join(name), png)?;
    }
    browser.call(
        "Emulation.clearDeviceMetricsOverride",
        serde_json::Value::Object(Default::default()),
    )?;
    Ok(())
}
