//! One Markdown page to HTML: links to pages and folders of the site rewritten to the pages this
//! stage writes, an `id` on every heading (GitHub's anchors, so `#installation` links work), and
//! the page's title from its front matter's `title:` or else its first heading.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};
use sluice_sdk::links::{percent_decode, resolve};

/// What a page's links may point at: source path (`docs/guide.md`) → page written
/// (`docs/guide.html`), and the folders that have an index page.
pub struct SiteMap {
    pub pages: BTreeMap<String, String>,
    pub folders_with_index: BTreeSet<String>,
}

pub struct Rendered {
    pub body: String,
    /// The first heading's text (HTML not escaped yet).
    pub title: Option<String>,
}

pub fn render(markdown: &str, page: &str, site: &SiteMap) -> Rendered {
    let mut events: Vec<Event> = Parser::new_ext(markdown, Options::all())
        .map(|event| match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: CowStr::from(rewrite_link(&dest_url, page, site)),
                title,
                id,
            }),
            other => other,
        })
        .collect();
    let first_heading = add_heading_ids(&mut events);
    let title = front_matter_title(&events).or(first_heading);
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    Rendered { body, title }
}

/// Gives every heading without an explicit `{#id}` GitHub's id for it; returns the first
/// heading's text.
fn add_heading_ids(events: &mut [Event]) -> Option<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut first = None;
    let mut at = 0;
    while at < events.len() {
        if !matches!(events[at], Event::Start(Tag::Heading { .. })) {
            at += 1;
            continue;
        }
        let mut text = String::new();
        let mut end = at + 1;
        while end < events.len() && !matches!(events[end], Event::End(TagEnd::Heading(_))) {
            if let Event::Text(t) | Event::Code(t) = &events[end] {
                text.push_str(t);
            }
            end += 1;
        }
        let slug = slug(&text);
        let n = seen.entry(slug.clone()).or_insert(0);
        let unique = if *n == 0 { slug } else { format!("{slug}-{n}") };
        *n += 1;
        if let Event::Start(Tag::Heading { id, .. }) = &mut events[at]
            && id.is_none()
        {
            *id = Some(CowStr::from(unique));
        }
        if first.is_none() && !text.trim().is_empty() {
            first = Some(text.trim().to_string());
        }
        at = end;
    }
    first
}

/// `title:` in a YAML front matter block (`---` … `---`, as Jekyll and Hugo sites have).
fn front_matter_title(events: &[Event]) -> Option<String> {
    let mut inside = false;
    for event in events {
        match event {
            Event::Start(Tag::MetadataBlock(_)) => inside = true,
            Event::End(TagEnd::MetadataBlock(_)) => return None,
            Event::Text(text) if inside => {
                let title = text.lines().find_map(|line| line.strip_prefix("title:"))?;
                let title = title.trim().trim_matches(['"', '\'']).trim();
                return (!title.is_empty()).then(|| title.to_string());
            }
            _ if !inside => return None,
            _ => {}
        }
    }
    None
}

/// GitHub's heading anchor: lower case, letters, digits, `-` and `_` kept, spaces to `-`,
/// everything else dropped.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// A link as the page this stage writes needs it: `guide.md#x` → `guide.html#x`,
/// `README.md` → `index.html` when the README became the folder's index, `docs/` →
/// `docs/index.html`. Links out of the site and to files that are not pages are unchanged.
fn rewrite_link(dest: &str, page: &str, site: &SiteMap) -> String {
    // Links out of the site, anchors on the page, and absolute paths (they depend on where the
    // site is served) are left as written.
    if dest.contains(':') || dest.starts_with('#') || dest.starts_with('/') {
        return dest.to_string();
    }
    let (path, anchor) = match dest.find(['#', '?']) {
        Some(at) => dest.split_at(at),
        None => (dest, ""),
    };
    if path.is_empty() {
        return dest.to_string();
    }
    let Some(target) = resolve(page, &percent_decode(path)) else {
        return dest.to_string();
    };
    let trimmed = target.as_str();
    let replacement = if let Some(written) = site.pages.get(trimmed) {
        written.rsplit('/').next().unwrap_or(written).to_string()
    } else if site.folders_with_index.contains(trimmed) {
        // A folder: its index page.
        return match path.trim_end_matches('/') {
            "" => format!("index.html{anchor}"),
            base => format!("{base}/index.html{anchor}"),
        };
    } else {
        return dest.to_string();
    };
    // Only the last part of the path changes.
    let head = match path.rfind('/') {
        Some(at) => &path[..=at],
        None => "",
    };
    format!("{head}{replacement}{anchor}")
}
