//! Plugin sharing through a real registry (Debian's docker-registry on 127.0.0.1): two teams
//! share a signed stage pinned by pipeline.lock; every refusal path (tampered blob, moved tag,
//! unsigned, wrongly signed, forged, offline and missing, unreachable) and SLSA provenance.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::{RunStatus, StageStatus};

use crate::support::{
    CredentialLure, Pipeline, Ran, RegistryServer, Sandbox, Stage, plugin, sha256_of, table,
    toolchains,
};

/// One team: its own folder, plugin store, compile cache and keys.
struct Team {
    sandbox: Sandbox,
    name: &'static str,
}

impl Team {
    fn new(name: &'static str) -> Result<Self> {
        Ok(Self {
            sandbox: Sandbox::new()?,
            name,
        })
    }

    fn path(&self) -> &Path {
        self.sandbox.path()
    }

    fn sluice(&self, args: &[&str]) -> Result<Ran> {
        self.sandbox.sluice(args)
    }

    /// `sluice key generate`; returns (private, public) key files.
    fn keys(&self) -> Result<(PathBuf, PathBuf)> {
        let prefix = self.path().join("keys").join(self.name);
        let ran = self.sluice(&["key", "generate", &prefix.display().to_string()])?;
        anyhow::ensure!(ran.code == 0, "key generate failed: {}", ran.stderr);
        Ok((prefix.with_extension("key"), prefix.with_extension("pub")))
    }

    /// `sluice plugin push FILE REF [--sign KEY]`; returns the manifest digest it printed.
    fn push(&self, file: &Path, reference: &str, key: Option<&Path>) -> Result<String> {
        let key = key.map(|k| k.display().to_string());
        match &key {
            Some(key) => self.push_with(file, reference, &["--sign", key]),
            None => self.push_with(file, reference, &[]),
        }
    }

    /// `sluice plugin push FILE REF --force`: moves an existing tag.
    fn push_forced(&self, file: &Path, reference: &str) -> Result<String> {
        self.push_with(file, reference, &["--force"])
    }

    fn push_with(&self, file: &Path, reference: &str, extra: &[&str]) -> Result<String> {
        let file = file.display().to_string();
        let mut args = vec!["plugin", "push", file.as_str(), reference];
        args.extend_from_slice(extra);
        let ran = self.sluice(&args)?;
        anyhow::ensure!(ran.code == 0, "push failed: {}{}", ran.stdout, ran.stderr);
        ran.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("manifest  "))
            .map(str::to_string)
            .context("push printed no manifest digest")
    }

    fn run(&self, pipeline: &Path, extra: &[&str]) -> Result<Ran> {
        self.run_with_env(pipeline, extra, &[])
    }

    fn run_with_env(&self, pipeline: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Ran> {
        let pipeline = pipeline.display().to_string();
        let runs = self.sandbox.runs_dir().display().to_string();
        let report = self.report_path();
        let _ = std::fs::remove_file(&report);
        let report = report.display().to_string();
        let mut args = vec![
            "run",
            pipeline.as_str(),
            "--format",
            "plain",
            "--runs-dir",
            &runs,
            "--report",
            &report,
        ];
        args.extend_from_slice(extra);
        self.sandbox.sluice_with_env(&args, env)
    }

    fn runs(&self) -> usize {
        std::fs::read_dir(self.sandbox.runs_dir()).map_or(0, |d| d.count())
    }

    fn report_path(&self) -> PathBuf {
        self.path().join("last-report.json")
    }

    /// The report of the last `run` (which must have run).
    fn latest_report(&self) -> Result<sluice::model::report::RunReport> {
        sluice::model::report::RunReport::read(&self.report_path())
    }
}

/// Team B's pipeline: a local first stage, then the shared stage from the registry.
fn consumer_pipeline(team: &Team, reference: &str, trusted: Option<&Path>) -> Result<PathBuf> {
    let mut pipeline = Pipeline::new("team-b");
    if let Some(key) = trusted {
        pipeline = pipeline.set("trusted_keys", [key]);
    }
    team.sandbox.write(
        &pipeline
            .stage(
                Stage::new("code", "emit")
                    .config("files", table([("greeting.txt", "hello from team b\n")])),
            )
            .stage(
                Stage::with_plugin("build", reference)
                    .inputs(["code/*"])
                    .config("op", "upper"),
            ),
    )
}

