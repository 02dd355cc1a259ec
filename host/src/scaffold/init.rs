//! `sluice init`: a starter `pipeline.toml` for the project in a folder, using the stages that
//! ship with sluice. A Rust crate (a `Cargo.toml`) gets code → build → test: `checkout` packs
//! the sources, `exec` runs `cargo build --release`, `cargo-test` runs the tests and writes
//! JUnit. A Node package (`package.json`) gets `npm ci`, `npm run build` if it has a build
//! script, and `npm test` if it has tests. A Python project (`pyproject.toml`, `setup.py` or
//! `requirements*.txt`) gets a virtual environment with the project and its test requirements,
//! pytest with JUnit, and a wheel and sdist when it is a package. A Go module (`go.mod`) gets
//! `go build ./...` and `go test -json ./...` turned into JUnit. A Markdown site gets
//! `markdown-site` and `link-check`.
//! The shipped stages the binary carries are written to `.sluice/stages/` beside the pipeline
//! (commit them with it: they are what `sluice check` and every run use).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::python::PythonProject;

include!(concat!(env!("OUT_DIR"), "/shipped_stages.rs"));

// The starter pipelines, one file each under `host/templates/pipelines/` (like the plugin
// templates): `{{name}}`, `{{dir}}` and `{{after}}` are replaced by TOML values. A Node
// package's pipeline gets the build and test stages appended when it has those scripts.
const RUST_PIPELINE: &str = include_str!("../../templates/pipelines/rust.toml");
const NODE_PIPELINE: &str = include_str!("../../templates/pipelines/node.toml");
const NODE_BUILD: &str = include_str!("../../templates/pipelines/node-build.toml");
const NODE_TEST: &str = include_str!("../../templates/pipelines/node-test.toml");
const PYTHON_PIPELINE: &str = include_str!("../../templates/pipelines/python.toml");
const PYTHON_RELEASE: &str = include_str!("../../templates/pipelines/python-release.toml");
const GO_PIPELINE: &str = include_str!("../../templates/pipelines/go.toml");
const SITE_PIPELINE: &str = include_str!("../../templates/pipelines/markdown-site.toml");

/// Where the shipped stages go, relative to the project.
pub const STAGES_DIR: &str = ".sluice/stages";

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    pub pipeline: PathBuf,
    pub kind: &'static str,
    pub stages: Vec<PathBuf>,
    /// Steps taken on the project beyond writing files (e.g. `cargo generate-lockfile`).
    pub notes: Vec<String>,
}

/// Writes `dir/pipeline.toml` and the stages it uses; refuses to overwrite a pipeline unless
/// `force`. A Rust crate (`Cargo.toml`) comes first, then a Node package (`package.json`), a
/// Python project, a Go module (`go.mod`), then a Markdown site (`docs/*.md`, or `*.md` at the
/// top).
pub fn init(dir: &Path, force: bool) -> Result<Initialized> {
    let pipeline = dir.join("pipeline.toml");
    if pipeline.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            pipeline.display()
        );
    }
    let (kind, text, stages, notes) = if dir.join("Cargo.toml").is_file() {
        rust_crate(dir)?
    } else if dir.join("package.json").is_file() {
        node_package(dir)?
    } else if let Some(project) = PythonProject::read(dir) {
        python_project(dir, &project)?
    } else if dir.join("go.mod").is_file() {
        go_module(dir)?
    } else if let Some(site) = markdown_folder(dir) {
        markdown_site(dir, &site)
    } else {
        bail!(
            "{} holds no project sluice init knows: it starts pipelines for Rust crates (a Cargo.toml), \
             Node packages (a package.json), Python projects (a pyproject.toml, setup.py or \
             requirements.txt), Go modules (a go.mod) and Markdown sites (*.md here or in docs/); \
             for anything else, start from the examples in sluice's README",
            dir.display()
        );
    };
    let stages = write_stages(dir, stages)?;
    crate::atomic_file::write(&pipeline, text.as_bytes())?;
    Ok(Initialized {
        pipeline,
        kind,
        stages,
        notes,
    })
}

