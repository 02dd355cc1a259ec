//! `sluice serve` is safe by default: a failed run's page shows the failure and runs nothing a
//! plugin wrote; off loopback every request needs the token; nothing outside the runs folders
//! is ever read (`..`, a symlinked run folder, a record naming files outside); read-only.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use sluice::exit_codes;

use super::browser::Browser;
use super::{Server, get, only_run, request};
use crate::support::{Pipeline, Sandbox, Stage, table};

/// A plugin's attempt to run script in the page (its failure message and its log lines).
const HOSTILE: &str = "<script>document.title='pwned';window.__pwned=1</script>\
<img src=x onerror=\"window.__pwned=2\">";

/// Runs a pipeline whose middle stage fails with `HOSTILE` as its message and log; its run id.
fn failed_run(sandbox: &Sandbox) -> Result<String> {
    let pipeline = Pipeline::new("hostile")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("inject", "terminal-inject")
                .inputs(["code/a.txt"])
                .config("text", HOSTILE)
                .config("fail", true),
        );
    let file = sandbox.write(&pipeline)?;
    let (ran, _) = sandbox.run(&file)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    only_run(&sandbox.runs_dir())
}

#[test]
fn a_failed_runs_page_shows_the_failure_and_runs_nothing_a_plugin_wrote() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let id = failed_run(&sandbox)?;
    let runs = sandbox.runs_dir().display().to_string();
    let server = Server::start(&sandbox, &["--runs-dir", &runs])?;

    // The list: the run, filterable by status and pipeline, as a page and as JSON.
    let list = get(server.address, "/")?;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!("data-run=\"{id}\" data-status=\"failed\""))
    );
    let api: serde_json::Value = serde_json::from_str(&get(server.address, "/api/runs")?.body)?;
    assert_eq!(api["total"], json!(1));
    assert_eq!(api["runs"][0]["id"], json!(id));
    assert_eq!(api["runs"][0]["pipeline"], json!("hostile"));
    for (filter, total) in [
        ("status=failed", 1),
        ("status=succeeded", 0),
        ("pipeline=hostile", 1),
        ("pipeline=other", 0),
    ] {
        let api: serde_json::Value =
            serde_json::from_str(&get(server.address, &format!("/api/runs?{filter}"))?.body)?;
        assert_eq!(api["total"], json!(total), "{filter}");
    }
    // Read-only: nothing but GET and HEAD.
    for method in ["POST", "PUT", "DELETE"] {
        let answer = request(server.address, method, &format!("/runs/{id}"), &[])?;
        assert_eq!(answer.status, 405, "{method}");
    }

    let mut browser = Browser::start(&sandbox)?;
    browser.open(&server.url(&format!("/runs/{id}")))?;
    assert_eq!(
        browser.eval("document.querySelector('section[data-stage=\"inject\"]').dataset.status")?,
        json!("failed")
    );
    let text = browser.eval("document.body.innerText")?;
    let text = text.as_str().context("no page text")?;
    assert!(text.contains("failed"), "{text}");
    // The plugin's markup is on the page as text (its failure message and log), and none ran.
    assert!(
        text.contains("<script>document.title='pwned'"),
        "the plugin's text is not shown: {text}"
    );
    assert_eq!(browser.eval("window.__pwned === undefined")?, json!(true));
    assert_eq!(
        browser.eval("document.title.includes('pwned')")?,
        json!(false)
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('img').length")?,
        json!(0)
    );
    Ok(())
}

