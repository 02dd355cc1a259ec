//! `sluice plugin new`: a new stage plugin in Rust, Python, JavaScript or C that builds with one
//! command (`sh build.sh`, or `sluice plugin build`) and passes `sluice check` unchanged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The languages a plugin can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

/// The contract, copied into non-Rust plugins so they build on their own.
const WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../wit/types.wit")),
    ("log.wit", include_str!("../../wit/log.wit")),
    ("process.wit", include_str!("../../wit/process.wit")),
    ("secrets.wit", include_str!("../../wit/secrets.wit")),
    ("stage.wit", include_str!("../../wit/stage.wit")),
];

fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust/lib.rs")),
            ("build.sh", include_str!("../templates/rust/build.sh")),
        ],
        Lang::Python => &[
            ("app.py", include_str!("../templates/python/app.py")),
            ("build.sh", include_str!("../templates/python/build.sh")),
        ],
        Lang::Js => &[
            ("stage.js", include_str!("../templates/js/stage.js")),
            ("build.sh", include_str!("../templates/js/build.sh")),
        ],
        Lang::C => &[
            ("stage.c", include_str!("../templates/c/stage.c")),
            ("build.sh", include_str!("../templates/c/build.sh")),
        ],
    }
}

/// This checkout's folders the templates point at (the SDK, the toolchains).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `cargo xtask plugins` installs the Python, JavaScript and C toolchains.
pub fn default_toolchains() -> PathBuf {
    std::env::var_os("SLUICE_TOOLCHAINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/toolchains"))
}

/// Writes a new plugin called `name` into `parent/name`; returns its folder.
pub fn new_plugin(name: &str, lang: Lang, parent: &Path) -> Result<PathBuf> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "invalid plugin name `{name}`: use lower-case letters, digits and `-`, starting with a letter"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists; choose another name or folder",
            dir.display()
        );
    }
    let sdk = repo_root().join("plugins/sdk");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace(
                "{{toolchains}}",
                &default_toolchains().display().to_string(),
            )
    };
    for (file, text) in templates(lang) {
        write(&dir.join(file), &fill(text))?;
    }
    if lang != Lang::Rust {
        for (file, text) in WIT {
            write(&dir.join("wit").join(file), text)?;
        }
    }
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs the plugin's `build.sh`; returns the component it built.
pub fn build_plugin(dir: &Path) -> Result<PathBuf> {
    let script = dir.join("build.sh");
    if !script.is_file() {
        bail!(
            "{} has no build.sh; run this in a folder made by `sluice plugin new`",
            dir.display()
        );
    }
    let status = std::process::Command::new("sh")
        .arg(&script)
        .current_dir(dir)
        .status()
        .context("cannot run sh")?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    let name = std::fs::canonicalize(dir)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let component = dir.join(format!("{name}.wasm"));
    if !component.is_file() {
        bail!("build.sh succeeded but {} is missing", component.display());
    }
    Ok(component)
}