type Plan = (&'static str, String, &'static [&'static str], Vec<String>);

fn rust_crate(dir: &Path) -> Result<Plan> {
    let name = crate_name(&dir.join("Cargo.toml")).unwrap_or_else(|| folder_name(dir));
    let mut notes = Vec::new();
    // The stages run cargo with --locked, in a workspace they may only read.
    if !dir.join("Cargo.lock").is_file() {
        run_in(dir, "cargo", &["generate-lockfile"], "install Rust first")?;
        notes.push(
            "wrote Cargo.lock (cargo generate-lockfile): the stages build with --locked".into(),
        );
    }
    let text = RUST_PIPELINE.replace("{{name}}", &toml_string(&name));
    Ok((
        "Rust crate",
        text,
        &["checkout", "exec", "cargo-test"],
        notes,
    ))
}

fn node_package(dir: &Path) -> Result<Plan> {
    let manifest: serde_json::Value = std::fs::read(dir.join("package.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .with_context(|| format!("cannot read {} as JSON", dir.join("package.json").display()))?;
    let name = manifest["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| folder_name(dir));
    let script = |name: &str| manifest["scripts"][name].as_str().map(str::to_string);
    let mut notes = Vec::new();
    // `npm ci` installs exactly the lock file, and fails without one.
    if !dir.join("package-lock.json").is_file() {
        run_in(
            dir,
            "npm",
            &["install", "--package-lock-only", "--no-audit", "--no-fund"],
            "install Node.js and npm first",
        )?;
        notes.push(
            "wrote package-lock.json (npm install --package-lock-only): the deps stage runs npm ci"
                .into(),
        );
    }
    let mut text = NODE_PIPELINE.replace("{{name}}", &toml_string(&name));
    let mut last = "deps";
    // A blank line before each stage appended.
    if script("build").is_some() {
        text.push('\n');
        text.push_str(NODE_BUILD);
        last = "build";
    }
    // npm's placeholder (`echo "Error: no test specified" && exit 1`) is no test suite.
    match script("test") {
        Some(test) if !test.contains("no test specified") => {
            text.push('\n');
            text.push_str(&NODE_TEST.replace("{{after}}", last));
        }
        _ => notes.push(
            "package.json has no test script: add one (\"test\": \"node --test\") and a test stage \
             like the deps stage running `npm test`"
                .into(),
        ),
    }
    Ok(("Node package", text, &["checkout", "exec"], notes))
}

fn python_project(dir: &Path, project: &PythonProject) -> Result<Plan> {
    // The stages make the environment with `python3 -m venv`, which Debian ships apart.
    let venv = std::process::Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stderr(std::process::Stdio::null())
        .status();
    if !venv.is_ok_and(|status| status.success()) {
        bail!(
            "python3 with its venv module is needed to make the project's virtual environment: \
             install Python 3 and venv (Debian/Ubuntu: apt install python3-venv)"
        );
    }
    let name = project.name.clone().unwrap_or_else(|| folder_name(dir));
    let ignore = toml_list(super::python::WRITTEN_BY_STAGES.iter().copied());
    let mut text = PYTHON_PIPELINE
        .replace("{{name}}", &toml_string(&name))
        .replace(
            "{{install}}",
            &toml_list(project.install_args().iter().map(String::as_str)),
        );
    let mut notes = Vec::new();
    if project.packaged {
        text.push('\n');
        text.push_str(PYTHON_RELEASE);
    } else {
        notes.push(
            "no pyproject.toml [project] or setup.py: the pipeline installs the requirements and \
             tests, and builds no wheel"
                .into(),
        );
    }
    if project.test_extra.is_none() && project.group_requirements.is_empty() && project.packaged {
        notes.push(
            "no test extra or dependency group (test, tests, testing, dev): the deps stage \
             installs pytest alone; add what the tests import to its args"
                .into(),
        );
    }
    Ok((
        "Python project",
        text.replace("{{ignore}}", &ignore),
        &["checkout", "exec"],
        notes,
    ))
}

fn go_module(dir: &Path) -> Result<Plan> {
    run_in(
        dir,
        "go",
        &["version"],
        "install Go (Debian: apt install golang-go)",
    )?;
    // `module example.com/tally` → `tally`.
    let name = std::fs::read_to_string(dir.join("go.mod"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("module "))
                .map(|m| {
                    m.trim()
                        .trim_matches('"')
                        .rsplit('/')
                        .next()
                        .unwrap_or(m)
                        .to_string()
                })
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| folder_name(dir));
    let text = GO_PIPELINE.replace("{{name}}", &toml_string(&name));
    Ok((
        "Go module",
        text,
        &["checkout", "exec", "go-test"],
        Vec::new(),
    ))
}

/// The folder a Markdown site is in: `docs` when it has pages, else the project itself.
fn markdown_folder(dir: &Path) -> Option<String> {
    let has_pages = |folder: &Path| {
        std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                entry.path().extension().is_some_and(|e| e == "md")
                    && entry.file_type().is_ok_and(|t| t.is_file())
            })
    };
    if has_pages(&dir.join("docs")) {
        Some("docs".into())
    } else if has_pages(dir) {
        Some(".".into())
    } else {
        None
    }
}

fn markdown_site(dir: &Path, site: &str) -> Plan {
    let name = folder_name(dir);
    let text = SITE_PIPELINE
        .replace("{{name}}", &toml_string(&name))
        .replace("{{dir}}", &toml_string(site));
    (
        "Markdown site",
        text,
        &["checkout", "markdown-site", "link-check"],
        Vec::new(),
    )
}

/// Runs `program args` in `dir` for a file the pipeline needs (a lock file).
fn run_in(dir: &Path, program: &str, args: &[&str], missing: &str) -> Result<()> {
    let made = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| {
            format!("cannot run {program} (the pipeline's stages run it too: {missing})")
        })?;
    if !made.success() {
        bail!(
            "`{program} {}` failed in {} ({made})",
            args.join(" "),
            dir.display()
        );
    }
    Ok(())
}

fn write_stages(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let folder = dir.join(STAGES_DIR);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let mut written = Vec::new();
    for name in names {
        let Some((_, bytes)) = SHIPPED_STAGES.iter().find(|(n, _)| n == name) else {
            bail!(
                "this sluice was built without its shipped stages (`{name}` is missing): install it with \
                 `cargo xtask install`, which builds them first"
            );
        };
        let path = folder.join(format!("{name}.wasm"));
        crate::atomic_file::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// `[package] name` of a Cargo.toml, if it has one (a virtual workspace has not).
fn crate_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn folder_name(dir: &Path) -> String {
    std::path::absolute(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into())
}

fn toml_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    toml::Value::Array(items.map(|i| toml::Value::String(i.to_string())).collect()).to_string()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
