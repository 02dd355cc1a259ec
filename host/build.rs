//! Three build-time facts about the `sluice` binary:
//! - it names the commit it is built from (`sluice --version`), from git when the sources are a
//!   git checkout, else "unknown" — only the commit, never a path of the build machine;
//! - it links with packed relative relocations (DT_RELR): the 30 MiB position-independent binary
//!   carries ~43,000 relative relocations, and applying them one by one was most of the dynamic
//!   loader's start-up (6.6 M cycles → 0.35 M, measured with `LD_DEBUG=statistics sluice
//!   --version`). The binary stays position-independent (ASLR kept); needs binutils ≥ 2.38 and
//!   glibc ≥ 2.36, which Debian 12 has;
//! - it carries the shipped stages `sluice init` writes into a project (`SHIPPED_STAGES`), taken
//!   from `plugins/dist/` when the guest plugins are built (`cargo xtask plugins`, `cargo xtask
//!   install` and CI build them first); a binary built without them says so when asked to init.

use std::path::Path;
use std::process::Command;

/// The shipped stages `sluice init` uses.
const SHIPPED_STAGES: &[&str] = &[
    "checkout",
    "exec",
    "cargo-test",
    "go-test",
    "markdown-site",
    "link-check",
];

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    shipped_stages();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SLUICE_COMMIT={commit}");
    // Built again when HEAD moves. Only paths that exist are named: cargo would otherwise run
    // this script on every build.
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(git_dir) = git_dir {
        let git_dir = Path::new(&git_dir);
        let head = git_dir.join("HEAD");
        let mut watched = vec![head.clone(), git_dir.join("packed-refs")];
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(reference) = text.trim().strip_prefix("ref: ")
        {
            // A branch only in packed-refs gets a loose file at its next commit: watch the
            // folder it will appear in.
            let loose = git_dir.join(reference);
            let parent = loose.parent().map(Path::to_path_buf);
            watched.push(loose);
            watched.extend(parent);
        }
        for path in watched.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Writes `$OUT_DIR/shipped_stages.rs`: `(name, bytes)` of each shipped stage that is built.
/// Only the bytes are embedded, never the path they were read from.
fn shipped_stages() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let plugins = Path::new(&manifest_dir).join("../plugins");
    let dist = plugins.join("dist");
    let mut entries = String::from("&[\n");
    for name in SHIPPED_STAGES {
        let file = dist.join(format!("{name}.wasm"));
        if file.is_file() {
            println!("cargo:rerun-if-changed={}", file.display());
            entries.push_str(&format!(
                "    ({name:?}, include_bytes!({:?}) as &[u8]),\n",
                file.display().to_string()
            ));
        }
    }
    entries.push(']');
    // While a stage is missing, watch for it to appear (cargo looks at every file under a
    // watched folder, so once all are there only the files themselves are watched: the other
    // plugins written to plugins/dist do not rebuild the host).
    let missing = SHIPPED_STAGES
        .iter()
        .any(|name| !dist.join(format!("{name}.wasm")).is_file());
    if missing {
        let watched = if dist.is_dir() { &dist } else { &plugins };
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let code = format!(
        "/// The shipped stages this binary carries, by name (see build.rs).\npub const SHIPPED_STAGES: &[(&str, &[u8])] = {entries};\n"
    );
    if let Err(err) = std::fs::write(Path::new(&out).join("shipped_stages.rs"), code) {
        println!("cargo:warning=cannot write shipped_stages.rs: {err}");
    }
}
