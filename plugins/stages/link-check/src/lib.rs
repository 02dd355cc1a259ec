//! Test stage: every `href` and `src` inside the HTML pages among its inputs must point at a
//! file of the same site. Writes one JUnit test case per page and fails on any broken link.

use std::collections::BTreeSet;

use serde::Deserialize;
use sluice_sdk::junit::JUnit;
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Only inputs under this prefix form the site (default "site/").
    #[serde(default)]
    root: Option<String>,
}

struct LinkCheck;

/// The values of `href="..."` and `src="..."` attributes.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            if let Some(end) = rest.find('"') {
                found.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    found
}

/// `target` resolved against the folder of `page`, or None when it leaves the site.
fn resolve(page: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        page.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for part in target.trim_start_matches('/').split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

impl Stage for LinkCheck {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Checks every internal link of an HTML site; writes JUnit XML";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let root = config.root.unwrap_or_else(|| "site/".into());
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
        let mut junit = JUnit::new("link-check");
        let (mut pages, mut broken_total, mut checked) = (0, 0, 0);
        let mut first_broken = None;
        for input in inputs.iter().filter(|a| a.name.ends_with(".html")) {
            pages += 1;
            let page = &input.name[root.len()..];
            let html = ctx.read_to_string(input)?;
            let mut broken = Vec::new();
            for link in links(&html) {
                if link.contains("://") || link.starts_with("mailto:") || link.starts_with('#') {
                    continue;
                }
                checked += 1;
                let path = link.split(['#', '?']).next().unwrap_or_default();
                let target = resolve(page, path).map(|t| {
                    if t.is_empty() || t.ends_with('/') {
                        format!("{t}index.html")
                    } else {
                        t
                    }
                });
                if !target.is_some_and(|t| files.contains(&t)) {
                    broken.push(link);
                }
            }
            if broken.is_empty() {
                junit.passed("links", page);
            } else {
                warn!("{page}: broken links: {}", broken.join(", "));
                first_broken.get_or_insert_with(|| format!("{page} → {}", broken[0]));
                broken_total += broken.len();
                let message = format!("{} broken links", broken.len());
                junit.failed("links", page, &message, &broken.join("\n"));
            }
        }
        let failures = junit.failures();
        ctx.write_output("junit.xml", "application/xml", junit.to_xml())?;
        if pages == 0 {
            return Err(Failure::new(format!(
                "no HTML pages under {root} among the inputs"
            )));
        }
        if let Some(first) = first_broken {
            return Err(Failure::new(format!(
                "{broken_total} broken links on {failures} of {pages} pages; first: {first}"
            )));
        }
        info!("{checked} links on {pages} pages are fine");
        ctx.set_summary(format!("{pages} pages, {checked} links, none broken"));
        Ok(())
    }
}

sluice_sdk::stage!(LinkCheck);
