//! Build stage: renders the Markdown pages of a source archive into a static HTML site — each
//! `*.md` under `dir` becomes `site/<path>.html` (a folder's `README.md` its `index.html` when it
//! has no `index.md`), links to pages and folders point at the pages written, headings get
//! GitHub's anchors, other files (CSS, images) are copied as they are, and a stylesheet is
//! written unless the site ships its own `style.css`.

mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use serde::Deserialize;
use sluice_sdk::junit::escape;
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

use render::{SiteMap, render};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The folder inside the archive that holds the site's sources (`"."` for the whole
    /// archive).
    #[serde(default = "default_dir")]
    dir: String,
    /// The site's name, shown in every page title.
    #[serde(default = "default_title")]
    title: String,
    /// Source files to leave out (exact paths relative to `dir`).
    #[serde(default)]
    exclude: Vec<String>,
    /// The input archive; default: the first `.tar` input.
    #[serde(default)]
    source: Option<String>,
}

fn default_dir() -> String {
    "site".into()
}
fn default_title() -> String {
    "Site".into()
}

/// The stylesheet every page links when the site brings none: readable on a laptop and a phone.
const DEFAULT_STYLE: &str = include_str!("style.css");

struct MarkdownSite;

impl Stage for MarkdownSite {
    const PHASE: Phase = Phase::Build;
    const DESCRIPTION: &'static str =
        "Renders the Markdown pages of a source archive into an HTML site";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let source = match &config.source {
            Some(reference) => ctx.input(reference)?.clone(),
            None => match ctx.inputs().iter().find(|a| a.name.ends_with(".tar")) {
                Some(artifact) => artifact.clone(),
                None => fail!("no .tar input: give this stage the checkout's archive"),
            },
        };
        let prefix = match config.dir.trim_matches('/') {
            "" | "." => String::new(),
            inner => format!("{}/", inner.trim_start_matches("./")),
        };
        // Streamed: other files are copied entry by entry; only Markdown pages are held in
        // memory, to be rendered once every page's name is known.
        let mut archive = tar::Archive::new(ctx.open(&source)?);
        let mut sources: BTreeMap<String, String> = BTreeMap::new();
        let mut copied: BTreeSet<String> = BTreeSet::new();
        let entries = archive
            .entries()
            .map_err(|e| Failure::new(format!("{} is not a tar archive: {e}", source.name)))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Failure::new(format!("bad archive entry: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(|e| Failure::new(format!("bad archive path: {e}")))?
                .to_string_lossy()
                .into_owned();
            let Some(relative) = path.strip_prefix(&prefix) else {
                continue;
            };
            if config.exclude.iter().any(|x| x == relative) || relative.is_empty() {
                continue;
            }
            if relative.ends_with(".md") {
                let mut content = Vec::new();
                entry
                    .read_to_end(&mut content)
                    .map_err(|e| Failure::new(format!("cannot read {path}: {e}")))?;
                let text = String::from_utf8(content)
                    .map_err(|_| Failure::new(format!("{path} is not UTF-8")))?;
                sources.insert(relative.to_string(), text);
            } else {
                let mut out =
                    ctx.create_output(&format!("site/{relative}"), "application/octet-stream")?;
                sluice_sdk::stream::copy(&mut entry, &mut out)
                    .map_err(|e| Failure::new(format!("cannot copy {path}: {e}")))?;
                out.finish()?;
                copied.insert(relative.to_string());
            }
        }
        if sources.is_empty() {
            fail!("no Markdown pages under {prefix} in {}", source.name);
        }
        let site = site_map(&sources, &copied);
        for (relative, text) in &sources {
            let rendered = render(text, relative, &site);
            let title = match &rendered.title {
                Some(h) => format!("{} · {}", escape(h), escape(&config.title)),
                None => escape(&config.title),
            };
            let up = "../".repeat(relative.matches('/').count());
            let page = format!(
                "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"{up}style.css\">\n</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
                rendered.body
            );
            let written = site.pages.get(relative).map_or(relative.as_str(), |p| p);
            ctx.write_output(&format!("site/{written}"), "text/html", page)?;
        }
        let styled = if copied.contains("style.css") {
            "its own style.css"
        } else {
            ctx.write_output("site/style.css", "text/css", DEFAULT_STYLE)?;
            "the default style.css"
        };
        info!(
            "rendered {} pages, copied {} files, with {styled}",
            sources.len(),
            copied.len()
        );
        ctx.set_summary(format!("{} pages, {} assets", sources.len(), copied.len()));
        Ok(())
    }
}

/// The page each source becomes, and the folders that get an index page.
fn site_map(sources: &BTreeMap<String, String>, copied: &BTreeSet<String>) -> SiteMap {
    let mut pages = BTreeMap::new();
    for relative in sources.keys() {
        let (folder, file) = match relative.rsplit_once('/') {
            Some((folder, file)) => (format!("{folder}/"), file),
            None => (String::new(), relative.as_str()),
        };
        let stem = file.strip_suffix(".md").unwrap_or(file);
        let has_index = sources.contains_key(&format!("{folder}index.md"))
            || copied.contains(&format!("{folder}index.html"));
        let index = format!("{folder}index.html");
        let name = if stem.eq_ignore_ascii_case("readme")
            && !has_index
            && !pages.values().any(|p| *p == index)
        {
            "index".to_string()
        } else {
            stem.to_string()
        };
        pages.insert(relative.clone(), format!("{folder}{name}.html"));
    }
    let folders_with_index = pages
        .values()
        .chain(copied.iter())
        .filter_map(|written| match written.rsplit_once('/') {
            Some((folder, "index.html")) => Some(folder.to_string()),
            None if written == "index.html" => Some(String::new()),
            _ => None,
        })
        .collect();
    SiteMap {
        pages,
        folders_with_index,
    }
}

sluice_sdk::stage!(MarkdownSite);