fn lock_text(pipeline: &Path) -> String {
    std::fs::read_to_string(pipeline.with_extension("lock")).unwrap_or_default()
}

#[test]
fn two_teams_share_a_signed_stage_pinned_by_the_lock() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let (private, public) = team_a.keys()?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    let manifest = team_a.push(&component, &reference, Some(&private))?;

    // Team B trusts team A's public key and nothing else.
    let trusted = team_b.path().join("team-a.pub");
    std::fs::copy(&public, &trusted)?;
    let pipeline = consumer_pipeline(&team_b, &reference, Some(&trusted))?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(0)
        .assert_stderr(&["fetched"]);
    let report = team_b.latest_report()?;
    let build = &report.stages[1];
    assert_eq!(build.status, StageStatus::Succeeded);
    assert_eq!(
        build.plugin.sha256.as_deref(),
        Some(sha256_of(&component)?.as_str())
    );
    assert_eq!(
        build.plugin.manifest_digest.as_deref(),
        Some(manifest.as_str())
    );
    assert_eq!(
        build.plugin.signed_by.len(),
        1,
        "{:?}",
        build.plugin.signed_by
    );
    let out = std::fs::read_to_string(Path::new(&report.run_dir).join(&build.outputs[0].path))?;
    assert_eq!(out, "HELLO FROM TEAM B\n");

    // The lock pins the manifest and the component.
    let lock = lock_text(&pipeline);
    assert!(
        lock.contains(&format!("reference = \"{reference}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("manifest = \"{manifest}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("layer = \"sha256:{}\"", sha256_of(&component)?)),
        "{lock}"
    );

    // Pinned by digest in the pipeline itself: the same bytes, no tag involved.
    let by_digest = team_b.sandbox.pipeline(
        "by-digest.toml",
        &std::fs::read_to_string(&pipeline)?.replace(
            &reference,
            &registry.reference(&format!("acme/text-transform@{manifest}")),
        ),
    )?;
    team_b.run(&by_digest, &[])?.assert_exit(0);
    assert_eq!(
        team_b.latest_report()?.stages[1]
            .plugin
            .manifest_digest
            .as_deref(),
        Some(manifest.as_str())
    );

    // The event stream says which bytes each registry stage was pinned to.
    let ran = team_b.sluice(&["run", &pipeline.display().to_string(), "--format", "json"])?;
    ran.assert_exit(0);
    let resolved: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "plugin-resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{}", ran.stdout);
    assert_eq!(resolved[0]["stage"], "build");
    assert_eq!(resolved[0]["manifest_digest"], manifest.as_str());
    assert_eq!(resolved[0]["fetched"], false);

    // A warm run needs no network: with the registry gone it still runs, signature included.
    drop(registry);
    let ran = team_b.run(&pipeline, &["--locked"])?;
    ran.assert_exit(0);
    assert!(!ran.stderr.contains("fetched"), "{}", ran.stderr);
    team_b.run(&pipeline, &["--offline"])?.assert_exit(0);
    assert_eq!(team_b.latest_report()?.status, RunStatus::Succeeded);
    Ok(())
}

#[test]
fn a_blob_changed_in_the_registry_is_refused_before_anything_runs() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    team_a.push(&component, &reference, None)?;

    // Someone with access to the registry's disk rewrites the published component.
    let blob = registry.blob_file(&format!("sha256:{}", sha256_of(&component)?));
    let mut bytes = std::fs::read(&blob)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes)?;

    let pipeline = consumer_pipeline(&team_b, &reference, None)?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["stage `build`", "changed after it was published"]);
    assert_eq!(team_b.runs(), 0, "nothing may run");
    assert!(
        lock_text(&pipeline).is_empty(),
        "a refused plugin is not locked"
    );
    Ok(())
}

