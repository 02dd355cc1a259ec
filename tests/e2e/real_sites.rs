//! Real documentation as a site: the README files of thirty crates from the machine's cargo
//! registry, and Debian's own documentation of docker-registry (unpacked with `gunzip`), through
//! checkout → markdown-site → link-check. Each must come out green except for links that are truly
//! broken in that copy, and every problem link-check names is checked against the source tree.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sluice::exit_codes;
use sluice::model::report::{RunReport, StageStatus};

use crate::real_content::{copy_tree, crates_repository, git};
use crate::support::{Pipeline, Sandbox, Stage};

/// The source a rendered page came from, and the path a link on it names in the source tree.
fn source_candidates(page: &str, link: &str) -> Vec<String> {
    let path = link.split(['#', '?']).next().unwrap_or_default();
    let folder: Vec<&str> = page.split('/').collect();
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        folder[..folder.len() - 1].to_vec()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let target = parts.join("/");
    let mut candidates = vec![target.clone()];
    if let Some(stem) = target.strip_suffix(".html") {
        candidates.push(format!("{stem}.md"));
    }
    if let Some(folder) = target.strip_suffix("index.html") {
        candidates.push(format!("{folder}README.md"));
        candidates.push(format!("{folder}readme.md"));
    }
    candidates
}

/// checkout → markdown-site (the whole archive) → link-check on the repository at `ws`.
fn site_of(sandbox: &Sandbox, ws: &Path) -> Result<(crate::support::Ran, RunReport)> {
    let pipeline = Pipeline::new("docs")
        .set("workspace", ws.display().to_string())
        .stage(Stage::new("code", "checkout").allow("workspace", "read"))
        .stage(
            Stage::new("build", "markdown-site")
                .inputs(["code/source.tar"])
                .config("dir", ".")
                .config("title", "docs"),
        )
        .stage(Stage::new("test", "link-check").inputs(["build/*"]));
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let (ran, report) = sandbox.run(&file)?;
    let build = report.stage("build").context("no build stage")?;
    assert_eq!(build.status, StageStatus::Succeeded, "{}", ran.stderr);
    assert!(
        Path::new(&report.run_dir)
            .join("artifacts/build/site/style.css")
            .is_file()
    );
    Ok((ran, report))
}

/// Checks that every problem link-check reported (`links.json`) is one in the source tree git
/// tracks, and that the stage failed exactly when there were problems; the pages with problems.
fn problems_are_real(
    ran: &crate::support::Ran,
    report: &RunReport,
    tracked: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let run_dir = Path::new(&report.run_dir);
    let links: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        run_dir.join("artifacts/test/links.json"),
    )?)?;
    let problems = links["problems"].as_array().context("no problems list")?;
    let test = report.stage("test").context("no test stage")?;
    if problems.is_empty() {
        assert_eq!(test.status, StageStatus::Succeeded, "{}", ran.stderr);
    } else {
        assert_eq!(test.status, StageStatus::Failed);
        assert_eq!(ran.code, exit_codes::STAGE_FAILED);
        let message = test.message.as_deref().unwrap_or_default();
        let first = problems[0]["link"].as_str().unwrap_or_default();
        assert!(message.contains(first), "{message}");
    }
    for problem in problems {
        let (page, link, kind) = (
            problem["page"].as_str().unwrap_or_default(),
            problem["link"].as_str().unwrap_or_default(),
            problem["kind"].as_str().unwrap_or_default(),
        );
        assert!(!link.ends_with("style.css"), "{page}: {link}");
        match kind {
            "broken" => {
                let candidates = source_candidates(page, link);
                let folder = candidates[0].trim_end_matches('/');
                let exists = candidates.iter().any(|c| tracked.contains(c))
                    || tracked.iter().any(|t| {
                        t.starts_with(&format!("{folder}/"))
                            && (t.ends_with("/README.md") || t.ends_with("/index.md"))
                            && t.matches('/').count() == folder.matches('/').count() + 1
                    });
                assert!(!exists, "{page}: {link} is reported broken but exists");
            }
            "outside" => {
                let depth = page.matches('/').count();
                let ups = link.split('/').take_while(|p| *p == "..").count();
                assert!(ups > depth, "{page}: {link} does not leave the site");
            }
            "missing-anchor" => {
                let target = if link.starts_with('#') {
                    page.to_string()
                } else {
                    source_candidates(page, link)[0].clone()
                };
                let anchor = link.split_once('#').map(|(_, a)| a).unwrap_or_default();
                let html =
                    std::fs::read_to_string(run_dir.join("artifacts/build/site").join(&target))?;
                assert!(
                    !html.contains(&format!("id=\"{anchor}\"")),
                    "{page}: {link} is reported missing but {target} has it"
                );
            }
            other => bail!("unknown problem kind {other}"),
        }
    }
    Ok(problems
        .iter()
        .filter_map(|p| p["page"].as_str().map(str::to_string))
        .collect())
}

