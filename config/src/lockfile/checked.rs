//! One `[[plugin]]` or `[[local]]` entry of a lock file as read, checked: what sluice wrote
//! names a registry reference or a plugin file once, with well-formed digests.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::{Capabilities, LockedLocal, LockedPlugin, REWRITE_HINT, RawLocal, RawLocked};
use crate::diagnostic::Diagnostic;
use crate::plugin_ref::{PluginRef, check_digest};
use crate::source::Source;

/// One `[[plugin]]` entry, checked: a registry reference, two digests, listed once.
pub(super) fn checked_entry(
    raw: RawLocked,
    seen: &mut BTreeMap<String, Range<usize>>,
    src: &Source<'_>,
) -> Result<LockedPlugin, Diagnostic> {
    let reference = raw.reference.get_ref();
    PluginRef::parse(reference).map_err(|why| {
        src.error(
            raw.reference.span(),
            format!(
                "the lock file pins `{reference}`, which is not a registry plugin reference: {why}"
            ),
        )
        .with_hint(REWRITE_HINT)
    })?;
    if let Some(first) = seen.get(reference) {
        return Err(src
            .error(
                raw.reference.span(),
                format!("the lock file pins `{reference}` twice"),
            )
            .with_hint(format!(
                "it is first pinned at {}; {REWRITE_HINT}",
                src.place(first)
            )));
    }
    seen.insert(reference.clone(), raw.reference.span());
    for (key, digest) in [("manifest", &raw.manifest), ("layer", &raw.layer)] {
        check_digest(digest.get_ref()).map_err(|why| {
            src.error(
                digest.span(),
                format!("the lock file's `{key}` digest is malformed: {why}"),
            )
            .with_hint(REWRITE_HINT)
        })?;
    }
    let capabilities = match (raw.exports, raw.imports) {
        (Some(exports), Some(imports)) => Some(Capabilities::new(exports, imports)),
        (None, None) => None,
        (_, _) => {
            return Err(src
                .error(
                    raw.reference.span(),
                    format!(
                        "the lock file records half of what `{reference}` asks for: `imports` \
                         and `exports` go together"
                    ),
                )
                .with_hint(REWRITE_HINT));
        }
    };
    Ok(LockedPlugin {
        reference: raw.reference.into_inner(),
        manifest: raw.manifest.into_inner(),
        layer: raw.layer.into_inner(),
        size: raw.size,
        capabilities,
    })
}

/// One `[[local]]` entry, checked: a path listed once, a digest.
pub(super) fn checked_local(
    raw: Spanned<RawLocal>,
    seen: &mut BTreeMap<String, Range<usize>>,
    src: &Source<'_>,
) -> Result<LockedLocal, Diagnostic> {
    let raw = raw.into_inner();
    let path = raw.path.get_ref();
    if path.trim().is_empty() || path.starts_with(crate::plugin_ref::SCHEME) {
        return Err(src
            .error(
                raw.path.span(),
                format!(
                    "the lock file's [[local]] entry names `{path}`, which is not a plugin file"
                ),
            )
            .with_hint(REWRITE_HINT));
    }
    let key = format!("local:{path}");
    if let Some(first) = seen.get(&key) {
        return Err(src
            .error(
                raw.path.span(),
                format!("the lock file records local plugin `{path}` twice"),
            )
            .with_hint(format!(
                "it is first recorded at {}; {REWRITE_HINT}",
                src.place(first)
            )));
    }
    seen.insert(key, raw.path.span());
    check_digest(raw.sha256.get_ref()).map_err(|why| {
        src.error(
            raw.sha256.span(),
            format!("the lock file's `sha256` digest is malformed: {why}"),
        )
        .with_hint(REWRITE_HINT)
    })?;
    Ok(LockedLocal {
        path: raw.path.into_inner(),
        sha256: raw.sha256.into_inner(),
        size: raw.size,
        capabilities: Capabilities::new(raw.exports, raw.imports),
    })
}