#[test]
fn a_changed_copy_in_the_local_store_is_never_run() -> Result<()> {
    let registry = RegistryServer::start()?;
    let team = Team::new("team-b")?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?;
    team.push(&component, &reference, None)?;
    let pipeline = consumer_pipeline(&team, &reference, None)?;
    team.run(&pipeline, &[])?.assert_exit(0);

    let stored = team
        .path()
        .join("plugin-store/blobs/sha256")
        .join(sha256_of(&component)?);
    std::fs::write(&stored, b"\0asm not the published bytes")?;
    // Offline there is nothing to repair it from: refused.
    team.run(&pipeline, &["--offline"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["corrupt"]);
    // Online, the store is refilled from the registry and the pinned bytes run.
    team.run(&pipeline, &[])?.assert_exit(0);
    assert_eq!(sha256_of(&stored)?, sha256_of(&component)?);
    Ok(())
}

#[test]
fn a_moved_tag_changes_nothing_until_lock_update() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let reference = registry.reference("acme/stage:1.0.0");
    let first = plugin("text-transform")?;
    let first_manifest = team_a.push(&first, &reference, None)?;
    // Publishing is reproducible: the same bytes again give the same manifest.
    assert_eq!(team_a.push(&first, &reference, None)?, first_manifest);
    let pipeline = consumer_pipeline(&team_b, &reference, None)?;
    team_b.run(&pipeline, &[])?.assert_exit(0);

    // Different bytes under a published version are refused unless forced...
    let second = plugin("checksum")?;
    let ran = team_a.sluice(&["plugin", "push", &second.display().to_string(), &reference])?;
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    ran.assert_stderr(&["already names", "--force"]);
    // ... and then the tag moves.
    let second_manifest = team_a.push_forced(&second, &reference)?;
    assert_ne!(first_manifest, second_manifest);

    // The lock still wins, even with a fresh store (the old manifest is fetched by digest).
    std::fs::remove_dir_all(team_b.path().join("plugin-store"))?;
    team_b.run(&pipeline, &["--locked"])?.assert_exit(0);
    let report = team_b.latest_report()?;
    assert_eq!(
        report.stages[1].plugin.sha256.as_deref(),
        Some(sha256_of(&first)?.as_str())
    );

    // Re-resolving on purpose moves the pin, and says so.
    team_b
        .sluice(&["lock", &pipeline.display().to_string(), "--update"])?
        .assert_exit(0)
        .assert_stderr(&[&format!("update {reference}")]);
    assert!(lock_text(&pipeline).contains(&second_manifest));

    // A lock whose component digest was edited no longer matches its manifest: refused.
    let lock_file = pipeline.with_extension("lock");
    let honest = lock_text(&pipeline);
    let second_layer = format!("sha256:{}", sha256_of(&second)?);
    std::fs::write(
        &lock_file,
        honest.replace(&second_layer, &format!("sha256:{}", sha256_of(&first)?)),
    )?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["tampered"]);
    std::fs::write(&lock_file, honest)?;

    // With --locked, a pipeline whose lock is out of date is refused.
    let other = registry.reference("acme/stage:2.0.0");
    team_a.push(&second, &other, None)?;
    let pipeline = consumer_pipeline(&team_b, &other, None)?;
    team_b
        .run(&pipeline, &["--locked"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["out of date", "sluice lock"]);
    Ok(())
}

