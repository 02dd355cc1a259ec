//! Every run's `report.html`, loaded in a real browser (headless Chromium): it shows every stage
//! with its status — a failed, a skipped and a cached one here — and what a plugin wrote as
//! markup is shown as text, never run. Screenshots (laptop and phone width) are kept as test
//! artifacts under the target folder (`tmp/report-page/`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, table};

/// A plugin's attempt to run script in the page (its failure message and its log lines).
const HOSTILE: &str = "<script>document.title='pwned';document.documentElement.setAttribute('data-pwned','script')</script>\
<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">";

/// Runs headless Chromium with `args` on `page`, with its own profile, for at most a minute.
fn chromium(sandbox: &Sandbox, args: &[&str], page: &Path) -> Result<String> {
    let profile = tempfile::tempdir_in(sandbox.path())?;
    // With the sandbox's HOME and XDG folders: its dconf and crash settings stay there.
    let output = sandbox
        .program("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .context(
            "cannot start chromium (Debian package `chromium`; `cargo xtask setup` installs it)",
        )?;
    if !output.status.success() {
        bail!(
            "chromium failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn artifacts_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-page");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[test]
fn the_report_page_shows_every_stage_and_runs_nothing_a_plugin_wrote() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("page")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("inject", "terminal-inject")
                .inputs(["code/a.txt"])
                .config("text", HOSTILE)
                .config("fail", true),
        )
        .stage(Stage::new("release", "checksum").inputs(["inject/*"]));
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let first = sandbox.sluice(&["run", &file.display().to_string()])?;
    assert_eq!(first.code, exit_codes::STAGE_FAILED, "{}", first.stderr);
    // The second run takes `code` from the stage cache.
    let (ran, report) = sandbox.run(&file)?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    assert!(
        report
            .stage("code")
            .and_then(|s| s.cache.as_ref())
            .is_some_and(|c| c.hit)
    );
    let page = Path::new(&report.run_dir).join("report.html");
    assert!(page.is_file(), "no report.html in {}", report.run_dir);

    let dom = chromium(&sandbox, &["--dump-dom"], &page)?;
    for (stage, status) in [
        ("code", "succeeded"),
        ("inject", "failed"),
        ("release", "skipped"),
    ] {
        assert!(
            dom.contains(&format!("data-stage=\"{stage}\" data-status=\"{status}\"")),
            "{stage} is not shown as {status}"
        );
    }
    let code = &dom[dom.find("id=\"stage-code\"").context("no code section")?..];
    let code = &code[..code.find("</section>").unwrap_or(code.len())];
    assert!(code.contains("cache hit"), "{code}");
    assert!(
        dom.contains("id=\"run-status\">failed<"),
        "the run's status is not shown"
    );
    // The plugin's markup is on the page as text, and none of it ran.
    assert!(
        !dom.contains("data-pwned=\""),
        "a plugin's script or handler ran"
    );
    assert!(!dom.contains("<title>pwned"), "a plugin's script ran");
    assert!(
        dom.contains("&lt;script&gt;document.title="),
        "the plugin's text is not shown"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "a plugin's element was created"
    );

    let kept = artifacts_dir()?;
    for (name, size) in [
        ("report.png", "1280,1800"),
        ("report-phone.png", "390,1600"),
    ] {
        let shot = kept.join(name);
        let _ = std::fs::remove_file(&shot);
        chromium(
            &sandbox,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size}"),
                "--hide-scrollbars",
            ],
            &page,
        )?;
        let bytes = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{} is {bytes} bytes", shot.display());
    }

    // `sluice report RUN` writes the same page again and names it.
    std::fs::remove_file(&page)?;
    let again = sandbox.sluice(&["report", &report.run_id])?;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), page.display().to_string());
    assert!(page.is_file());
    Ok(())
}
