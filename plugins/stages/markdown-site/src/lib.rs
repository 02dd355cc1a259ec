//! Build stage: renders the Markdown pages of a source archive into a static HTML site — each
//! `*.md` under `dir` becomes `site/<path>.html` in a page template, links to `.md` pages are
//! rewritten to `.html`, other files (CSS, images) are copied as they are.

use std::io::Read;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};
use serde::Deserialize;
use sluice_sdk::junit::escape;
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The folder inside the archive that holds the site's sources.
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

struct MarkdownSite;

fn render(markdown: &str) -> (String, Option<String>) {
    let mut heading: Option<String> = None;
    let mut in_heading = false;
    let events: Vec<Event> = Parser::new_ext(markdown, Options::all())
        .map(|event| match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest = rewrite_link(&dest_url);
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: CowStr::from(dest),
                    title,
                    id,
                })
            }
            other => other,
        })
        .inspect(|event| match event {
            Event::Start(Tag::Heading { .. }) if heading.is_none() => in_heading = true,
            Event::Text(text) if in_heading => {
                heading.get_or_insert_with(String::new).push_str(text);
            }
            Event::End(_) => in_heading = false,
            _ => {}
        })
        .collect();
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    (body, heading)
}

/// `page.md` → `page.html`, keeping anchors; external links unchanged.
fn rewrite_link(dest: &str) -> String {
    if dest.contains("://") || dest.starts_with("mailto:") {
        return dest.to_string();
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((path, anchor)) => (path, format!("#{anchor}")),
        None => (dest, String::new()),
    };
    match path.strip_suffix(".md") {
        Some(stem) => format!("{stem}.html{anchor}"),
        None => dest.to_string(),
    }
}

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
        // Streamed: the archive is read entry by entry; only Markdown pages are held in memory.
        let mut archive = tar::Archive::new(ctx.open(&source)?);
        let prefix = format!("{}/", config.dir.trim_end_matches('/'));
        let (mut pages, mut files) = (0, 0);
        let entries = archive
            .entries()
            .map_err(|e| Failure::new(format!("{} is not a tar archive: {e}", source.name)))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Failure::new(format!("bad archive entry: {e}")))?;
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
            if let Some(stem) = relative.strip_suffix(".md") {
                let mut content = Vec::new();
                entry
                    .read_to_end(&mut content)
                    .map_err(|e| Failure::new(format!("cannot read {path}: {e}")))?;
                let text = String::from_utf8(content)
                    .map_err(|_| Failure::new(format!("{path} is not UTF-8")))?;
                let (body, heading) = render(&text);
                let title = match heading {
                    Some(h) => format!("{} · {}", escape(&h), escape(&config.title)),
                    None => escape(&config.title),
                };
                let depth = relative.matches('/').count();
                let up = "../".repeat(depth);
                let page = format!(
                    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<link rel=\"stylesheet\" href=\"{up}style.css\">\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
                );
                ctx.write_output(&format!("site/{stem}.html"), "text/html", page)?;
                pages += 1;
            } else {
                // Any other file (images, downloads) is copied through a buffer.
                let mut out =
                    ctx.create_output(&format!("site/{relative}"), "application/octet-stream")?;
                sluice_sdk::stream::copy(&mut entry, &mut out)
                    .map_err(|e| Failure::new(format!("cannot copy {path}: {e}")))?;
                out.finish()?;
                files += 1;
            }
        }
        if pages == 0 {
            fail!("no Markdown pages under {prefix} in {}", source.name);
        }
        info!("rendered {pages} pages, copied {files} files");
        ctx.set_summary(format!("{pages} pages, {files} assets"));
        Ok(())
    }
}

sluice_sdk::stage!(MarkdownSite);
