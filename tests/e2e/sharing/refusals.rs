//! Sharing refused: unsigned, wrongly signed and forged plugins, offline and missing, bad
//! references and keys at their line, a signature for another repository, an endless manifest —
//! and `sluice plugin pull`, which checks the same signature.

use super::*;

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
