//! What link-check reads from a page: the targets of its links (`href`, `src`) and the anchors it
//! offers (`id`, `<a name>`), with HTML entities and percent-encoding decoded.

/// The values of `href`, `src`, `id` and `name` attributes, quoted with `"` or `'` or not at all.
fn attribute_values<'a>(html: &'a str, names: &[&str]) -> Vec<&'a str> {
    let mut found = Vec::new();
    let bytes = html.as_bytes();
    let mut at = 0;
    while let Some(offset) = html[at..].find('=') {
        let eq = at + offset;
        at = eq + 1;
        // The attribute's name just before `=`, after whitespace.
        let name_start = html[..eq]
            .rfind(|c: char| c.is_whitespace() || c == '<')
            .map_or(0, |i| i + 1);
        let name = html[name_start..eq].trim();
        let value = match bytes.get(at) {
            Some(&quote @ (b'"' | b'\'')) => {
                let Some(end) = html[at + 1..].find(quote as char) else {
                    break;
                };
                let value = &html[at + 1..at + 1 + end];
                at += end + 2;
                value
            }
            Some(_) => {
                let end = html[at..]
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(html.len() - at);
                let value = &html[at..at + end];
                at += end;
                value
            }
            None => break,
        };
        // A value is skipped whole, so `alt="x href=y"` names nothing.
        if name_start == 0 || !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        found.push(value);
    }
    found
}

/// Where the page links to.
pub fn links(html: &str) -> Vec<String> {
    attribute_values(html, &["href", "src"])
        .into_iter()
        .map(decode_entities)
        .collect()
}

/// The anchors other pages can link to (`#x`): every `id`, and `name` (old-style `<a name>`).
pub fn anchors(html: &str) -> Vec<String> {
    attribute_values(html, &["id", "name"])
        .into_iter()
        .map(decode_entities)
        .collect()
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;` and numeric references.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
