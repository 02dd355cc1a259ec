//! `[stage.allow]`: turning what a user wrote into [`Grants`], refusing anything malformed,
//! ambiguous or repeated, since a grant is a security decision.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use super::raw::{RawAllow, RawDir, Text};
use crate::diagnostic::Diagnostic;
use crate::grants::{Access, CacheGrant, DirGrant, Grants, NetGrant};
use crate::names;
use crate::source::{Source, Unique};

/// Guest paths the host mounts itself (`/sluice` holds the cache volumes).
const RESERVED_GUEST_PATHS: [&str; 4] = ["/in", "/out", "/workspace", "/sluice"];

impl RawAllow {
    /// Validates the grants; `declared_secrets` are the names in the `[secrets]` table.
    pub(crate) fn resolve(
        &self,
        pipeline_dir: &Path,
        declared_secrets: &BTreeSet<String>,
        src: &Source<'_>,
    ) -> Result<Grants, Diagnostic> {
        let mut grants = Grants::none();
        if let Some(mode) = &self.workspace {
            grants.workspace = parse_access(mode, src)?;
        }
        let mut guests = BTreeMap::new();
        for dir in &self.dirs {
            grants
                .dirs
                .push(dir_grant(dir, pipeline_dir, &mut guests, src)?);
        }
        let mut seen = Unique::default();
        for name in &self.env {
            let text = name.get_ref();
            names::check_env_name(text).map_err(|why| {
                src.error(name.span(), format!("invalid variable name `{text}`: {why}"))
                    .with_hint("list environment variable names only, e.g. \"RUST_LOG\"; values come from the host")
            })?;
            names::check_readable_variable(text).map_err(|why| {
                src.error(name.span(), why)
                    .with_hint("grant the stage a secret declared in [secrets] instead, from a variable of its own")
            })?;
            seen.check(src, text, name.span(), || {
                format!("`{text}` is listed twice in `env`")
            })?;
            grants.env.push(text.clone());
        }
        let mut seen = Unique::default();
        for entry in &self.net {
            let grant = parse_net(entry, src)?;
            let key = grant.to_string();
            seen.check(src, &key, entry.span(), || {
                format!("`{key}` is listed twice in `net`")
            })?;
            grants.net.push(grant);
        }
        let mut seen = Unique::default();
        for program in &self.exec {
            let text = program.get_ref();
            if text.trim().is_empty() || text.contains(char::is_whitespace) {
                return Err(src.error(program.span(), format!("invalid program `{text}`: a program name has no spaces"))
                    .with_hint("list program names (\"cargo\") or absolute paths; arguments are chosen by the plugin"));
            }
            if text.starts_with(names::WORKSPACE_PROGRAM_PREFIX) {
                if names::workspace_program(text).is_none() {
                    return Err(src
                        .error(program.span(), format!("program `{text}` is not a plain path inside the workspace"))
                        .with_hint("write `${workspace}/` and a relative path without `.` or `..` parts, e.g. \"${workspace}/.venv/bin/python\""));
                }
                if grants.workspace == Access::None {
                    return Err(src
                        .error(program.span(), format!("program `{text}` is in the workspace, which this stage is not granted"))
                        .with_hint("grant the workspace (workspace = \"read\") or name a program on the host's PATH"));
                }
            } else if text.contains('/') && !text.starts_with('/') {
                return Err(src
                    .error(
                        program.span(),
                        format!("program `{text}` is a relative path"),
                    )
                    .with_hint(
                        "name a program found on the host's PATH (\"cargo\"), give its absolute path, or one in the workspace as \"${workspace}/.venv/bin/python\"",
                    ));
            }
            seen.check(src, text, program.span(), || {
                format!("`{text}` is listed twice in `exec`")
            })?;
            grants.exec.push(text.clone());
        }
        let mut seen = Unique::default();
        for (name, checked) in self
            .exec_env
            .iter()
            .map(|n| (n, true))
            .chain(self.exec_env_unchecked.iter().map(|n| (n, false)))
        {
            let text = name.get_ref();
            let key = if checked {
                "exec_env"
            } else {
                "exec_env_unchecked"
            };
            names::check_env_name(text).map_err(|why| {
                src.error(name.span(), format!("invalid variable name `{text}`: {why}"))
                    .with_hint("list the names of variables the plugin may set on its programs, e.g. \"CARGO_TERM_COLOR\"")
            })?;
            if names::is_program_hook(text) {
                return Err(src
                    .error(
                        name.span(),
                        format!("`{text}` cannot be granted in `{key}`: it makes programs load or run other code"),
                    )
                    .with_hint(
                        "loader, interpreter and tool hooks (LD_*, PATH, HOME, BASH_ENV, NODE_OPTIONS, PYTHON*, GIT_*, RUSTC_WRAPPER, CFLAGS, GOFLAGS, proxies, ...) are never settable by a plugin; if the host must set one, export it on the host and list it in `env`",
                    ));
            }
            if checked && !names::is_safe_exec_variable(text) {
                return Err(src
                    .error(
                        name.span(),
                        format!("`{text}` is not on sluice's list of variables safe for a plugin to set on a program"),
                    )
                    .with_hint(format!(
                        "`exec_env` takes only names that change how output looks, the locale or time zone, or how much is logged ({}); to let the plugin choose `{text}` anyway, list it in `exec_env_unchecked` (sluice check shows it as unchecked)",
                        names::SAFE_EXEC_VARIABLES.join(", ")
                    )));
            }
            seen.check(src, text, name.span(), || {
                format!("`{text}` is listed twice in `exec_env`/`exec_env_unchecked`")
            })?;
            grants.exec_env.push(text.clone());
            if !checked {
                grants.exec_env_unchecked.push(text.clone());
            }
        }
        if let (Some(first), true) = (
            self.exec_env.first().or(self.exec_env_unchecked.first()),
            self.exec.is_empty(),
        ) {
            return Err(src
                .error(first.span(), "`exec_env` grants nothing without `exec`")
                .with_hint("list the programs the stage may run in `exec`, or remove `exec_env`"));
        }
        let mut variables = Unique::default();
        for (name, env) in &self.caches {
            grants
                .caches
                .push(cache_grant(name, env, &mut variables, src)?);
        }
        let mut seen = Unique::default();
        for secret in &self.secrets {
            let text = secret.get_ref();
            if !declared_secrets.contains(text) {
                return Err(undeclared_secret(secret, declared_secrets, src));
            }
            seen.check(src, text, secret.span(), || {
                format!("secret `{text}` is listed twice in `secrets`")
            })?;
            grants.secrets.push(text.clone());
        }
        Ok(grants)
    }
}

