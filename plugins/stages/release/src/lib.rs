//! Release stage: packs chosen artifacts into `<name>-<version>.tar.gz` (byte-identical when
//! rebuilt from the same inputs), writes `release.json` — name, semver version (set, tagged or
//! from `VERSION`), commit, every artifact with its digest, and the digest of every plugin that
//! ran before it — and `SHA256SUMS` of both, which `sha256sum -c` checks.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    /// A semver version; default: the `vX.Y.Z` tag at the checked-out commit (the checkout's
    /// `source.json`), else the source archive's `VERSION` file (the one nearest its root).
    #[serde(default)]
    version: Option<String>,
    /// Only inputs whose names start with one of these go into the archive (default: all but
    /// the checkout's source.tar and source.json).
    #[serde(default)]
    include: Vec<String>,
    /// Strip this prefix from names inside the archive, e.g. "site/".
    #[serde(default)]
    strip_prefix: Option<String>,
}

#[derive(Serialize)]
struct Manifest {
    name: String,
    version: String,
    commit: Option<String>,
    branch: Option<String>,
    dirty: Option<bool>,
    pipeline: String,
    run_id: String,
    archive: FileDigest,
    artifacts: Vec<FileDigest>,
    plugins: Vec<PluginDigest>,
}

#[derive(Serialize)]
struct FileDigest {
    name: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize)]
struct PluginDigest {
    stage: String,
    plugin: String,
    version: String,
    sha256: String,
}

#[derive(Deserialize, Default)]
struct SourceInfo {
    commit: Option<String>,
    branch: Option<String>,
    dirty: Option<bool>,
    #[serde(default)]
    tags: Vec<String>,
}

/// The highest `v1.2.3` / `1.2.3` tag among `tags`.
fn version_from_tags(tags: &[String]) -> Option<semver::Version> {
    tags.iter()
        .filter_map(|t| semver::Version::parse(t.strip_prefix('v').unwrap_or(t)).ok())
        .max()
}

struct Release;

/// The `VERSION` file nearest the source archive's root.
fn version_from_source(ctx: &Context) -> Result<Option<(String, String)>, Failure> {
    let Some(source) = ctx.inputs().iter().find(|a| a.name.ends_with(".tar")) else {
        return Ok(None);
    };
    let mut archive = tar::Archive::new(ctx.open(source)?);
    let entries = archive
        .entries()
        .map_err(|e| Failure::new(format!("bad archive: {e}")))?;
    let mut best: Option<(usize, String, String)> = None;
    for entry in entries.flatten() {
        let mut entry = entry;
        let Ok(path) = entry.path().map(|p| p.into_owned()) else {
            continue;
        };
        if path.file_name().is_none_or(|n| n != "VERSION") {
            continue;
        }
        let depth = path.components().count();
        if best.as_ref().is_some_and(|(d, _, _)| *d <= depth) {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)?;
        best = Some((depth, path.display().to_string(), text.trim().to_string()));
    }
    Ok(best.map(|(_, path, version)| (path, version)))
}

