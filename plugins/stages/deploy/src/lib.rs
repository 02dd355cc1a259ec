//! Deploy stage: unpacks a release archive into `releases/<version>/` of a granted target folder
//! and switches `current` to it atomically (a symlink renamed into place), so a web server that
//! serves `current` never sees half a release. The last `keep` releases stay; `action =
//! "rollback"` switches `current` back to the release before it, or to the `version` named.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};
use wasip2::filesystem::types::Descriptor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The target folder as the stage sees it: an `allow.dirs` grant with mode "write".
    #[serde(default = "default_target")]
    target: String,
    /// "deploy" (default) or "rollback".
    #[serde(default = "default_action")]
    action: String,
    /// Name shown in the record, e.g. "production".
    #[serde(default)]
    environment: Option<String>,
    /// Releases kept in `releases/` after a deploy, the live one included (default 5); older
    /// ones are removed, oldest deploy first.
    #[serde(default = "default_keep")]
    keep: usize,
    /// For `action = "rollback"`: the release to go back to (default: the one live before).
    #[serde(default)]
    version: Option<String>,
}

fn default_keep() -> usize {
    5
}

fn default_target() -> String {
    "/deploy".into()
}
fn default_action() -> String {
    "deploy".into()
}

#[derive(Serialize, Deserialize, Clone)]
struct HistoryEntry {
    action: String,
    version: String,
    run_id: String,
}

#[derive(Serialize)]
struct Record<'a> {
    action: &'a str,
    environment: Option<&'a str>,
    version: &'a str,
    previous: Option<&'a str>,
    target: &'a str,
}

#[derive(Deserialize)]
struct ReleaseManifest {
    version: String,
    archive: ArchiveRef,
}

#[derive(Deserialize)]
struct ArchiveRef {
    name: String,
}

struct Deploy;

/// The preopened descriptor of `target`, to make and read symlinks relative to it.
fn target_dir(target: &str) -> Result<Descriptor, Failure> {
    wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, name)| name == target)
        .map(|(dir, _)| dir)
        .ok_or_else(|| {
            Failure::new(format!(
                "{target} is not mounted: grant it with allow.dirs = [{{ host = \"...\", guest = \"{target}\", mode = \"write\" }}]"
            ))
        })
}

/// The release `current` points at, if any.
fn current_version(dir: &Descriptor) -> Option<String> {
    let link = dir.readlink_at("current").ok()?;
    link.strip_prefix("releases/").map(str::to_string)
}

/// Points `current` at `releases/<version>` in one rename.
fn switch_to(dir: &Descriptor, version: &str) -> Result<(), Failure> {
    let _ = dir.unlink_file_at("current.next");
    dir.symlink_at(&format!("releases/{version}"), "current.next")
        .map_err(|code| Failure::new(format!("cannot create the current link: {code:?}")))?;
    dir.rename_at("current.next", dir, "current")
        .map_err(|code| Failure::new(format!("cannot switch current: {code:?}")))
}

