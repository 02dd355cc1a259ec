//! The project's driver, behind the README's commands: installs what the build needs (the
//! wasm32-wasip2 target), builds the guest plugins, runs the demo, the test suite and the
//! benchmarks. Plain `std::process::Command` calls to rustup and cargo, printed before they run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod polyglot;

const USAGE: &str = "\
usage: cargo xtask <command>

  demo      set up, build, and run the demo: the six-phase website pipeline against a real
            nginx on 127.0.0.1:18080, signed stages shared through a real OCI registry on
            127.0.0.1:15000 (examples/shared), then examples/hello
  test      set up, build, and run every check: fmt, clippy, unit and end-to-end tests
  plugins   build the guest plugins into plugins/dist/
  setup     install the wasm32-wasip2 target, nginx and docker-registry; build the plugins
  bench     per-stage overhead and whole-pipeline wall time, cold and warm cache
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root()?;
    match args.first().map(String::as_str) {
        Some("demo") => demo(&root),
        Some("test") => test(&root),
        Some("plugins") => build_plugins(&root),
        Some("setup") => setup(&root),
        Some("bench") => bench(&root),
        _ => {
            eprint!("{USAGE}");
            bail!("unknown or missing command");
        }
    }
}

fn repo_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask is not inside the repository")
}

/// Runs a command in `dir`, echoing it, failing with its exit status.
fn sh(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot start `{program}`: is it installed and on PATH?"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn setup(root: &Path) -> Result<()> {
    ensure_wasm_target(root)?;
    ensure_debian_tools(root)?;
    build_plugins(root)
}

/// Debian packages the demo and the tests drive: nginx (the website example deploys to it) and
/// docker-registry (distribution v2, where plugins are shared). Missing ones are installed with
/// service start-up blocked (policy-rc.d), so nothing listens until a test or the demo starts
/// its own instance on 127.0.0.1.
const DEBIAN_TOOLS: &[(&str, &[&str])] = &[
    (
        "nginx",
        &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
    ),
    ("docker-registry", &["/usr/bin/docker-registry"]),
];

fn ensure_debian_tools(root: &Path) -> Result<()> {
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

fn nginx_binary() -> Option<PathBuf> {
    tool_binary("nginx")
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
struct Service {
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
fn start_registry(root: &Path, port: u16, storage: &Path) -> Result<Service> {
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
struct Nginx;

impl Nginx {
    fn start(root: &Path, deploy_root: &Path, port: u16, prefix: &Path) -> Result<Service> {
        let binary = nginx_binary().context("nginx is not installed; run `cargo xtask setup`")?;
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
}

/// Guests build for wasm32-wasip2, which emits components directly.
fn ensure_wasm_target(root: &Path) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .output()
        .context(
            "cannot run `rustup`: sluice's plugins need rustup to add the wasm32-wasip2 target",
        )?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    sh(root, "rustup", &["target", "add", "wasm32-wasip2"])
}

/// Where the guest workspace builds: beside a shared CARGO_TARGET_DIR when one is set.
fn plugin_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm-plugins"),
        None => root.join("plugins").join("target"),
    }
}

/// Builds every guest crate and copies the components to `plugins/dist/<crate-name>.wasm`.
fn build_plugins(root: &Path) -> Result<()> {
    ensure_wasm_target(root)?;
    let plugins = root.join("plugins");
    let target_dir = plugin_target_dir(root);
    let target_arg = target_dir.display().to_string();
    sh(
        &plugins,
        "cargo",
        &[
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
            &target_arg,
        ],
    )?;
    let built = target_dir.join("wasm32-wasip2").join("release");
    let dist = plugins.join("dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("cannot create {}", dist.display()))?;
    let mut count = 0;
    for group in ["stages", "hostile", "fixtures"] {
        let dir = plugins.join(group);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.path().join("Cargo.toml").is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // cdylibs are named with underscores; bins keep the package name.
            let candidates = [
                built.join(format!("{}.wasm", name.replace('-', "_"))),
                built.join(format!("{name}.wasm")),
            ];
            let Some(source) = candidates.iter().find(|p| p.is_file()) else {
                bail!(
                    "plugins/{group}/{name} built no component; its package name must match its folder name"
                );
            };
            std::fs::copy(source, dist.join(format!("{name}.wasm")))
                .with_context(|| format!("cannot copy {}", source.display()))?;
            count += 1;
        }
    }
    count += polyglot::build_all(root, &dist, &toolchains_dir(root))?;
    eprintln!("xtask: {count} plugin components in {}", dist.display());
    Ok(())
}

/// Where the guest toolchains for Python, JavaScript and C are installed.
fn toolchains_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("toolchains"),
        None => root.join("target").join("toolchains"),
    }
}