#[test]
fn unsigned_wrongly_signed_and_forged_plugins_are_refused() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b, mallory) = (
        Team::new("team-a")?,
        Team::new("team-b")?,
        Team::new("mallory")?,
    );
    let (_, a_public) = team_a.keys()?;
    let (m_private, _) = mallory.keys()?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let manifest = team_a.push(&plugin("text-transform")?, &reference, None)?;
    let pipeline = consumer_pipeline(&team_b, &reference, Some(&a_public))?;

    // Unsigned.
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["is not signed", "refused before running"]);
    assert_eq!(team_b.runs(), 0);

    // Signed, but by a key the pipeline does not trust.
    mallory
        .sluice(&[
            "plugin",
            "sign",
            &reference,
            "--key",
            &m_private.display().to_string(),
        ])?
        .assert_exit(0);
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["does not trust"]);
    team_b
        .sluice(&[
            "plugin",
            "verify",
            &reference,
            "--key",
            &a_public.display().to_string(),
        ])?
        .assert_exit(exit_codes::PLUGIN_REFUSED);

    // A registry artifact that is not a component (here: the signature manifest itself).
    let not_a_plugin = registry.reference(&format!(
        "acme/text-transform:{}.sig",
        manifest.replacen(':', "-", 1)
    ));
    let other = consumer_pipeline(&team_b, &not_a_plugin, None)?;
    team_b
        .run(&other, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["is not a plugin"]);
    let pipeline = consumer_pipeline(&team_b, &reference, Some(&a_public))?;

    // Forged: mallory's signature relabelled with team A's key id.
    let a_id = sluice::trust::signing::TrustedKey::from_file(&a_public)?.id;
    let signatures = team_b
        .path()
        .join("plugin-store/signatures")
        .join(format!("{}.json", manifest.trim_start_matches("sha256:")));
    let forged = std::fs::read_to_string(&signatures)?;
    let mut envelopes: Vec<sluice::trust::signing::Envelope> = serde_json::from_str(&forged)?;
    for envelope in &mut envelopes {
        for signature in &mut envelope.signatures {
            signature.keyid = a_id.clone();
        }
    }
    std::fs::write(&signatures, serde_json::to_vec(&envelopes)?)?;
    team_b
        .run(&pipeline, &["--offline"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["does not match the signed content"]);
    assert_eq!(team_b.runs(), 0);
    Ok(())
}

#[test]
fn offline_names_what_is_missing_and_a_bad_registry_says_what_to_do() -> Result<()> {
    let registry = RegistryServer::start()?;
    let team = Team::new("team-b")?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let pipeline = consumer_pipeline(&team, &reference, None)?;

    team.run(&pipeline, &["--offline"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["not in the local plugin store", "without --offline"]);

    // Never published.
    team.run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["is not in the registry", "sluice plugin push"]);

    // Not a plugin at all: an OCI artifact of another kind is refused by its media type.
    // (A valid component of another world is refused at load, as local files are.)
    let ran = team.sluice(&[
        "plugin",
        "push",
        &plugin("not-a-stage")?.display().to_string(),
        &reference,
    ])?;
    assert_ne!(
        ran.code, 0,
        "a component that is not a stage must not be published"
    );
    ran.assert_stderr(&["not a sluice stage"]);

    // Nobody listening.
    let port = crate::support::free_port()?;
    let pipeline = consumer_pipeline(&team, &format!("oci://127.0.0.1:{port}/acme/x:1.0.0"), None)?;
    team.run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["did not answer"]);

    // A registry that accepts connections and then says nothing: given up on after
    // SLUICE_REGISTRY_TIMEOUT seconds instead of hanging the pipeline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = silent.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let pipeline = consumer_pipeline(&team, &format!("oci://127.0.0.1:{port}/acme/x:1.0.0"), None)?;
    team.run_with_env(&pipeline, &[], &[("SLUICE_REGISTRY_TIMEOUT", "1")])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["did not answer"]);
    assert_eq!(team.runs(), 0);
    Ok(())
}

#[test]
fn bad_references_and_keys_in_the_pipeline_point_at_the_line() -> Result<()> {
    let team = Team::new("team-b")?;
    let bad = "oci://127.0.0.1:5000/Acme/x:1.0";
    let pipeline = consumer_pipeline(&team, bad, None)?;
    // The line of the `plugin = ` that names it.
    let line = 1 + std::fs::read_to_string(&pipeline)?
        .lines()
        .position(|l| l.contains(bad))
        .context("the reference is not in the pipeline")?;
    team.run(&pipeline, &[])?
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&[&format!("pipeline.toml:{line}:"), "not a repository name"]);

    let missing = team.path().join("nope.pub");
    let pipeline = consumer_pipeline(&team, "oci://127.0.0.1:5000/acme/x:1.0", Some(&missing))?;
    team.run(&pipeline, &[])?
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["trusted key", "sluice key generate"]);
    Ok(())
}