fn tracked_files(ws: &Path) -> Result<BTreeSet<String>> {
    Ok(git(ws, &["ls-files"])?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[test]
fn thirty_crate_readmes_become_a_site_whose_only_broken_links_are_truly_broken() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (ws, names) = crates_repository(&sandbox, 30)?;
    let (ran, report) = site_of(&sandbox, &ws)?;
    // Every crate's README is its folder's index page, with the stylesheet it links.
    for name in &names {
        let page = Path::new(&report.run_dir)
            .join(format!("artifacts/build/site/crates/{name}/index.html"));
        let html = std::fs::read_to_string(&page)
            .with_context(|| format!("no page for {name}'s README"))?;
        assert!(html.contains("href=\"../../style.css\""), "{name}");
    }
    let pages = problems_are_real(&ran, &report, &tracked_files(&ws)?)?;
    // Every problem above is a real one; most READMEs link nothing broken (all 30 had
    // problems when the stylesheet was missing). Only the READMEs count: which other
    // pages there are depends on the crates the machine's registry holds (axum's docs alone
    // are dozens of pages with links into files the crate does not ship).
    let readmes_with_problems = names
        .iter()
        .filter(|name| pages.contains(&format!("crates/{name}/index.html")))
        .count();
    assert!(
        readmes_with_problems < names.len() / 2,
        "{readmes_with_problems} of {} READMEs have problems: {pages:?}",
        names.len()
    );
    Ok(())
}

#[test]
fn debians_docker_registry_documentation_becomes_a_site() -> Result<()> {
    let docs = Path::new("/usr/share/doc/docker-registry");
    if !docs.join("spec").is_dir() {
        bail!(
            "{} is missing: `cargo xtask setup` installs docker-registry",
            docs.display()
        );
    }
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    copy_tree(docs, &ws)?;
    // Debian compresses most pages; a reader unpacks them first.
    let gunzip = std::process::Command::new("gunzip")
        .args(["-r", "-f"])
        .arg(&ws)
        .status()?;
    assert!(gunzip.success());
    git(&ws, &["init", "-q"])?;
    git(&ws, &["add", "-A"])?;
    git(&ws, &["commit", "-q", "-m", "docs"])?;
    let (ran, report) = site_of(&sandbox, &ws)?;
    let site = Path::new(&report.run_dir).join("artifacts/build/site");
    // Front matter is not shown, and gives the title; images are copied; anchors are GitHub's.
    let index = std::fs::read_to_string(site.join("spec/index.html"))?;
    assert!(
        index.contains("<title>Reference Overview · docs</title>"),
        "{index}"
    );
    assert!(!index.contains("keywords: registry"), "front matter shown");
    assert!(index.contains("href=\"api.html\""), "{index}");
    assert!(site.join("spec/images/v2-registry-auth.png").is_file());
    let api = std::fs::read_to_string(site.join("spec/api.html"))?;
    assert!(api.contains("id=\"use-cases\""), "no heading anchors");
    problems_are_real(&ran, &report, &tracked_files(&ws)?)?;
    Ok(())
}
