//! `external-links`: the links of a site that leave it, followed over the granted hosts only,
//! against a real HTTP server (Python's `http.server`) on a free loopback port.

use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Pipeline, Sandbox, Stage, free_port, table};

/// `python3 -m http.server` serving `dir`, stopped when dropped.
struct StaticServer(Child);

impl StaticServer {
    fn start(dir: &std::path::Path, port: u16) -> Result<Self> {
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start python3 -m http.server")?;
        let server = Self(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!("http.server did not listen on {port}")
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn external_links_are_followed_on_granted_hosts_only() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let served = sandbox.path().join("served");
    std::fs::create_dir_all(&served)?;
    std::fs::write(served.join("ok.html"), "<p>fine</p>\n")?;
    let port = free_port()?;
    let _server = StaticServer::start(&served, port)?;
    let host = format!("127.0.0.1:{port}");
    let page = format!(
        "<a href=\"http://{host}/ok.html#part\">ok</a> <a href=\"http://{host}/ok.html\">again</a> \
         <a href=\"http://{host}/gone.html\">gone</a> <a href=\"https://example.com/elsewhere\">not granted</a> \
         <a href=\"local.html\">local</a>"
    );
    let pipeline = Pipeline::new("external")
        .stage(Stage::new("build", "emit").config(
            "files",
            table([("site/index.html", page.as_str()), ("site/local.html", "x")]),
        ))
        .stage(
            Stage::new("links", "external-links")
                .inputs(["build/*"])
                .allow("net", [host.as_str()]),
        );
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(run.ran.code, exit_codes::STAGE_FAILED, "{}", run.describe());
    let stage = run.stage("links");
    assert_eq!(stage.status, StageStatus::Failed);
    run.assert_message(
        "links",
        &["1 of 3 external links are broken", "gone.html (status 404)"],
    );
    // The host that was not granted was refused by sluice, not reached.
    assert!(
        stage.denied.iter().any(|d| d.contains("example.com")),
        "{:?}",
        stage.denied
    );
    let checked: serde_json::Value =
        serde_json::from_str(&run.file("artifacts/links/external-links.json")?)?;
    let verdicts: Vec<(String, String)> = checked
        .as_array()
        .context("not a list")?
        .iter()
        .map(|c| {
            (
                c["url"].as_str().unwrap_or_default().to_string(),
                c["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (format!("http://{host}/gone.html"), "broken".to_string()),
            (format!("http://{host}/ok.html"), "ok".to_string()),
            (
                "https://example.com/elsewhere".to_string(),
                "not-granted".to_string()
            ),
        ]
    );
    Ok(())
}
