//! The projects' published sources, from their registries into the scratch folder: the crate
//! file from static.crates.io checked against the sparse index's `cksum`, the npm tarball through
//! `npm pack` (which checks the registry's integrity hash), the sdist named by PyPI's JSON API
//! checked against its sha256. curl and tar do the transfers and the unpacking.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::project::{Kind, Project};

/// Downloads and unpacks `project` under `dir`; returns its unpacked folder.
pub fn fetch(project: &Project, dir: &Path) -> Result<PathBuf> {
    let unpacked = dir.join(format!("{}-{}", project.name, project.version));
    let into = dir.join(format!("{}-unpack", project.name));
    std::fs::create_dir_all(&into)?;
    let archive = match project.kind {
        Kind::Rust => crate_file(project, dir)?,
        Kind::Npm => npm_pack(project, dir)?,
        Kind::Python => sdist(project, dir)?,
    };
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&into))?;
    let top = only_folder(&into)?;
    std::fs::rename(&top, &unpacked)
        .with_context(|| format!("cannot move {} into place", top.display()))?;
    Ok(unpacked)
}

/// The crate file, checked against the index.
fn crate_file(project: &Project, dir: &Path) -> Result<PathBuf> {
    let (name, version) = (project.name, project.version);
    let index = curl_text(&format!("https://index.crates.io/{}", index_path(name)))?;
    let cksum = index
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["vers"] == version)
        .and_then(|entry| entry["cksum"].as_str().map(str::to_string))
        .with_context(|| format!("the crates.io index has no {name} {version}"))?;
    let file = dir.join(format!("{name}-{version}.crate"));
    curl_file(
        &format!("https://static.crates.io/crates/{name}/{name}-{version}.crate"),
        &file,
    )?;
    check_sha256(&file, &cksum)?;
    Ok(file)
}

/// Where the sparse index keeps a crate's entries (`se/mv/semver`).
fn index_path(name: &str) -> String {
    let name = name.to_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// `npm pack NAME@VERSION` into `dir`, with a download cache of its own there.
fn npm_pack(project: &Project, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{}@{}", project.name, project.version);
    run(Command::new("npm")
        .args(["pack", &spec, "--pack-destination"])
        .arg(dir)
        .env("npm_config_cache", dir.join("npm-cache"))
        .current_dir(dir))?;
    let file = dir.join(format!("{}-{}.tgz", project.name, project.version));
    if !file.is_file() {
        bail!("`npm pack {spec}` wrote no {}", file.display());
    }
    Ok(file)
}

/// The sdist PyPI's JSON API names, checked against its sha256.
fn sdist(project: &Project, dir: &Path) -> Result<PathBuf> {
    let (name, version) = (project.name, project.version);
    // The release's own page; some mirrors only serve the project's, with every release.
    let release_url = format!("https://pypi.org/pypi/{name}/{version}/json");
    let project_url = format!("https://pypi.org/pypi/{name}/json");
    let (json_url, files) = match curl_text(&release_url) {
        Ok(text) => (release_url, json_files(&text, None)?),
        Err(_) => {
            let text = curl_text(&project_url)?;
            (project_url, json_files(&text, Some(version))?)
        }
    };
    let (url, sha256) = files
        .iter()
        .find(|file| file["packagetype"] == "sdist")
        .and_then(|file| Some((file["url"].as_str()?, file["digests"]["sha256"].as_str()?)))
        .with_context(|| format!("PyPI lists no sdist of {name} {version}"))?;
    let url = resolve_url(&json_url, url);
    let file = dir.join(url.rsplit('/').next().unwrap_or("sdist.tar.gz"));
    curl_file(&url, &file)?;
    check_sha256(&file, sha256)?;
    Ok(file)
}

/// The files of a PyPI JSON page: `urls` of a release's page, `releases[version]` of a
/// project's.
fn json_files(text: &str, version: Option<&str>) -> Result<Vec<Value>> {
    let page: Value = serde_json::from_str(text).context("PyPI's answer is not JSON")?;
    let files = match version {
        None => &page["urls"],
        Some(version) => &page["releases"][version],
    };
    files
        .as_array()
        .cloned()
        .context("PyPI's answer lists no files for this release")
}

/// `url` as written in a page at `base`: absolute, from the host's root, or relative.
fn resolve_url(base: &str, url: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        return url.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut parts: Vec<&str> = if url.starts_with('/') {
        Vec::new()
    } else {
        // The page's folder: its path without the last part.
        let mut folder: Vec<&str> = path.split('/').collect();
        folder.pop();
        folder
    };
    for part in url.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.retain(|part| !part.is_empty());
    format!("{scheme}://{host}/{}", parts.join("/"))
}

fn check_sha256(file: &Path, expected: &str) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let actual = format!("{:x}", Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(expected) {
        bail!(
            "{} has sha256 {actual}, the registry says {expected}",
            file.display()
        );
    }
    Ok(())
}

/// The one folder an archive unpacked into `dir`.
fn only_folder(dir: &Path) -> Result<PathBuf> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    match &entries[..] {
        [one] if one.is_dir() => Ok(one.clone()),
        _ => bail!("the archive in {} is not one folder", dir.display()),
    }
}

fn curl_text(url: &str) -> Result<String> {
    eprintln!("xtask: $ curl {url}");
    let output = Command::new("curl")
        .args(["-sSfL", "--retry", "3", url])
        .output()
        .context("cannot start curl: is it installed?")?;
    if !output.status.success() {
        bail!(
            "curl {url} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("{url} is not UTF-8"))
}

fn curl_file(url: &str, file: &Path) -> Result<()> {
    run(Command::new("curl")
        .args(["-sSfL", "--retry", "3", "-o"])
        .arg(file)
        .arg(url))
}

/// Runs `command`, echoing it, failing with what it wrote.
fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {command:?}");
    let output = command
        .output()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_index_paths() {
        assert_eq!(index_path("semver"), "se/mv/semver");
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("Syn"), "3/s/syn");
    }

    #[test]
    fn pypi_urls_resolve_against_the_page() {
        let page = "https://pypi.org/pypi/more-itertools/json";
        assert_eq!(
            resolve_url(page, "../../packages/packages/52/b8/m-11.2.1.tar.gz"),
            "https://pypi.org/packages/packages/52/b8/m-11.2.1.tar.gz"
        );
        assert_eq!(
            resolve_url(page, "/packages/x.tar.gz"),
            "https://pypi.org/packages/x.tar.gz"
        );
        let absolute = "https://files.pythonhosted.org/packages/x.tar.gz";
        assert_eq!(resolve_url(page, absolute), absolute);
    }

    #[test]
    fn pypi_files_of_a_release_or_of_a_project_page() -> Result<()> {
        let release = r#"{"urls": [{"packagetype": "sdist"}]}"#;
        assert_eq!(json_files(release, None)?.len(), 1);
        let project = r#"{"releases": {"1.0": [{"packagetype": "sdist"}, {}]}}"#;
        assert_eq!(json_files(project, Some("1.0"))?.len(), 2);
        assert!(json_files(project, Some("2.0")).is_err());
        Ok(())
    }
}