#[test]
fn pull_fetches_the_published_bytes_and_checks_the_signature() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let (private, public) = team_a.keys()?;
    let reference = registry.reference("acme/checksum:0.3.1");
    let component = plugin("checksum")?;
    team_a.push(&component, &reference, Some(&private))?;
    let out = team_b.path().join("checksum.wasm");
    team_b
        .sluice(&[
            "plugin",
            "pull",
            &reference,
            "--output",
            &out.display().to_string(),
            "--key",
            &public.display().to_string(),
        ])?
        .assert_exit(0)
        .assert_stdout(&["signed by ed25519:"]);
    assert_eq!(sha256_of(&out)?, sha256_of(&component)?);

    // `inspect` takes a reference too.
    team_b
        .sluice(&["inspect", &reference])?
        .assert_exit(0)
        .assert_stdout(&[&sha256_of(&component)?, "stage    checksum"]);
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run git")?;
    anyhow::ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

#[test]
fn a_release_run_writes_signed_slsa_provenance() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let (a_private, a_public) = team_a.keys()?;
    let release_ref = registry.reference("acme/release:1.0.0");
    let release_manifest = team_a.push(&plugin("release")?, &release_ref, Some(&a_private))?;
    let (ci_private, ci_public) = team_b.keys()?;

    let workspace = team_b.path().join("ws");
    std::fs::create_dir_all(&workspace)?;
    std::fs::write(workspace.join("README.md"), "# product\n")?;
    git(&workspace, &["init", "-q"])?;
    git(&workspace, &["add", "."])?;
    git(&workspace, &["commit", "-q", "-m", "first"])?;
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&workspace)
        .output()?;
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();

    let pipeline = team_b.sandbox.write(
        &Pipeline::new("product")
            .set("workspace", "ws")
            .set("trusted_keys", [&a_public])
            .set("provenance_key", "ci_key")
            .secret("ci_key", table([("file", &ci_private)]))
            .stage(
                Stage::new("code", "checkout")
                    .phase("code")
                    .allow("workspace", "read")
                    .allow(
                        "dirs",
                        [table([
                            ("host", "ws/.git"),
                            ("guest", "/git"),
                            ("mode", "read"),
                        ])],
                    )
                    .config("git_dir", "/git"),
            )
            .stage(
                Stage::new("build", "emit").config("files", table([("app.txt", "the product\n")])),
            )
            .stage(
                Stage::with_plugin("release", &release_ref)
                    .phase("release")
                    .inputs(["code/*", "build/*"])
                    .config("name", "product")
                    .config("version", "1.0.0"),
            ),
    )?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(0)
        .assert_stderr(&["provenance: provenance.intoto.dsse.json (signed by ed25519:"]);
    let report = team_b.latest_report()?;
    let run_dir = PathBuf::from(&report.run_dir);
    let record = report
        .provenance
        .clone()
        .context("no provenance recorded")?;
    assert_eq!(
        record.envelope.as_deref(),
        Some("provenance.intoto.dsse.json")
    );

    let statement: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(&record.statement))?)?;
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    // Subjects: exactly the release's outputs, with the digests the host recorded.
    let release = &report.stages[2];
    let subjects = statement["subject"].as_array().context("no subjects")?;
    assert_eq!(subjects.len(), release.outputs.len());
    for output in &release.outputs {
        assert!(
            subjects.iter().any(|s| s["name"] == output.name.as_str()
                && s["digest"]["sha256"] == output.sha256.as_str()),
            "{} missing from {subjects:?}",
            output.name
        );
    }
    let predicate = &statement["predicate"];
    assert_eq!(
        predicate["buildDefinition"]["externalParameters"]["pipeline"]["digest"]["sha256"],
        sha256_of(&pipeline)?.as_str()
    );
    assert_eq!(
        predicate["runDetails"]["metadata"]["invocationId"],
        report.run_id.as_str()
    );
    let deps = predicate["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .context("no dependencies")?;
    for (stage, name) in report.stages.iter().zip(["checkout", "emit", "release"]) {
        let sha = sha256_of(&plugin(name)?)?;
        assert_eq!(stage.plugin.sha256.as_deref(), Some(sha.as_str()));
        assert!(
            deps.iter().any(|d| d["digest"]["sha256"] == sha.as_str()),
            "plugin {name} missing from {deps:?}"
        );
    }
    assert!(deps.iter().any(|d| d["uri"] == release_ref.as_str()
        && d["annotations"]["manifestDigest"] == release_manifest.as_str()));
    assert!(
        deps.iter()
            .any(|d| d["digest"]["gitCommit"] == commit.as_str()),
        "source commit {commit} missing from {deps:?}"
    );

    // The envelope verifies with the CI public key and not with another.
    let envelope = run_dir
        .join("provenance.intoto.dsse.json")
        .display()
        .to_string();
    team_b
        .sluice(&[
            "verify",
            &envelope,
            "--key",
            &ci_public.display().to_string(),
        ])?
        .assert_exit(0)
        .assert_stdout(&["https://slsa.dev/provenance/v1"]);
    team_b
        .sluice(&[
            "verify",
            &envelope,
            "--key",
            &a_public.display().to_string(),
        ])?
        .assert_exit(exit_codes::PLUGIN_REFUSED);
    Ok(())
}

