//! `sluice plugin new` in each language makes a plugin that `sluice plugin build` builds and
//! `sluice check` accepts unchanged, and that runs in a pipeline.

use anyhow::Result;
use sluice::model::report::StageStatus;

use crate::support::{Sandbox, repo_root, toolchains};

fn scaffold_builds_checks_and_runs(lang: &str) -> Result<()> {
    let sandbox = Sandbox::new()?;
    let name = format!("hello-{lang}");
    let parent = sandbox.path().display().to_string();
    let made = sandbox.sluice(&["plugin", "new", &name, "--lang", lang, "--dir", &parent])?;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let dir = sandbox.path().join(&name);
    let tools = toolchains().display().to_string();
    // Rust plugins share the guest workspace's compiled dependencies.
    let target = std::env::var("SLUICE_PLUGIN_TARGET")
        .unwrap_or_else(|_| repo_root().join("plugins/target").display().to_string());
    // Named as a user in the parent folder would, relative: `sluice plugin build ./NAME`.
    let relative = format!("./{name}");
    let built = sandbox
        .command(&["plugin", "build", &relative])
        .current_dir(sandbox.path())
        .env("SLUICE_TOOLCHAINS", &tools)
        .env("CARGO_TARGET_DIR", &target)
        .output()?;
    let stdout = String::from_utf8_lossy(&built.stdout);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{stdout}\n{stderr}");
    assert!(dir.join(format!("{name}.wasm")).is_file());
    assert!(
        stdout.contains(&format!("stage    {name} 0.1.0")),
        "{stdout}"
    );

    let pipeline = sandbox.pipeline(
        "pipeline.toml",
        &format!(
            "version = 1\n[pipeline]\nname = \"p\"\n[[stage]]\nname = \"greet\"\nplugin = \"{name}/{name}.wasm\"\n[stage.config]\ngreeting = \"hi\"\n"
        ),
    )?;
    let checked = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_eq!(checked.code, 0, "{}\n{}", checked.stdout, checked.stderr);
    assert!(
        checked
            .stdout
            .contains(&format!("✔ greet        {name} 0.1.0 (build)")),
        "{}",
        checked.stdout
    );
    let (ran, report) = sandbox.run(&pipeline)?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        report.stage("greet").map(|s| s.status),
        Some(StageStatus::Succeeded)
    );
    Ok(())
}

#[test]
fn a_rust_scaffold_builds_and_passes_check() -> Result<()> {
    scaffold_builds_checks_and_runs("rust")
}

#[test]
fn a_python_scaffold_builds_and_passes_check() -> Result<()> {
    scaffold_builds_checks_and_runs("python")
}

#[test]
fn a_js_scaffold_builds_and_passes_check() -> Result<()> {
    scaffold_builds_checks_and_runs("js")
}

#[test]
fn a_c_scaffold_builds_and_passes_check() -> Result<()> {
    scaffold_builds_checks_and_runs("c")
}

#[test]
fn a_bad_plugin_name_is_refused() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let parent = sandbox.path().display().to_string();
    let ran = sandbox.sluice(&[
        "plugin", "new", "Bad Name", "--lang", "rust", "--dir", &parent,
    ])?;
    assert_eq!(ran.code, sluice::exit_codes::INVALID_INPUT);
    assert!(
        ran.stderr.contains("invalid plugin name `Bad Name`"),
        "{}",
        ran.stderr
    );
    Ok(())
}
