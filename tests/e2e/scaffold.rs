//! `sluice plugin new` and `sluice plugin build` outside the checkout: what a scaffold holds names
//! nothing of the folder sluice was built in, a Rust plugin finds the SDK the binary carries, and
//! a toolchain that cannot be installed is named with the registry it needed, leaving no
//! half-made install behind. (Building and running a plugin in each language, with the binary
//! installed alone outside the checkout, is the README test: `cargo xtask readme`.)

use std::path::Path;

use anyhow::Result;

use crate::support::{Sandbox, free_port, repo_root};

/// Every file under `dir`, with its text (lossy).
fn files(dir: &Path) -> Result<Vec<(std::path::PathBuf, String)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files(&path)?);
        } else {
            found.push((
                path.clone(),
                String::from_utf8_lossy(&std::fs::read(&path)?).into_owned(),
            ));
        }
    }
    Ok(found)
}

#[test]
fn a_scaffold_in_any_language_names_nothing_of_the_checkout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let data = sandbox.path().join("data");
    let data_env = data.display().to_string();
    let checkout = repo_root().canonicalize()?.display().to_string();
    for lang in ["rust", "python", "js", "c"] {
        let name = format!("hello-{lang}");
        let made = sandbox
            .command(&["plugin", "new", &name, "--lang", lang])
            .current_dir(sandbox.path())
            .env("XDG_DATA_HOME", &data_env)
            .output()?;
        let stdout = String::from_utf8_lossy(&made.stdout);
        assert!(
            made.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&made.stderr)
        );
        // The hint is the relative command a user in this folder types.
        assert!(
            stdout.contains(&format!("  sluice plugin build ./{name}\n")),
            "{stdout}"
        );
        for (path, text) in files(&sandbox.path().join(&name))? {
            assert!(
                !text.contains(&checkout),
                "{} names the checkout {checkout}:\n{text}",
                path.display()
            );
        }
    }
    // The Rust plugin asks crates.io's name for the SDK and is pointed at the copy sluice wrote.
    let sdk = data.join("sluice/sdk").join(env!("CARGO_PKG_VERSION"));
    let config = std::fs::read_to_string(sandbox.path().join("hello-rust/.cargo/config.toml"))?;
    let parsed: toml::Table = toml::from_str(&config)?;
    assert_eq!(
        parsed["patch"]["crates-io"]["sluice-sdk"]["path"].as_str(),
        Some(sdk.display().to_string().as_str())
    );
    let manifest = std::fs::read_to_string(sandbox.path().join("hello-rust/Cargo.toml"))?;
    assert!(manifest.contains("sluice-sdk = \"0.1.0\""), "{manifest}");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "src/stream.rs",
        "wit/stage.wit",
        "wit/digest.wit",
    ] {
        assert!(sdk.join(file).is_file(), "the SDK lacks {file}");
    }
    // Byte for byte the repository's SDK sources.
    assert_eq!(
        std::fs::read(sdk.join("src/context.rs"))?,
        std::fs::read(repo_root().join("plugins/sdk/src/context.rs"))?
    );
    Ok(())
}

#[test]
fn a_moved_rust_plugin_is_pointed_at_the_sdk_of_the_sluice_that_builds_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let data = sandbox.path().join("data").display().to_string();
    let made = sandbox
        .command(&["plugin", "new", "moved", "--lang", "rust"])
        .current_dir(sandbox.path())
        .env("XDG_DATA_HOME", &data)
        .output()?;
    assert!(made.status.success());
    let config = sandbox.path().join("moved/.cargo/config.toml");
    let written = std::fs::read_to_string(&config)?;
    // As on the machine it came from: another user's data folder.
    let elsewhere = sandbox.path().join("other-user");
    std::fs::write(
        &config,
        written.replace(&data, &elsewhere.display().to_string()),
    )?;
    // The build script stands in for cargo here: the refresh happens before it runs.
    std::fs::write(sandbox.path().join("moved/build.sh"), "exit 7\n")?;
    let built = sandbox
        .command(&["plugin", "build", "moved"])
        .current_dir(sandbox.path())
        .env("XDG_DATA_HOME", &data)
        .output()?;
    assert!(!built.status.success());
    assert_eq!(std::fs::read_to_string(&config)?, written);
    assert!(!elsewhere.exists());
    Ok(())
}

#[test]
fn an_unreachable_package_index_is_named_and_no_half_install_is_left() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let made = sandbox
        .command(&["plugin", "new", "offline", "--lang", "python"])
        .current_dir(sandbox.path())
        .output()?;
    assert!(made.status.success());
    let toolchains = sandbox.path().join("toolchains");
    let closed = format!("http://127.0.0.1:{}/simple", free_port()?);
    let built = sandbox
        .command(&["plugin", "build", "offline", "--toolchains"])
        .arg(&toolchains)
        .current_dir(sandbox.path())
        .env("PIP_INDEX_URL", &closed)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_CACHE_DIR", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(
        built.status.code(),
        Some(sluice::exit_codes::STAGE_ERROR),
        "{stderr}"
    );
    assert!(
        stderr.contains("installing the Python and C plugin toolchain"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot install the Python and C plugin toolchain from PyPI"),
        "{stderr}"
    );
    assert!(stderr.contains("PIP_INDEX_URL"), "{stderr}");
    // Nothing half-made: no venv, no marker, no component.
    assert!(!toolchains.join("python").exists());
    assert!(!sandbox.path().join("offline/offline.wasm").exists());
    Ok(())
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
