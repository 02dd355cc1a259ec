//! The `[secrets]` table: named secrets and where each value comes from (a host variable or a
//! file). Values are never read here; the host reads them only for stages granted them.

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::{RawSecret, Text};
use crate::diagnostic::{Diagnostic, Site};
use crate::grants::SecretSource;
use crate::names;
use crate::source::Source;

const EXAMPLE: &str =
    "e.g. DEPLOY_TOKEN = { env = \"DEPLOY_TOKEN\" } or { file = \"secrets/token\" }";

/// Declared secrets, and where each one's source is written.
type Declared = (BTreeMap<String, SecretSource>, BTreeMap<String, Site>);

/// The declared secrets, and where each one's source is written.
pub(super) fn resolve(
    table: &BTreeMap<Text, RawSecret>,
    dir: &Path,
    src: &Source<'_>,
) -> Result<Declared, Diagnostic> {
    let mut secrets = BTreeMap::new();
    let mut sites = BTreeMap::new();
    // In file order, so the first mistake reported is the first one written.
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(name, _)| name.span().start);
    for (name, raw) in entries {
        names::check_secret_name(name.get_ref()).map_err(|why| {
            src.error(
                name.span(),
                format!("invalid secret name `{}`: {why}", name.get_ref()),
            )
            .with_hint("use up to 64 letters, digits, `_` and `-`")
        })?;
        secrets.insert(name.get_ref().clone(), source_of(name, raw, dir, src)?);
        let span = raw.file.as_ref().map_or(name.span(), Text::span);
        sites.insert(name.get_ref().clone(), src.site(span));
    }
    Ok((secrets, sites))
}

fn source_of(
    name: &Text,
    raw: &RawSecret,
    dir: &Path,
    src: &Source<'_>,
) -> Result<SecretSource, Diagnostic> {
    let secret = name.get_ref();
    match (&raw.env, &raw.file) {
        (Some(var), None) => {
            names::check_env_name(var.get_ref()).map_err(|why| {
                src.error(
                    var.span(),
                    format!("secret `{secret}`: invalid variable name `{}`: {why}", var.get_ref()),
                )
                .with_hint("name the host environment variable that holds the value, e.g. \"DEPLOY_TOKEN\"")
            })?;
            names::check_readable_variable(var.get_ref()).map_err(|why| {
                src.error(var.span(), format!("secret `{secret}`: {why}"))
                    .with_hint("keep the value in a variable of its own, e.g. DEPLOY_TOKEN")
            })?;
            Ok(SecretSource::Env(var.get_ref().clone()))
        }
        (None, Some(file)) if file.get_ref().trim().is_empty() => Err(src
            .error(
                file.span(),
                format!("secret `{secret}`: the file path is empty"),
            )
            .with_hint("name the file holding the value, relative to the pipeline file")),
        (None, Some(file)) => Ok(SecretSource::File(dir.join(file.get_ref()))),
        (Some(_), Some(file)) => Err(src
            .error(
                file.span(),
                format!("secret `{secret}` has both `env` and `file`"),
            )
            .with_hint(format!("give it exactly one source, {EXAMPLE}"))),
        (None, None) => Err(src
            .error(
                name.span(),
                format!("secret `{secret}` needs exactly one of `env` or `file`"),
            )
            .with_hint(format!("give it exactly one source, {EXAMPLE}"))),
    }
}