/// Runs the ecosystem's own registry client, `wkg`, which `cargo xtask wkg-interop` installs.
fn wkg(home: &Path, args: &[&str]) -> Result<()> {
    let binary = toolchains().join("cargo/bin/wkg");
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: run `cargo xtask wkg-interop`, which installs it and runs this test",
        binary.display()
    );
    let output = std::process::Command::new(&binary)
        .args(args)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .output()
        .context("cannot run wkg")?;
    anyhow::ensure!(
        output.status.success(),
        "wkg {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
#[ignore = "needs wkg (the component registry client): run `cargo xtask wkg-interop`"]
fn what_wkg_pushes_sluice_runs_and_what_sluice_pushes_wkg_pulls() -> Result<()> {
    let registry = RegistryServer::start()?;
    let host = format!("127.0.0.1:{}", registry.port);
    let team = Team::new("team-b")?;

    // Published with wkg, used by reference in a pipeline.
    let component = plugin("text-transform")?;
    wkg(
        team.path(),
        &[
            "oci",
            "push",
            "--insecure",
            &host,
            &format!("{host}/wkg/text-transform:1.0.0"),
            &component.display().to_string(),
        ],
    )?;
    let pipeline = consumer_pipeline(&team, &registry.reference("wkg/text-transform:1.0.0"), None)?;
    let ran = team.run(&pipeline, &[])?;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report = team.latest_report()?;
    assert_eq!(
        report.stages[1].plugin.sha256.as_deref(),
        Some(sha256_of(&component)?.as_str())
    );

    // Published with sluice, fetched with wkg: the same bytes.
    let checksum = plugin("checksum")?;
    team.push(&checksum, &registry.reference("acme/checksum:1.0.0"), None)?;
    let pulled = team.path().join("pulled.wasm");
    wkg(
        team.path(),
        &[
            "oci",
            "pull",
            "--insecure",
            &host,
            &format!("{host}/acme/checksum:1.0.0"),
            "--output",
            &pulled.display().to_string(),
        ],
    )?;
    assert_eq!(sha256_of(&pulled)?, sha256_of(&checksum)?);
    Ok(())
}

#[test]
fn a_private_registry_takes_env_credentials_or_a_docker_login() -> Result<()> {
    let registry = RegistryServer::start_with_login("acme-ci", "s3cret-pass")?;
    let team = Team::new("team-b")?;
    let reference = registry.reference("acme/text-transform:1.0.0");
    let component = plugin("text-transform")?.display().to_string();

    // Anonymous: refused, with both ways to log in.
    let ran = team.sluice(&["plugin", "push", &component, &reference])?;
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    ran.assert_stderr(&["refused access", "docker login"]);

    // SLUICE_REGISTRY_USER / SLUICE_REGISTRY_PASSWORD, for the host SLUICE_REGISTRY_HOST names.
    let host = format!("127.0.0.1:{}", registry.port);
    let env = [
        ("SLUICE_REGISTRY_HOST", host.as_str()),
        ("SLUICE_REGISTRY_USER", "acme-ci"),
        ("SLUICE_REGISTRY_PASSWORD", "s3cret-pass"),
    ];
    team.sandbox
        .sluice_with_env(&["plugin", "push", &component, &reference], &env)?
        .assert_exit(0);

    // A pipeline naming another host never gets them, however hard that host asks.
    let lure = CredentialLure::start()?;
    let elsewhere = format!("oci://{}/acme/text-transform:1.0.0", lure.addr);
    let pipeline = team
        .sandbox
        .write(&Pipeline::new("t").stage(Stage::with_plugin("build", &elsewhere)))?;
    let ran = team
        .sandbox
        .sluice_with_env(&["check", &pipeline.display().to_string()], &env)?;
    assert_ne!(ran.code, 0);
    let seen = lure.requests();
    assert!(!seen.is_empty(), "sluice never asked the other host");
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "acme-ci:s3cret-pass",
    );
    assert!(
        !seen.contains(&basic) && !seen.contains("s3cret-pass"),
        "credentials went to {}: {seen}",
        lure.addr
    );

    // What `docker login` writes: $DOCKER_CONFIG/config.json.
    let docker = team.path().join("docker");
    std::fs::create_dir_all(&docker)?;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "acme-ci:s3cret-pass",
    );
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({ "auths": { format!("127.0.0.1:{}", registry.port): { "auth": auth } } })
            .to_string(),
    )?;
    let pipeline = consumer_pipeline(&team, &reference, None)?;
    let docker_env = docker.display().to_string();
    team.run_with_env(&pipeline, &[], &[("DOCKER_CONFIG", docker_env.as_str())])?
        .assert_exit(0);
    assert_eq!(team.latest_report()?.status, RunStatus::Succeeded);
    Ok(())
}