fn read_history(target: &str) -> Vec<HistoryEntry> {
    std::fs::read(format!("{target}/history.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_history(target: &str, history: &[HistoryEntry]) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(history)?;
    std::fs::write(format!("{target}/history.json.next"), text)?;
    std::fs::rename(
        format!("{target}/history.json.next"),
        format!("{target}/history.json"),
    )?;
    Ok(())
}

fn deploy(ctx: &mut Context, config: &Config, dir: &Descriptor) -> Result<(), Failure> {
    let target = config.target.as_str();
    let manifest = ctx.input("release.json")?.clone();
    let manifest: ReleaseManifest = serde_json::from_slice(&ctx.read(&manifest)?)
        .map_err(|e| Failure::new(format!("release.json is not a release manifest: {e}")))?;
    let archive = ctx.input(&manifest.archive.name)?.clone();
    let version = manifest.version;
    if version.contains('/') || version.starts_with('.') {
        fail!("version `{version}` cannot name a folder");
    }
    let releases = format!("{target}/releases");
    std::fs::create_dir_all(&releases)?;
    let staging = format!("{releases}/.{version}.{}", ctx.run_id());
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    // Streamed: the archive is gunzipped and unpacked as it is read, a file at a time.
    let mut unpacked = tar::Archive::new(flate2::read::GzDecoder::new(ctx.open(&archive)?));
    let mut files = 0;
    let entries = unpacked
        .entries()
        .map_err(|e| Failure::new(format!("{} is not a .tar.gz: {e}", archive.name)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Failure::new(format!("bad archive entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| Failure::new(format!("bad archive path: {e}")))?
            .into_owned();
        if path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            fail!("the release contains an unsafe path: {}", path.display());
        }
        let dest = std::path::Path::new(&staging).join(&path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&dest)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", dest.display())))?;
        sluice_sdk::stream::copy(&mut entry, &mut file)
            .map_err(|e| Failure::new(format!("cannot unpack {}: {e}", path.display())))?;
        files += 1;
    }
    let final_dir = format!("{releases}/{version}");
    let previous = current_version(dir);
    if std::fs::metadata(&final_dir).is_ok() {
        // Redeploying a version: move the old copy aside first.
        let aside = format!("{releases}/.{version}.old.{}", ctx.run_id());
        std::fs::rename(&final_dir, &aside)?;
        std::fs::rename(&staging, &final_dir)?;
        let _ = std::fs::remove_dir_all(&aside);
    } else {
        std::fs::rename(&staging, &final_dir)?;
    }
    switch_to(dir, &version)?;
    let mut history = read_history(target);
    history.push(HistoryEntry {
        action: "deploy".into(),
        version: version.clone(),
        run_id: ctx.run_id().to_string(),
    });
    write_history(target, &history)?;
    let removed = prune(&releases, &history, &version, config.keep)?;
    if !removed.is_empty() {
        info!(
            "removed {} old releases (keep = {}): {}",
            removed.len(),
            config.keep,
            removed.join(", ")
        );
    }
    let record = Record {
        action: "deploy",
        environment: config.environment.as_deref(),
        version: &version,
        previous: previous.as_deref(),
        target,
    };
    ctx.write_output(
        "deploy.json",
        "application/json",
        serde_json::to_string_pretty(&record)?,
    )?;
    info!(
        "deployed {version} ({files} files); current was {}",
        previous.as_deref().unwrap_or("nothing")
    );
    ctx.set_summary(format!(
        "{version} is live{}",
        previous.map(|p| format!(" (was {p})")).unwrap_or_default()
    ));
    Ok(())
}

fn rollback(ctx: &mut Context, config: &Config, dir: &Descriptor) -> Result<(), Failure> {
    let target = config.target.as_str();
    let Some(current) = current_version(dir) else {
        fail!("nothing is deployed in {target}: there is nothing to roll back");
    };
    let history = read_history(target);
    let kept = |v: &str| {
        !v.contains('/')
            && !v.starts_with('.')
            && std::fs::metadata(format!("{target}/releases/{v}")).is_ok()
    };
    let previous = match &config.version {
        Some(named) if kept(named) => named.clone(),
        Some(named) => {
            let mut available = releases_in(&format!("{target}/releases"));
            available.sort();
            fail!(
                "release {named} is not in {target}/releases (kept: {}): roll back to one of those",
                available.join(", ")
            );
        }
        None => {
            let previous = history
                .iter()
                .rev()
                .map(|e| e.version.clone())
                .filter(|v| *v != current)
                .find(|v| kept(v));
            let Some(previous) = previous else {
                fail!("no release before {current} in {target}: cannot roll back");
            };
            previous
        }
    };
    switch_to(dir, &previous)?;
    let mut history = history;
    history.push(HistoryEntry {
        action: "rollback".into(),
        version: previous.clone(),
        run_id: ctx.run_id().to_string(),
    });
    write_history(target, &history)?;
    let record = Record {
        action: "rollback",
        environment: config.environment.as_deref(),
        version: &previous,
        previous: Some(&current),
        target,
    };
    ctx.write_output(
        "rollback.json",
        "application/json",
        serde_json::to_string_pretty(&record)?,
    )?;
    info!("rolled back from {current} to {previous}");
    ctx.set_summary(format!("rolled back {current} → {previous}"));
    Ok(())
}

/// The release folders in `releases` (not the hidden staging ones).
fn releases_in(releases: &str) -> Vec<String> {
    std::fs::read_dir(releases)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// Removes all but the `keep` most recently deployed releases (`live` always stays); returns
/// the versions removed.
fn prune(
    releases: &str,
    history: &[HistoryEntry],
    live: &str,
    keep: usize,
) -> Result<Vec<String>, Failure> {
    let last_deployed = |version: &str| {
        history
            .iter()
            .rposition(|e| e.version == version)
            .map_or(0, |at| at + 1)
    };
    let mut present = releases_in(releases);
    // Newest first; releases the history does not know are the oldest.
    present.sort_by_key(|v| std::cmp::Reverse((v == live, last_deployed(v))));
    let mut removed = Vec::new();
    for version in present.into_iter().skip(keep.max(1)) {
        std::fs::remove_dir_all(format!("{releases}/{version}"))
            .map_err(|e| Failure::new(format!("cannot remove old release {version}: {e}")))?;
        removed.push(version);
    }
    Ok(removed)
}

impl Stage for Deploy {
    const PHASE: Phase = Phase::Deploy;
    const DESCRIPTION: &'static str =
        "Unpacks a release into a granted folder and atomically switches `current`; rolls back";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        // Only in plugins/fixtures/deploy-v2 (see the `token` feature).
        #[cfg(feature = "token")]
        if sluice_sdk::secret("DEPLOY_TOKEN").is_ok() {
            info!("deploying with the DEPLOY_TOKEN secret");
        }
        let dir = target_dir(&config.target)?;
        match config.action.as_str() {
            "deploy" => deploy(ctx, &config, &dir),
            "rollback" => rollback(ctx, &config, &dir),
            other => Err(Failure::new(format!(
                "unknown action `{other}`: use \"deploy\" or \"rollback\""
            ))),
        }
    }
}

sluice_sdk::stage!(Deploy);