fn demo(root: &Path) -> Result<()> {
    setup(root)?;
    sh(root, "cargo", &["build", "--package", "sluice"])?;
    let sluice = host_binary(root, "debug").display().to_string();
    let website = root.join("examples/website");
    std::fs::create_dir_all(website.join(".deploy"))?;
    let nginx = Nginx::start(
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

/// A plain HTTP/1.0 GET against 127.0.0.1, for the demo's last look at the deployed site.
fn http_get(port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

fn host_binary(root: &Path, profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join(profile).join("sluice")
}

fn test(root: &Path) -> Result<()> {
    let started = Instant::now();
    setup(root)?;
    // The sharing tests push and pull with the ecosystem's own client too.
    polyglot::wkg(root, &toolchains_dir(root))?;
    sh(root, "cargo", &["fmt", "--all", "--check"])?;
    sh(&root.join("plugins"), "cargo", &["fmt", "--all", "--check"])?;
    sh(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let target_arg = plugin_target_dir(root).display().to_string();
    sh(
        &root.join("plugins"),
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
            &target_arg,
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The scaffold tests build plugins with the same toolchains and compiled dependencies.
    eprintln!("xtask: $ cargo test --workspace");
    let status = Command::new("cargo")
        .args(["test", "--workspace"])
        .env("SLUICE_TOOLCHAINS", toolchains_dir(root))
        .env("SLUICE_PLUGIN_TARGET", plugin_target_dir(root))
        .current_dir(root)
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("`cargo test --workspace` failed ({status})");
    }
    eprintln!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn bench(root: &Path) -> Result<()> {
    setup(root)?;
    // The dev profile keeps every dependency (wasmtime included) at opt-level 3, so benching
    // it reuses the test build instead of compiling wasmtime a second time.
    sh(
        root,
        "cargo",
        &[
            "bench",
            "--profile",
            "dev",
            "--package",
            "sluice",
            "--bench",
            "stage_overhead",
        ],
    )?;
    sh(root, "cargo", &["build", "--package", "sluice"])?;
    whole_pipeline_wall_time(root)
}

/// Times `sluice run examples/hello` as a whole process: cold (empty compile cache) and warm.
fn whole_pipeline_wall_time(root: &Path) -> Result<()> {
    let sluice = host_binary(root, "debug");
    let scratch = root.join("target").join("bench-wall");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let cache = scratch.join("cache");
    let runs = scratch.join("runs");
    let once = |label: &str| -> Result<f64> {
        let started = Instant::now();
        let status = Command::new(&sluice)
            .args([
                "run",
                "examples/hello/pipeline.toml",
                "--quiet",
                "--format",
                "plain",
            ])
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--runs-dir")
            .arg(&runs)
            .current_dir(root)
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot start {}", sluice.display()))?;
        if !status.success() {
            bail!("{label} run of examples/hello failed ({status})");
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    let mut cold = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&cache);
        cold.push(once("cold")?);
    }
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(once("warm")?);
    }
    report("sluice run examples/hello, cold cache (ms)", &mut cold);
    report("sluice run examples/hello, warm cache (ms)", &mut warm);
    Ok(())
}

fn report(label: &str, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let min = samples[0];
    let max = samples[samples.len() - 1];
    println!(
        "{label}: median {median:.1}  min {min:.1}  max {max:.1}  (n={})",
        samples.len()
    );
}