/// One `caches` entry: a volume name and the variable its programs find it in.
fn cache_grant(
    name: &str,
    env: &Text,
    variables: &mut Unique,
    src: &Source<'_>,
) -> Result<CacheGrant, Diagnostic> {
    names::check_stage_name(name).map_err(|why| {
        src.error(env.span(), format!("invalid cache volume name `{name}`: {why}"))
            .with_hint("name a volume like a stage: letters, digits, `-` and `_`, e.g. `cargo-target = \"CARGO_TARGET_DIR\"`")
    })?;
    let variable = env.get_ref();
    names::check_env_name(variable).map_err(|why| {
        src.error(
            env.span(),
            format!("invalid variable name `{variable}`: {why}"),
        )
        .with_hint(
            "give the variable the stage's programs find the volume in, e.g. \"CARGO_TARGET_DIR\"",
        )
    })?;
    if !names::CACHE_VARIABLES.contains(&variable.as_str()) {
        return Err(src
            .error(
                env.span(),
                format!("`{variable}` cannot point at a cache volume: it is not a variable a tool reads only its cache folder from"),
            )
            .with_hint(format!(
                "use one of {}",
                names::CACHE_VARIABLES.join(", ")
            )));
    }
    variables.check(src, variable, env.span(), || {
        format!("`{variable}` names two cache volumes")
    })?;
    Ok(CacheGrant {
        name: name.to_string(),
        env: variable.clone(),
    })
}

