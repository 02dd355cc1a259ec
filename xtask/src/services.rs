//! The real servers the demo and the tests drive — Debian's nginx (the website example deploys to
//! it) and docker-registry (where plugins are shared) — installed when missing and started on
//! 127.0.0.1 for the demo; and bubblewrap, the sandbox the benchmarks compare sluice with.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh;

/// Debian packages the demo and the tests drive, with where each installs its program. Missing
/// ones are installed with service start-up blocked (policy-rc.d), so nothing listens until a
/// test or the demo starts its own instance on 127.0.0.1.
const DEBIAN_TOOLS: &[(&str, &[&str])] = &[
    (
        "nginx",
        &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
    ),
    ("docker-registry", &["/usr/bin/docker-registry"]),
    // The sandboxed-process baseline of `cargo xtask bench`.
    ("bubblewrap", &["/usr/bin/bwrap"]),
    // libFuzzer's C++ runtime, compiled for `cargo xtask fuzz`.
    ("g++", &["/usr/bin/g++"]),
    // `unshare` for the full-disk tests, `openssl` for the big-artifact baseline.
    ("util-linux", &["/usr/bin/unshare"]),
    ("openssl", &["/usr/bin/openssl"]),
    // `xmllint --schema`: the JUnit report is checked against the schema CI systems read.
    ("libxml2-utils", &["/usr/bin/xmllint"]),
    // Headless Chromium loads each run's report.html in the tests (DOM, no script, screenshot).
    ("chromium", &["/usr/bin/chromium"]),
    // The real-content tests make git repositories (`git ls-files` is the checkout's yardstick);
    // `python3 -m http.server` is the web server external links are followed to.
    ("git", &["/usr/bin/git"]),
    ("python3", &["/usr/bin/python3"]),
    // `sluice init` on a Go module: the build and go-test stages run `go` (Debian 12: Go 1.19).
    ("golang-go", &["/usr/bin/go"]),
    // NATS with JetStream: where distributed runs keep jobs, blobs and state.
    (
        "nats-server",
        &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
    ),
];

pub fn ensure_debian_tools(root: &Path) -> Result<()> {
    let missing: Vec<&str> = DEBIAN_TOOLS
        .iter()
        .filter(|(package, _)| tool_binary(package).is_none())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    let run = |args: &[&str]| -> Result<()> {
        let mut full: Vec<&str> = sudo.to_vec();
        full.extend_from_slice(args);
        sh(root, full[0], &full[1..])
    };
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let placed_policy = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if placed_policy {
        let _ = sh(root, "chmod", &["+x", "/usr/sbin/policy-rc.d"]);
    }
    let installed = run(&["apt-get", "update", "-qq"]).and_then(|()| {
        let mut args = vec![
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
        ];
        args.extend(&missing);
        run(&args)
    });
    if placed_policy {
        let _ = std::fs::remove_file(policy);
    }
    installed.with_context(|| {
        format!(
            "cannot install the Debian packages {} (nginx serves the website example, \
             docker-registry is the plugin registry)",
            missing.join(", ")
        )
    })?;
    for package in missing {
        tool_binary(package)
            .with_context(|| format!("{package} was installed but its program is not found"))?;
    }
    Ok(())
}

/// The installed program of one of [`DEBIAN_TOOLS`].
fn tool_binary(package: &str) -> Option<PathBuf> {
    DEBIAN_TOOLS
        .iter()
        .find(|(name, _)| *name == package)?
        .1
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A server process the demo started (nginx, docker-registry), stopped with SIGTERM when
/// dropped (SIGKILL would orphan nginx's workers).
pub struct Service {
    child: std::process::Child,
}

impl Service {
    /// Waits until 127.0.0.1:`port` accepts connections.
    fn wait_listening(self, what: &str, port: u16, log: &Path) -> Result<Self> {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(self);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bail!(
            "{what} did not start listening on 127.0.0.1:{port}; see {}",
            log.display()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (distribution v2) on 127.0.0.1:`port` from `registry/config.yml`,
/// storing into `storage`.
pub fn start_registry(root: &Path, port: u16, storage: &Path) -> Result<Service> {
    let binary = tool_binary("docker-registry")
        .context("docker-registry is not installed; run `cargo xtask setup`")?;
    std::fs::create_dir_all(storage)?;
    let log_path = storage.join("registry.log");
    let log = std::fs::File::create(&log_path)?;
    eprintln!(
        "xtask: starting docker-registry on 127.0.0.1:{port} (storage {})",
        storage.display()
    );
    let child = Command::new(binary)
        .arg("serve")
        .arg(root.join("registry/config.yml"))
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            storage.join("data"),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start docker-registry")?;
    Service { child }.wait_listening("docker-registry", port, &log_path)
}

/// An nginx serving `deploy_root/current` on 127.0.0.1:`port`, stopped when dropped.
pub fn start_nginx(root: &Path, deploy_root: &Path, port: u16, prefix: &Path) -> Result<Service> {
    let binary = tool_binary("nginx").context("nginx is not installed; run `cargo xtask setup`")?;
    std::fs::create_dir_all(prefix)?;
    let template = std::fs::read_to_string(root.join("examples/website/nginx.conf"))?;
    let deploy_root = std::path::absolute(deploy_root)?;
    let prefix = std::path::absolute(prefix)?;
    let conf = template
        .replace("{USER}", if is_root() { "user root;" } else { "" })
        .replace("{PREFIX}", &prefix.display().to_string())
        .replace("{ROOT}", &deploy_root.display().to_string())
        .replace("{PORT}", &port.to_string());
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    eprintln!(
        "xtask: starting nginx on 127.0.0.1:{port} serving {}/current",
        deploy_root.display()
    );
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("cannot start nginx")?;
    Service { child }.wait_listening("nginx", port, &prefix.join("error.log"))
}

/// A plain HTTP/1.0 GET against 127.0.0.1, for the demo's last look at the deployed site.
pub fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}
