//! Release stage: packs chosen artifacts into `<name>-<version>.tar.gz`, writes `SHA256SUMS`
//! and `release.json` — name, semver version, commit, every artifact with its digest, and the
//! digest of every plugin that ran before it.

use serde::{Deserialize, Serialize};
use sluice_sdk::{Context, Failure, Phase, Stage, fail, info};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    /// A semver version; default: the `VERSION` file in the source archive.
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
}

struct Release;

fn version_from_source(ctx: &Context) -> Result<Option<String>, Failure> {
    let Some(source) = ctx.inputs().iter().find(|a| a.name.ends_with(".tar")) else {
        return Ok(None);
    };
    let mut archive = tar::Archive::new(ctx.open(source)?);
    let entries = archive
        .entries()
        .map_err(|e| Failure::new(format!("bad archive: {e}")))?;
    for entry in entries.flatten() {
        let mut entry = entry;
        let is_version = entry
            .path()
            .is_ok_and(|p| p.file_name().is_some_and(|n| n == "VERSION"));
        if is_version {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text)?;
            return Ok(Some(text.trim().to_string()));
        }
    }
    Ok(None)
}

impl Stage for Release {
    const PHASE: Phase = Phase::Release;
    const DESCRIPTION: &'static str = "Versioned .tar.gz of chosen artifacts, SHA256SUMS and a release manifest with every plugin's digest";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let version = match config.version.clone() {
            Some(v) => v,
            None => match version_from_source(ctx)? {
                Some(v) => v,
                None => fail!(
                    "no version: set `version` in [stage.config] or add a VERSION file to the source"
                ),
            },
        };
        let parsed = semver::Version::parse(&version)
            .map_err(|e| Failure::new(format!("version `{version}` is not semver: {e}")))?;
        let source: SourceInfo = ctx
            .inputs()
            .iter()
            .find(|a| a.name == "source.json")
            .map(|a| ctx.read(a))
            .transpose()?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
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
        let mut sums = format!("{archive_digest}  {archive_name}\n");
        for a in &artifacts {
            sums.push_str(&format!("{}  {}\n", a.sha256, a.name));
        }
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
        ctx.write_output("SHA256SUMS", "text/plain", sums)?;
        ctx.write_output(
            "release.json",
            "application/json",
            serde_json::to_string_pretty(&manifest)?,
        )?;
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
