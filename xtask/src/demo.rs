//! `cargo xtask demo`: the website pipeline against a real nginx, signed stages shared through a
//! real OCI registry (then again offline from the plugin store), and examples/hello.

use std::path::Path;

use anyhow::Result;

use crate::services::{http_get, start_nginx, start_registry};
use crate::{host_binary, setup, sh, sh_env};

pub fn demo(root: &Path) -> Result<()> {
    setup(root)?;
    sh_env(
        root,
        "cargo",
        &["build", "--package", "sluice"],
        &crate::build_env::remap_env(),
    )?;
    let sluice = host_binary(root, "debug").display().to_string();
    let website = root.join("examples/website");
    std::fs::create_dir_all(website.join(".deploy"))?;
    let nginx = start_nginx(
        root,
        &website.join(".deploy"),
        18080,
        &root.join("target/demo-nginx"),
    )?;
    sh(root, &sluice, &["check", "examples/website/pipeline.toml"])?;
    // Continuous delivery: the deploy stage is gated; the demo approves it up front.
    sh(
        root,
        &sluice,
        &[
            "run",
            "examples/website/pipeline.toml",
            "--approve",
            "deploy",
            "--report",
            "target/demo-report.json",
        ],
    )?;
    let page = http_get(18080, "/")?;
    eprintln!(
        "xtask: nginx now serves the deployed site: {}",
        page.lines()
            .find(|l| l.contains("<h1>"))
            .unwrap_or("")
            .trim()
    );
    drop(nginx);
    demo_sharing(root, &sluice)?;
    sh(root, &sluice, &["run", "examples/hello/pipeline.toml"])?;
    eprintln!(
        "xtask: demo done. Report: target/demo-report.json. Try examples/website/broken-release.toml \
         (its monitor fails and the rollback restores the previous release), examples/fail-fast and \
         examples/rust-crate."
    );
    Ok(())
}
/// Plugin sharing: team "acme" publishes two signed stages to a real registry; the
/// examples/shared pipeline uses them by reference (lock, signature check, provenance), then
/// runs again offline from the local plugin store.
fn demo_sharing(root: &Path, sluice: &str) -> Result<()> {
    let demo = root.join("target/demo-registry");
    let _ = std::fs::remove_dir_all(demo.join("storage"));
    let _ = std::fs::remove_dir_all(demo.join("store"));
    let _ = std::fs::remove_file(root.join("examples/shared/pipeline.lock"));
    let registry = start_registry(root, 15000, &demo.join("storage"))?;
    // The demo's own plugin store, so the first run visibly fetches.
    let store = demo.join("store").display().to_string();
    for key in ["acme", "ci"] {
        if !demo.join(format!("keys/{key}.key")).is_file() {
            let prefix = format!("target/demo-registry/keys/{key}");
            sh(root, sluice, &["key", "generate", &prefix])?;
        }
    }
    for (plugin, reference) in [
        (
            "text-transform",
            "oci://127.0.0.1:15000/acme/text-transform:1.0.0",
        ),
        ("release", "oci://127.0.0.1:15000/acme/release:1.0.0"),
    ] {
        let file = format!("plugins/dist/{plugin}.wasm");
        let args = [
            "plugin",
            "push",
            &file,
            reference,
            "--sign",
            "target/demo-registry/keys/acme.key",
        ];
        sh(root, sluice, &args)?;
    }
    let pipeline = "examples/shared/pipeline.toml";
    let with_store = ["--plugin-store", store.as_str()];
    let runs = demo.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    let runs_arg = runs.display().to_string();
    sh(
        root,
        sluice,
        &[
            &["run", pipeline, "--runs-dir", &runs_arg][..],
            &with_store[..],
        ]
        .concat(),
    )?;
    // Check the signed provenance of that run (`latest` points at it).
    let envelope = runs
        .join("latest/provenance.intoto.dsse.json")
        .display()
        .to_string();
    sh(
        root,
        sluice,
        &[
            "verify",
            &envelope,
            "--key",
            "target/demo-registry/keys/ci.pub",
        ],
    )?;
    eprintln!("xtask: again, offline, from the local plugin store (the registry is stopped):");
    drop(registry);
    sh(
        root,
        sluice,
        &[
            &[
                "run",
                pipeline,
                "--offline",
                "--locked",
                "--runs-dir",
                &runs_arg,
            ][..],
            &with_store[..],
        ]
        .concat(),
    )
}
