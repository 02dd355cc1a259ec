//! What to do about a TOML or shape error in pipeline.toml: the `= help:` line, chosen from the
//! message (serde's errors carry no structure), with a "did you mean" for misspelt keys.

/// Keys of the `[pipeline]` table, which people often write at the top level by mistake.
const PIPELINE_KEYS: [&str; 7] = [
    "name",
    "description",
    "workspace",
    "limits",
    "trusted_keys",
    "provenance_key",
    "fail_fast",
];

const REFERENCE: &str = "the README's \"pipeline.toml (version 1)\" section lists every key";

pub(super) fn for_toml_error(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        return unknown_field(rest);
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return missing_field(field.trim_matches('`')).to_string();
    }
    let hint = if message.contains("expected [[stage]] tables") {
        "write each stage as a `[[stage]]` table with a `name` and a `plugin`"
    } else if message.contains("expected a list") {
        "this key takes a list: put the values in [ ], e.g. [\"a\", \"b\"]"
    } else if message.contains("expected a string") {
        "this key takes a string: put the value in double quotes"
    } else if message.contains("expected a whole number") {
        "this key takes a number: write it without quotes, e.g. 3"
    } else if message.contains("expected true or false") {
        "write true or false, without quotes"
    } else if message.starts_with("invalid type") && message.contains("table") {
        "this key takes a table: a [section] or { key = value, ... }"
    } else if message.starts_with("duplicate key") {
        "each key may appear once per table; remove one of them"
    } else {
        "this is not valid TOML here: check quotes, brackets and `key = value` syntax (https://toml.io)"
    };
    hint.to_string()
}

/// `rest` is "`input`, expected one of `name`, `plugin`, ..." (or "expected `a` or `b`").
fn unknown_field(rest: &str) -> String {
    let mut quoted = rest.split('`').skip(1).step_by(2);
    let unknown = quoted.next().unwrap_or_default();
    let expected: Vec<&str> = quoted.collect();
    if expected.contains(&"version") && PIPELINE_KEYS.contains(&unknown) {
        return format!("`{unknown}` belongs in the [pipeline] table: move it below `[pipeline]`");
    }
    match closest(unknown, &expected) {
        Some(known) => format!("did you mean `{known}`? Otherwise remove the key; {REFERENCE}"),
        None => format!("remove or rename the key; {REFERENCE}"),
    }
}

fn missing_field(field: &str) -> &'static str {
    match field {
        "pipeline" => "add a [pipeline] table with a name: `[pipeline]` then `name = \"website\"`",
        "name" => "the [pipeline] table and every [[stage]] need a `name`",
        "plugin" => {
            "every [[stage]] needs a `plugin`: a .wasm file relative to this file, or an oci:// \
             reference"
        }
        "host" | "guest" => {
            "a dir grant needs `host` (a folder, relative to this file) and `guest` (where the \
             stage sees it, e.g. \"/data\")"
        }
        _ => "add the missing key",
    }
}

/// The known key `unknown` is most likely a misspelling of, if any.
fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (distance(&unknown, k), *k))
        .filter(|(d, k)| {
            *d <= (k.len().max(unknown.len()) / 3).max(1)
                || (unknown.len() >= 3 && (k.starts_with(&unknown) || unknown.starts_with(k)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        let hint = for_toml_error("unknown field `input`, expected one of `name`, `inputs`");
        assert!(hint.starts_with("did you mean `inputs`?"), "{hint}");
        let hint = for_toml_error("unknown field `timout`, expected `timeout` or `memory`");
        assert!(hint.starts_with("did you mean `timeout`?"), "{hint}");
        let hint = for_toml_error("unknown field `zzz`, expected `timeout` or `memory`");
        assert!(hint.starts_with("remove or rename"), "{hint}");
        let hint = for_toml_error("unknown field `name`, expected one of `version`, `pipeline`");
        assert!(hint.contains("belongs in the [pipeline] table"), "{hint}");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