impl Stage for Release {
    const PHASE: Phase = Phase::Release;
    const DESCRIPTION: &'static str = "Versioned .tar.gz of chosen artifacts, SHA256SUMS and a release manifest with every plugin's digest";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let source: SourceInfo = ctx
            .inputs()
            .iter()
            .find(|a| a.name == "source.json")
            .map(|a| ctx.read(a))
            .transpose()?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let parsed = match &config.version {
            Some(version) => semver::Version::parse(version)
                .map_err(|e| Failure::new(format!("version `{version}` is not semver: {e}")))?,
            None => {
                let tagged = version_from_tags(&source.tags);
                let file = version_from_source(ctx)?;
                match (tagged, file) {
                    (Some(tag), Some((path, text))) if text != tag.to_string() => fail!(
                        "the commit is tagged {tag} but {path} says {text:?}: make them agree, or set `version`"
                    ),
                    (Some(tag), _) => tag,
                    (None, Some((path, text))) => semver::Version::parse(&text).map_err(|e| {
                        Failure::new(format!("{path} says {text:?}, which is not semver: {e}"))
                    })?,
                    (None, None) => fail!(
                        "no version: tag the commit (v1.2.3), add a VERSION file to the source, or set `version` in [stage.config]"
                    ),
                }
            }
        };
        let chosen: Vec<_> = ctx
            .inputs()
            .iter()
            .filter(|a| {
                if config.include.is_empty() {
                    a.name != "source.tar" && a.name != "source.json"
                } else {
                    config
                        .include
                        .iter()
                        .any(|p| a.name.starts_with(p.as_str()))
                }
            })
            .cloned()
            .collect();
        if chosen.is_empty() {
            fail!("nothing to release: no inputs match `include`");
        }
        // Streamed end to end: each artifact is read through a buffer into the tar stream, which
        // is gzipped and written to the output file as it goes; the host then hashes the archive.
        let archive_name = format!("{}-{parsed}.tar.gz", config.name);
        let out = ctx.create_output(&archive_name, "application/gzip")?;
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut artifacts = Vec::new();
        for artifact in &chosen {
            let name = match &config.strip_prefix {
                Some(prefix) => artifact
                    .name
                    .strip_prefix(prefix.as_str())
                    .unwrap_or(&artifact.name),
                None => &artifact.name,
            };
            let file = ctx.open(artifact)?;
            let size = file
                .get_ref()
                .metadata()
                .map_err(|e| Failure::new(format!("cannot read input {}: {e}", artifact.path)))?
                .len();
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, file)
                .map_err(|e| Failure::new(format!("cannot archive {name}: {e}")))?;
            artifacts.push(FileDigest {
                name: name.to_string(),
                size: artifact.size,
                sha256: artifact.sha256.clone(),
            });
        }
        let gz = tar
            .into_inner()
            .map_err(|e| Failure::new(format!("cannot finish the archive: {e}")))?;
        let out = gz.finish()?;
        let archive_path = out.path().to_path_buf();
        out.finish()?;
        let archive_digest = sluice_sdk::sha256_file(&archive_path)?;
        let archive_size = std::fs::metadata(&archive_path)?.len();
        let manifest = Manifest {
            name: config.name.clone(),
            version: parsed.to_string(),
            commit: source.commit,
            branch: source.branch,
            dirty: source.dirty,
            pipeline: ctx.pipeline().to_string(),
            run_id: ctx.run_id().to_string(),
            archive: FileDigest {
                name: archive_name.clone(),
                size: archive_size,
                sha256: archive_digest,
            },
            artifacts,
            plugins: ctx
                .earlier_stages()
                .iter()
                .map(|s| PluginDigest {
                    stage: s.name.clone(),
                    plugin: s.plugin.clone(),
                    version: s.plugin_version.clone(),
                    sha256: s.plugin_sha256.clone(),
                })
                .collect(),
        };
        // SHA256SUMS names the files beside it, so `sha256sum -c SHA256SUMS` checks the release
        // as downloaded; the digest of every file inside the archive is in release.json.
        let manifest_json = serde_json::to_string_pretty(&manifest)?;
        let sums = format!(
            "{}  {archive_name}\n{}  release.json\n",
            manifest.archive.sha256,
            sluice_sdk::stream::sha256_hex(manifest_json.as_bytes())?.0
        );
        ctx.write_output("release.json", "application/json", manifest_json)?;
        ctx.write_output("SHA256SUMS", "text/plain", sums)?;
        info!(
            "{archive_name}: {} files, {} bytes",
            manifest.artifacts.len(),
            archive_size
        );
        ctx.set_summary(format!(
            "{} {} ({} files)",
            config.name,
            parsed,
            manifest.artifacts.len()
        ));
        Ok(())
    }
}

sluice_sdk::stage!(Release);
