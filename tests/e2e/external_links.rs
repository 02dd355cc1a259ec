//! `external-links`: the links of a site that leave it, followed over the granted hosts only,
//! against a real HTTP server (Python's `http.server`) on a loopback port it picks itself.

use std::process::{Child, Stdio};

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::StageStatus;

use crate::support::{Pipeline, Sandbox, Stage, table};

/// `python3 -m http.server` serving `dir` on the port it reports, stopped when dropped.
struct StaticServer(Child);

impl StaticServer {
    /// The server, and its port: it binds port 0 and says which port it got ("Serving HTTP on
    /// 127.0.0.1 port N", unbuffered), after it listens.
    fn start(sandbox: &Sandbox, dir: &std::path::Path) -> Result<(Self, u16)> {
        use std::io::BufRead;
        let mut child = sandbox
            .program("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start python3 -m http.server")?;
        let out = child.stdout.take().context("no stdout")?;
        let server = Self(child);
        // Read on a thread, so a server that never says anything fails the test, not hangs it.
        let (said_tx, said_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(out).lines();
            let _ = said_tx.send(lines.next());
            // Keep reading, so the pipe never fills.
            for _ in lines {}
        });
        let said = said_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .context("http.server said nothing within 30 s")?
            .context("http.server exited without a word")??;
        let port = said
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u16>().ok())
            .with_context(|| format!("no port in http.server's {said:?}"))?;
        Ok((server, port))
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
    let (_server, port) = StaticServer::start(&sandbox, &served)?;
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
