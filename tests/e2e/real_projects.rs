//! `sluice init` + `sluice run` on three real projects no one here wrote, as their registries
//! publish them (each download pinned by its sha256): `six` 1.17.0 from PyPI (a setup.py
//! package with a pytest suite), `deep-is` 0.1.4 from npm (tape tests) and `semver` 1.0.28 from
//! crates.io. Each pipeline runs green, a second run is served from the stage cache, and what
//! the stages make (a virtual environment, node_modules) is made again when it is gone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sluice::model::report::{RunReport, StageStatus};

use crate::init::init_and_check;
use crate::support::{Sandbox, cache_hits, settle, sha256_of, statuses};

/// A published source archive: where it is, its digest, the folder it unpacks to.
struct Published {
    url: &'static str,
    sha256: &'static str,
    folder: &'static str,
}

const SIX: Published = Published {
    url: "https://files.pythonhosted.org/packages/94/e7/b2c673351809dca68a0e064b6af791aa332cf192da575fd474ed7d6f16a2/six-1.17.0.tar.gz",
    sha256: "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81",
    folder: "six-1.17.0",
};
const DEEP_IS: Published = Published {
    url: "https://registry.npmjs.org/deep-is/-/deep-is-0.1.4.tgz",
    sha256: "0c03aa83c6bf68e7c2cc2c5b5a2d732c1879e7711b08011b0bc48df10d10bf3c",
    folder: "package",
};
const SEMVER: Published = Published {
    url: "https://static.crates.io/crates/semver/semver-1.0.28.crate",
    sha256: "8a7852d02fc848982e0c167ef163aaff9cd91dc640ba85e263cb1ce46fae51cd",
    folder: "semver-1.0.28",
};

/// Downloads and unpacks `published` into the sandbox; the project's folder.
fn unpacked(sandbox: &Sandbox, published: &Published) -> Result<PathBuf> {
    let archive = sandbox.path().join("download.tar.gz");
    let got = sandbox
        .program("curl")
        .args(["-sSfL", "--retry", "3", "-o"])
        .arg(&archive)
        .arg(published.url)
        .output()?;
    if !got.status.success() {
        bail!(
            "cannot download {}: {}",
            published.url,
            String::from_utf8_lossy(&got.stderr)
        );
    }
    assert_eq!(
        sha256_of(&archive)?,
        published.sha256,
        "{} is not the archive this test pins",
        published.url
    );
    let into = sandbox.path().join("src");
    std::fs::create_dir_all(&into)?;
    let unpacked = sandbox
        .program("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&into)
        .status()?;
    assert!(unpacked.success(), "cannot unpack {}", published.url);
    Ok(into.join(published.folder))
}

fn artifact(report: &RunReport, path: &str) -> Result<String> {
    let file = Path::new(&report.run_dir).join(path);
    std::fs::read_to_string(&file).with_context(|| format!("no {}", file.display()))
}

#[test]
fn a_pypi_package_is_installed_tested_and_built_and_its_failures_named() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let project = unpacked(&sandbox, &SIX)?;
    let pipeline = init_and_check(&sandbox, &project, "Python project")?;
    let written = std::fs::read_to_string(&pipeline)?;
    // setup.py only: the project installed editable, pytest, and setuptools to build with.
    assert!(
        written.contains(
            r#"args = ["-m", "pip", "install", "--disable-pip-version-check", "-e", ".", "pytest", "build", "setuptools>=40.8.0", "wheel"]"#
        ),
        "{written}"
    );
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let all_green = [
        ("code", StageStatus::Succeeded),
        ("deps", StageStatus::Succeeded),
        ("test", StageStatus::Succeeded),
        ("release", StageStatus::Succeeded),
    ];
    assert_eq!(statuses(&report), all_green);
    let junit = artifact(&report, "artifacts/test/junit.xml")?;
    assert!(junit.contains(r#"name="test_add_doc""#), "{junit}");
    // The run's page lists the tests pytest reported.
    let page = artifact(&report, "report.html")?;
    assert!(
        page.contains("tests: ") && page.contains(" passed"),
        "no tests on the page"
    );
    assert!(
        page.contains("test_six::test_add_doc"),
        "test_add_doc not on the page"
    );
    let release = report.stage("release").context("no release")?;
    let built: Vec<&str> = release.outputs.iter().map(|a| a.name.as_str()).collect();
    assert!(built.contains(&"dist/six-1.17.0.tar.gz"), "{built:?}");
    assert!(
        built.contains(&"dist/six-1.17.0-py2.py3-none-any.whl"),
        "{built:?}"
    );
    // The tests leave no cache or bytecode in the project.
    assert!(!project.join(".pytest_cache").exists());

    settle();
    let (ran, again) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(cache_hits(&again), ["code", "deps", "test", "release"]);

    // A failing test fails the stage, names the test, and the page shows it.
    let tests = project.join("test_six.py");
    let mut text = std::fs::read_to_string(&tests)?;
    text.push_str("\n\ndef test_sluice_breaks_this():\n    assert 1 + 1 == 3\n");
    std::fs::write(&tests, text)?;
    let (ran, failed) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, sluice::exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let test = failed.stage("test").context("no test stage")?;
    assert_eq!(test.status, StageStatus::Failed);
    let message = test.message.clone().unwrap_or_default();
    assert!(message.contains("test_sluice_breaks_this"), "{message}");
    assert_eq!(
        failed.stage("release").map(|s| s.status),
        Some(StageStatus::Skipped)
    );
    let page = artifact(&failed, "report.html")?;
    assert!(page.contains(", 1 failed"), "no failure count on the page");
    assert!(
        page.contains("test_sluice_breaks_this"),
        "the failed test is not on the page"
    );
    Ok(())
}

#[test]
fn an_npm_package_is_tested_and_node_modules_made_again_when_gone() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let project = unpacked(&sandbox, &DEEP_IS)?;
    let pipeline = init_and_check(&sandbox, &project, "Node package")?;
    assert!(project.join("package-lock.json").is_file());
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            ("code", StageStatus::Succeeded),
            ("deps", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    let log = artifact(&report, "artifacts/test/npm.log")?;
    assert!(log.contains("# pass  14"), "{log}");

    settle();
    let (ran, again) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(cache_hits(&again), ["code", "deps", "test"]);

    // node_modules is what deps makes (`makes`): gone, deps runs again whatever its key says.
    std::fs::remove_dir_all(project.join("node_modules"))?;
    let (ran, remade) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(cache_hits(&remade), ["code", "test"]);
    ran.assert_stderr(&["stage cache not used: node_modules is not there"]);
    assert!(project.join("node_modules/tape").is_dir());
    Ok(())
}

#[test]
fn a_crates_io_crate_is_built_and_tested() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let project = unpacked(&sandbox, &SEMVER)?;
    let pipeline = init_and_check(&sandbox, &project, "Rust crate")?;
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        statuses(&report),
        [
            ("code", StageStatus::Succeeded),
            ("build", StageStatus::Succeeded),
            ("test", StageStatus::Succeeded)
        ]
    );
    let junit = artifact(&report, "artifacts/test/junit.xml")?;
    assert!(junit.contains(r#"name="test_parse""#), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
    settle();
    let (ran, again) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(cache_hits(&again), ["code", "build", "test"]);
    Ok(())
}
