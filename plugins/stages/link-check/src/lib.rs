//! Test stage: every link inside the HTML pages among its inputs must point at a file of the same
//! site, and a `#anchor` at an anchor of that page. Links that leave the site (`../x` above its
//! root) are their own kind of problem; links to other sites are counted, not followed (the stage
//! has no network). Writes one JUnit test case per page and `links.json`, and fails on any
//! problem.

mod html;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sluice_sdk::junit::JUnit;
use sluice_sdk::links::{percent_decode, resolve};
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Only inputs under this prefix form the site (default "site/").
    #[serde(default)]
    root: Option<String>,
    /// Links that leave the site: `"fail"` (default) or `"warn"`.
    #[serde(default)]
    outside: Option<String>,
    /// Links starting with one of these are not checked.
    #[serde(default)]
    ignore: Vec<String>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    /// No file of the site is there.
    Broken,
    /// The page is there, the anchor is not.
    MissingAnchor,
    /// Above the site's root.
    Outside,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::MissingAnchor => "missing anchor",
            Self::Outside => "leaves the site",
        }
    }

    fn describe(self, n: usize) -> String {
        let plural = if n == 1 { "" } else { "s" };
        match self {
            Self::Broken => format!("{n} broken link{plural}"),
            Self::MissingAnchor => format!("{n} missing anchor{plural}"),
            Self::Outside => format!("{n} link{plural} leaving the site"),
        }
    }
}

#[derive(Serialize)]
struct Problem {
    page: String,
    link: String,
    kind: Kind,
}

#[derive(Serialize)]
struct LinkReport {
    pages: usize,
    checked: usize,
    /// Links to other sites, not followed.
    external: usize,
    ignored: usize,
    problems: Vec<Problem>,
}

struct Page {
    links: Vec<String>,
    anchors: BTreeSet<String>,
}

struct LinkCheck;

/// Whether `link` on `page` reaches a file (and anchor) of the site.
fn check_link(
    page: &str,
    link: &str,
    files: &BTreeSet<String>,
    pages: &BTreeMap<String, Page>,
) -> Option<Kind> {
    let (path, fragment) = match link.split_once('#') {
        Some((path, fragment)) => (path, Some(percent_decode(fragment))),
        None => (link, None),
    };
    let path = path.split('?').next().unwrap_or_default();
    let target = if path.is_empty() {
        page.to_string()
    } else {
        let decoded = percent_decode(path);
        let resolved = match resolve(page, &decoded) {
            Some(resolved) => resolved,
            None => return Some(Kind::Outside),
        };
        let folder_index = |folder: &str| match folder.trim_end_matches('/') {
            "" => "index.html".to_string(),
            folder => format!("{folder}/index.html"),
        };
        if decoded.ends_with('/') || resolved.is_empty() {
            folder_index(&resolved)
        } else if files.contains(&resolved) {
            resolved
        } else {
            // `docs` for `docs/index.html`, as a web server redirects it.
            folder_index(&resolved)
        }
    };
    if !files.contains(&target) {
        return Some(Kind::Broken);
    }
    match (fragment, pages.get(&target)) {
        (Some(fragment), Some(target_page))
            if !fragment.is_empty()
                && fragment != "top"
                && !target_page.anchors.contains(&fragment) =>
        {
            Some(Kind::MissingAnchor)
        }
        _ => None,
    }
}

/// "2 broken links, 1 missing anchor".
fn summary(problems: &[&Problem]) -> String {
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for problem in problems {
        *by_kind.entry(problem.kind).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| k.describe(*n)).collect();
    kinds.join(", ")
}

fn is_external(link: &str) -> bool {
    // A scheme (`https:`, `mailto:`, `data:`) before any `/`, `?` or `#`.
    link.starts_with("//")
        || link
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|first| first.contains(':'))
}

impl Stage for LinkCheck {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Checks every internal link and anchor of an HTML site; writes JUnit XML";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let root = config.root.unwrap_or_else(|| "site/".into());
        let outside_fails = match config.outside.as_deref() {
            None | Some("fail") => true,
            Some("warn") => false,
            Some(other) => {
                return Err(Failure::new(format!(
                    "outside = {other:?}: use \"fail\" or \"warn\""
                )));
            }
        };
        let inputs: Vec<_> = ctx
            .inputs()
            .iter()
            .filter(|a| a.name.starts_with(&root))
            .cloned()
            .collect();
        let files: BTreeSet<String> = inputs
            .iter()
            .map(|a| a.name[root.len()..].to_string())
            .collect();
        let mut pages = BTreeMap::new();
        for input in inputs.iter().filter(|a| a.name.ends_with(".html")) {
            let text = ctx.read_to_string(input)?;
            pages.insert(
                input.name[root.len()..].to_string(),
                Page {
                    links: html::links(&text),
                    anchors: html::anchors(&text).into_iter().collect(),
                },
            );
        }
        let mut report = LinkReport {
            pages: pages.len(),
            checked: 0,
            external: 0,
            ignored: 0,
            problems: Vec::new(),
        };
        let mut junit = JUnit::new("link-check");
        for (name, page) in &pages {
            let mut found = Vec::new();
            for link in &page.links {
                if config.ignore.iter().any(|prefix| link.starts_with(prefix)) {
                    report.ignored += 1;
                } else if is_external(link) {
                    report.external += 1;
                } else {
                    report.checked += 1;
                    if let Some(kind) = check_link(name, link, &files, &pages) {
                        found.push(Problem {
                            page: name.clone(),
                            link: link.clone(),
                            kind,
                        });
                    }
                }
            }
            if found.is_empty() {
                junit.passed("links", name);
            } else {
                let lines: Vec<String> = found
                    .iter()
                    .map(|p| format!("{}: {}", p.link, p.kind.label()))
                    .collect();
                warn!("{name}: {}", lines.join(", "));
                let blocking: Vec<&Problem> = found
                    .iter()
                    .filter(|p| outside_fails || p.kind != Kind::Outside)
                    .collect();
                if !blocking.is_empty() {
                    let message = summary(&blocking);
                    junit.failed("links", name, &message, &lines.join("\n"));
                } else {
                    junit.passed("links", name);
                }
            }
            report.problems.extend(found);
        }
        let failures = junit.failures();
        ctx.write_output("junit.xml", "application/xml", junit.to_xml())?;
        ctx.write_output(
            "links.json",
            "application/json",
            serde_json::to_string_pretty(&report)?,
        )?;
        if pages.is_empty() {
            return Err(Failure::new(format!(
                "no HTML pages under {root} among the inputs"
            )));
        }
        let blocking: Vec<&Problem> = report
            .problems
            .iter()
            .filter(|p| outside_fails || p.kind != Kind::Outside)
            .collect();
        if let Some(first) = blocking.first() {
            return Err(Failure::new(format!(
                "{} on {failures} of {} pages; first: {} → {} (all in links.json)",
                summary(&blocking),
                report.pages,
                first.page,
                first.link
            )));
        }
        info!(
            "{} links on {} pages are fine ({} to other sites, not followed)",
            report.checked, report.pages, report.external
        );
        ctx.set_summary(format!(
            "{} pages, {} links, none broken",
            report.pages, report.checked
        ));
        Ok(())
    }
}

sluice_sdk::stage!(LinkCheck);