#[test]
fn a_signature_vouches_for_one_repository_not_the_same_bytes_elsewhere() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (team_a, team_b) = (Team::new("team-a")?, Team::new("team-b")?);
    let (a_private, a_public) = team_a.keys()?;
    let signed = registry.reference("acme/text-transform:1.0.0");
    team_a.push(&plugin("text-transform")?, &signed, Some(&a_private))?;
    // Someone with write access to the registry's storage copies the repository, signature tag
    // and all, under a name that means more.
    let repositories = registry
        .storage
        .path()
        .join("data/docker/registry/v2/repositories/acme");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(repositories.join("text-transform"))
        .arg(repositories.join("deploy-prod"))
        .status()?;
    anyhow::ensure!(copied.success(), "cp failed");
    let relabelled = registry.reference("acme/deploy-prod:1.0.0");
    let pipeline = consumer_pipeline(&team_b, &relabelled, Some(&a_public))?;
    team_b
        .run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&[
            "is for these bytes published as",
            "acme/text-transform, not as",
            "acme/deploy-prod",
        ]);
    assert_eq!(team_b.runs(), 0, "nothing ran");
    // The name it was signed under still runs.
    let pipeline = consumer_pipeline(&team_b, &signed, Some(&a_public))?;
    team_b.run(&pipeline, &[])?.assert_exit(0);
    Ok(())
}

#[test]
fn an_endless_manifest_is_refused_after_a_few_mebibytes() -> Result<()> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A "registry" that answers the API check, then sends a manifest that never ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]).into_owned();
            if !line.contains("/manifests/") {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n",
            );
            let chunk = vec![b' '; 64 << 10];
            // Up to 1 GiB, or until sluice hangs up.
            for _ in 0..(1 << 14) {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    });
    let team = Team::new("team-b")?;
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pipeline = consumer_pipeline(&team, &format!("oci://{addr}/acme/huge@{digest}"), None)?;
    team.run(&pipeline, &[])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["larger than 4096 KiB; refusing to read it"]);
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "sluice read {sent} bytes of it");
    Ok(())
}
