//! What sharing produces beyond a run: signed SLSA provenance of a release, interoperability with
//! the ecosystem's `wkg` client, and private registries behind credentials.

use super::*;

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