#[test]
fn off_loopback_every_request_needs_the_token() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let runs = sandbox.runs_dir();
    std::fs::create_dir_all(&runs)?;
    let runs = runs.display().to_string();

    let refused =
        sandbox.sluice_within(&["serve", "--runs-dir", &runs, "--listen", "0.0.0.0:0"], 20)?;
    assert_eq!(
        refused.code,
        exit_codes::INVALID_INPUT,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("without a token") && refused.stderr.contains("--token-file"),
        "{}",
        refused.stderr
    );

    let token = "a-long-random-secret-for-the-test";
    let token_file = sandbox.path().join("token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let server = Server::start(
        &sandbox,
        &[
            "--runs-dir",
            &runs,
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            &token_file.display().to_string(),
        ],
    )?;
    let right = format!("Authorization: Bearer {token}");
    for (path, headers, status) in [
        ("/", vec![], 401),
        ("/api/runs", vec![], 401),
        (
            "/",
            vec!["Authorization: Bearer wrong-wrong-wrong-wrong-wrong"],
            401,
        ),
        ("/api/runs?token=wrong", vec![], 401),
        ("/", vec![right.as_str()], 200),
        ("/api/runs", vec![right.as_str()], 200),
        (&format!("/api/runs?token={token}") as &str, vec![], 200),
    ] {
        let answer = request(server.address, "GET", path, &headers)?;
        assert_eq!(answer.status, status, "{path} {headers:?}: {}", answer.body);
    }
    Ok(())
}

#[test]
fn nothing_outside_the_runs_folder_is_served() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let id = failed_run(&sandbox)?;
    let runs = sandbox.runs_dir();
    let canary = "CANARY-6f1d2e-outside-the-runs-folder";
    // A folder outside the runs folder that looks like a run, with the canary in every file.
    let outside = sandbox.path().join("outside");
    copy_dir(&runs.join(&id), &outside)?;
    for log in std::fs::read_dir(outside.join("logs"))? {
        std::fs::write(log?.path(), canary)?;
    }
    std::fs::write(outside.join("canary.txt"), canary)?;
    std::os::unix::fs::symlink(&outside, runs.join("evil"))?;
    // A run whose record names files outside its folder.
    let tampered = runs.join("tampered");
    copy_dir(&runs.join(&id), &tampered)?;
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tampered.join("report.json"))?)?;
    let fake = "ab".repeat(32);
    record["stages"][0]["log"] = json!("../../outside/canary.txt");
    record["stages"][0]["outputs"][0]["path"] = json!("../../outside/canary.txt");
    record["stages"][0]["outputs"][0]["sha256"] = json!(fake);
    std::fs::write(tampered.join("report.json"), record.to_string())?;

    let server = Server::start(&sandbox, &["--runs-dir", &runs.display().to_string()])?;
    let list = get(server.address, "/api/runs")?;
    assert!(
        !list.body.contains("\"evil\""),
        "a symlinked run is listed: {}",
        list.body
    );
    for path in [
        "/runs/evil".to_string(),
        "/api/runs/evil".to_string(),
        "/runs/evil/logs/inject".to_string(),
        "/runs/..%2f..%2fetc".to_string(),
        "/runs/..%2foutside".to_string(),
        "/api/runs/..%2foutside".to_string(),
        format!("/runs/{id}/artifacts/..%2f..%2f..%2foutside%2fcanary.txt"),
        format!("/runs/{id}/logs/..%2f..%2f..%2foutside%2fcanary.txt"),
        format!("/runs/tampered/artifacts/{fake}"),
        "/runs/tampered/provenance/statement".to_string(),
    ] {
        let answer = get(server.address, &path)?;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(
            !answer.body.contains(canary),
            "{path} served the outside file"
        );
    }
    // The tampered run's page and its log endpoint show nothing from outside either.
    for path in ["/runs/tampered", "/runs/tampered/logs/code"] {
        let answer = get(server.address, path)?;
        assert!(
            !answer.body.contains(canary),
            "{path} served the outside file"
        );
    }
    // The genuine run's artifact downloads, by digest.
    let report: serde_json::Value =
        serde_json::from_str(&get(server.address, &format!("/api/runs/{id}"))?.body)?;
    let digest = report["stages"][0]["outputs"][0]["sha256"]
        .as_str()
        .context("no artifact")?;
    let artifact = get(server.address, &format!("/runs/{id}/artifacts/{digest}"))?;
    assert_eq!(artifact.status, 200);
    assert_eq!(artifact.body, "alpha\n");
    assert!(
        artifact
            .header("content-disposition")
            .is_some_and(|d| d.contains("attachment")),
        "not a download"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