/// One `dirs` entry; `guests` holds the guest paths used so far and where.
fn dir_grant(
    dir: &RawDir,
    pipeline_dir: &Path,
    guests: &mut BTreeMap<String, Range<usize>>,
    src: &Source<'_>,
) -> Result<DirGrant, Diagnostic> {
    let guest = dir.guest.get_ref().trim_end_matches('/').to_string();
    let valid = guest.len() > 1
        && guest.starts_with('/')
        && guest[1..]
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if !valid {
        return Err(src
            .error(dir.guest.span(), format!("invalid guest path `{guest}`"))
            .with_hint(
                "guest paths are absolute and plain, e.g. \"/dist\": they start with `/` and \
                 have no `.` or `..` parts",
            ));
    }
    if RESERVED_GUEST_PATHS.contains(&guest.as_str()) || guest.starts_with("/sluice/") {
        return Err(src
            .error(dir.guest.span(), format!("guest path `{guest}` is already used by sluice"))
            .with_hint("/in, /out, /workspace and /sluice are reserved; mount the folder somewhere else, e.g. \"/data\""));
    }
    if let Some(first) = guests.get(&guest) {
        return Err(src
            .error(
                dir.guest.span(),
                format!("guest path `{guest}` is already used"),
            )
            .with_hint(format!(
                "another dir is mounted there at {}; give each dir its own guest path",
                src.place(first)
            )));
    }
    guests.insert(guest.clone(), dir.guest.span());
    let host = dir.host.get_ref();
    if host.trim().is_empty() {
        return Err(src
            .error(dir.host.span(), "the host path is empty")
            .with_hint("name a folder, relative to the pipeline file"));
    }
    let access = match &dir.mode {
        Some(mode) => parse_access(mode, src)?,
        None => Access::Read,
    };
    if access == Access::None {
        let span = dir.mode.as_ref().map_or(dir.host.span(), Text::span);
        return Err(src
            .error(span, "a dir grant with mode \"none\" grants nothing")
            .with_hint("use \"read\" or \"write\", or remove the entry"));
    }
    Ok(DirGrant {
        host: pipeline_dir.join(host),
        guest,
        access,
        optional: dir.optional,
        site: src.site(dir.host.span()),
    })
}

fn undeclared_secret(secret: &Text, declared: &BTreeSet<String>, src: &Source<'_>) -> Diagnostic {
    let name = secret.get_ref();
    let hint = if declared.is_empty() {
        format!("declare it in a [secrets] table, e.g. {name} = {{ env = \"{name}\" }}")
    } else {
        format!(
            "name one of the declared secrets ({}), or declare `{name}` in [secrets]",
            declared.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    src.error(secret.span(), format!("secret `{name}` is not declared"))
        .with_hint(hint)
}

fn parse_access(mode: &Text, src: &Source<'_>) -> Result<Access, Diagnostic> {
    match mode.get_ref().as_str() {
        "none" => Ok(Access::None),
        "read" => Ok(Access::Read),
        "write" => Ok(Access::Write),
        other => Err(src
            .error(mode.span(), format!("invalid access mode `{other}`"))
            .with_hint("use \"none\", \"read\" or \"write\"")),
    }
}

fn parse_net(entry: &Text, src: &Source<'_>) -> Result<NetGrant, Diagnostic> {
    let text = entry.get_ref();
    let bad = |why: &str| {
        src.error(
            entry.span(),
            format!("invalid network grant `{text}`: {why}"),
        )
        .with_hint("write `host:port`, e.g. \"127.0.0.1:8080\" or \"registry.example.com:443\"")
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no `:port`"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(bad("the host is empty or not a host name"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("port 0 is not a real port"));
    }
    Ok(NetGrant {
        host: host.to_ascii_lowercase(),
        port,
    })
}
