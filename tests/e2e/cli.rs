//! `sluice check`, `sluice inspect`, `--version` and `completions`: what a user sees before running
//! anything.

use anyhow::Result;
use sluice::exit_codes;

use crate::support::{Sandbox, plugin, repo_root};

#[test]
fn check_lists_every_stage_and_runs_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = repo_root().join("examples/hello/pipeline.toml");
    let ran = sandbox.sluice(&["check", &pipeline.display().to_string(), "--json"])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)?;
    let stages = report["stages"].as_array().cloned().unwrap_or_default();
    let described: Vec<(String, String)> = stages
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("?").to_string(),
                s["phase"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("emit".to_string(), "code".to_string()),
            ("text-transform".into(), "build".into()),
            ("assert-text".into(), "test".into()),
            ("checksum".into(), "release".into())
        ]
    );
    assert!(stages.iter().all(|s| s["problem"].is_null()));
    Ok(())
}

#[test]
fn check_reports_every_broken_stage_at_once() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let pipeline = sandbox.pipeline(
        "pipeline.toml",
        r#"version = 1
[pipeline]
name = "p"
[[stage]]
name = "one"
plugin = "missing.wasm"
[[stage]]
name = "two"
plugin = "{plugin:not-a-stage}"
[[stage]]
name = "three"
plugin = "{plugin:emit}"
"#,
    )?;
    let ran = sandbox.sluice(&["check", &pipeline.display().to_string()])?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("✘ one") && ran.stdout.contains("does not exist"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("✘ two") && ran.stdout.contains("not a sluice stage"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("✔ three") && ran.stdout.contains("emit 0.1.0 (code)"),
        "{}",
        ran.stdout
    );
    Ok(())
}

#[test]
fn inspect_shows_what_a_plugin_is_and_imports() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let emit = plugin("emit")?;
    let ran = sandbox.sluice(&["inspect", &emit.display().to_string(), "--json"])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let info: serde_json::Value = serde_json::from_str(&ran.stdout)?;
    assert_eq!(info["stage"]["name"], "emit");
    assert_eq!(info["stage"]["phase"], "code");
    assert_eq!(info["sha256"], crate::support::sha256_of(&emit)?);
    let imports: Vec<&str> = info["imports"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(
        imports.contains(&"sluice:pipeline/log@0.1.0"),
        "{imports:?}"
    );
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imports:?}"
    );
    let exports = info["exports"].to_string();
    assert!(
        exports.contains("\"describe\"") && exports.contains("\"run\""),
        "{exports}"
    );
    Ok(())
}

#[test]
fn inspect_explains_a_component_of_another_world() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let other = plugin("not-a-stage")?;
    let ran = sandbox.sluice(&["inspect", &other.display().to_string()])?;
    assert_eq!(ran.code, exit_codes::STAGE_ERROR, "{}", ran.stderr);
    assert!(ran.stdout.contains("stage    no"), "{}", ran.stdout);
    assert!(ran.stdout.contains("wasi:cli/run"), "{}", ran.stdout);
    assert!(ran.stderr.contains("not a sluice stage"), "{}", ran.stderr);
    Ok(())
}

/// `sluice --version` names the version and the commit the binary was built from.
#[test]
fn version_names_the_commit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ran = sandbox.sluice(&["--version"])?;
    assert_eq!(ran.code, 0);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()?;
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let expected = if head.status.success() && !commit.is_empty() {
        commit
    } else {
        "unknown".to_string()
    };
    assert_eq!(
        ran.stdout.trim(),
        format!("sluice {} (commit {expected})", env!("CARGO_PKG_VERSION"))
    );
    Ok(())
}

/// Completion scripts for bash, zsh and fish, each one its shell accepts (bash checked with
/// `bash -n`; every script names the subcommands).
#[test]
fn completions_are_printed_for_each_shell() -> Result<()> {
    let sandbox = Sandbox::new()?;
    for shell in ["bash", "zsh", "fish"] {
        let ran = sandbox.sluice(&["completions", shell])?;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        for word in ["run", "resume", "plugin", "completions"] {
            assert!(ran.stdout.contains(word), "{shell}: no `{word}`");
        }
    }
    let bash = sandbox.sluice(&["completions", "bash"])?;
    let script = sandbox.path().join("sluice.bash");
    std::fs::write(&script, &bash.stdout)?;
    let parsed = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()?;
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let unknown = sandbox.sluice(&["completions", "tcsh"])?;
    assert_eq!(
        unknown.code,
        exit_codes::INVALID_INPUT,
        "{}",
        unknown.stderr
    );
    Ok(())
}
