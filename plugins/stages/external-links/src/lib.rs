//! Test stage: follows the links of an HTML site that leave it (`http://`, `https://`) — the ones
//! `link-check` counts but cannot follow, having no network. It needs `allow.net` for the hosts
//! to check; a link to a host not granted is listed as not checked (and the run's record shows
//! the refusal), never as broken. Each URL is requested once; a status of 400 or more, or no
//! answer, is a broken link. Writes `external-links.json` and JUnit XML.

// link-check's page reader; this stage uses its links, not its anchors.
#[allow(dead_code)]
#[path = "../../link-check/src/html.rs"]
mod html;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_sdk::junit::JUnit;
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Only inputs under this prefix form the site (default "site/").
    #[serde(default)]
    root: Option<String>,
    /// URLs starting with one of these are not requested.
    #[serde(default)]
    ignore: Vec<String>,
    /// Per request (default 5000).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum Verdict {
    Ok,
    Broken,
    NotGranted,
}

#[derive(Serialize)]
struct Checked {
    url: String,
    verdict: Verdict,
    /// The HTTP status, when there was an answer.
    status: Option<u16>,
    detail: Option<String>,
    /// The pages that link to it.
    pages: BTreeSet<String>,
}

struct ExternalLinks;

fn request(url: &str, timeout: Duration) -> (Verdict, Option<u16>, Option<String>) {
    match waki::Client::new().get(url).connect_timeout(timeout).send() {
        Ok(response) => {
            let status = response.status_code();
            if status >= 400 {
                (
                    Verdict::Broken,
                    Some(status),
                    Some(format!("status {status}")),
                )
            } else {
                (Verdict::Ok, Some(status), None)
            }
        }
        Err(err) => {
            let text = format!("{err:#}");
            if text.contains("Denied") || text.contains("denied") {
                (Verdict::NotGranted, None, Some(text))
            } else {
                (Verdict::Broken, None, Some(format!("no answer: {text}")))
            }
        }
    }
}

impl Stage for ExternalLinks {
    const PHASE: Phase = Phase::Test;
    const DESCRIPTION: &'static str =
        "Follows an HTML site's links to other sites over the granted hosts; writes JUnit XML";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let root = config.root.unwrap_or_else(|| "site/".into());
        let timeout = Duration::from_millis(config.timeout_ms.unwrap_or(5000));
        let pages: Vec<_> = ctx
            .inputs()
            .iter()
            .filter(|a| a.name.starts_with(&root) && a.name.ends_with(".html"))
            .cloned()
            .collect();
        if pages.is_empty() {
            return Err(Failure::new(format!(
                "no HTML pages under {root} among the inputs"
            )));
        }
        // URL (without its #fragment) → the pages linking to it.
        let mut urls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for page in &pages {
            let text = ctx.read_to_string(page)?;
            for link in html::links(&text) {
                let lower = link.to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://"))
                    || config.ignore.iter().any(|p| link.starts_with(p))
                {
                    continue;
                }
                let url = link.split('#').next().unwrap_or_default().to_string();
                urls.entry(url)
                    .or_default()
                    .insert(page.name[root.len()..].to_string());
            }
        }
        let mut checked = Vec::new();
        for (url, linking) in urls {
            let (verdict, status, detail) = request(&url, timeout);
            checked.push(Checked {
                url,
                verdict,
                status,
                detail,
                pages: linking,
            });
        }
        let mut junit = JUnit::new("external-links");
        let (mut broken, mut not_granted) = (Vec::new(), Vec::new());
        for link in &checked {
            match link.verdict {
                Verdict::Ok => junit.passed("external", &link.url),
                Verdict::NotGranted => {
                    junit.skipped("external", &link.url);
                    not_granted.push(link.url.as_str());
                }
                Verdict::Broken => {
                    let detail = link.detail.clone().unwrap_or_default();
                    let on: Vec<&str> = link.pages.iter().map(String::as_str).collect();
                    warn!("{} ({detail}), linked from {}", link.url, on.join(", "));
                    junit.failed("external", &link.url, &detail, &on.join("\n"));
                    broken.push(format!("{} ({detail})", link.url));
                }
            }
        }
        ctx.write_output("junit.xml", "application/xml", junit.to_xml())?;
        ctx.write_output(
            "external-links.json",
            "application/json",
            serde_json::to_string_pretty(&checked)?,
        )?;
        if !not_granted.is_empty() {
            info!(
                "{} links not checked, their hosts are not granted (allow.net): {}",
                not_granted.len(),
                not_granted.join(", ")
            );
        }
        if let Some(first) = broken.first() {
            return Err(Failure::new(format!(
                "{} of {} external links are broken; first: {first}",
                broken.len(),
                checked.len()
            )));
        }
        let fine = checked.len() - not_granted.len();
        ctx.set_summary(format!(
            "{fine} external links fine, {} not checked (hosts not granted)",
            not_granted.len()
        ));
        Ok(())
    }
}

sluice_sdk::stage!(ExternalLinks);
