//! The first piece of distributed runs (issue 19): blobs in a real NATS JetStream object store,
//! named by sha256 — stored once, fetched and verified, a damaged local copy replaced, a wrong
//! password refused.

use anyhow::Result;
use sluice::dist::{Blobs, NatsOptions};

use crate::support::NatsServer;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[test]
fn blobs_are_stored_once_by_digest_and_verified_when_fetched() -> Result<()> {
    let server = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("plugin.wasm");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes)?;
    let expected = crate::support::sha256_of(&file)?;
    runtime()?.block_on(async {
        let client = NatsOptions::new(server.url()).connect().await?;
        let sender = Blobs::open(client.clone(), &dir.path().join("sender-cache")).await?;
        let first = sender.put_file(&file).await?;
        assert_eq!(
            (first.sha256.as_str(), first.size, first.uploaded),
            (expected.as_str(), 300_000, true)
        );
        // The same bytes again: nothing sent, still one object.
        let again = sender.put_file(&file).await?;
        assert!(!again.uploaded);
        assert_eq!(sender.count().await?, 1);

        // Another machine's cache: fetched, and the bytes are the file's.
        let cache = dir.path().join("agent-cache");
        let agent = Blobs::open(client.clone(), &cache).await?;
        let fetched = agent.fetch(&expected).await?;
        assert_eq!(std::fs::read(&fetched)?, bytes);
        // A cached copy that no longer hashes to its name is fetched again, never used.
        std::fs::write(&fetched, b"tampered")?;
        let refetched = agent.fetch(&expected).await?;
        assert_eq!(crate::support::sha256_of(&refetched)?, expected);
        // A digest the store does not have is named.
        let missing = "0".repeat(64);
        let err = agent.fetch(&missing).await.err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains(&format!("no blob sha256:{missing}"))),
            "{err:?}"
        );
        // A blob replaced in the store under another blob's name is refused, and not cached.
        let claimed = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(b"the plugin the team published"))
        };
        let bucket = async_nats::jetstream::new(client.clone())
            .get_object_store(sluice::dist::blobs::BUCKET)
            .await?;
        bucket
            .put(
                format!("sha256-{claimed}").as_str(),
                &mut &b"something else"[..],
            )
            .await?;
        let err = agent.fetch(&claimed).await.err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains("hashes to")),
            "{err:?}"
        );
        assert!(!cache.join(&claimed).exists());
        anyhow::Ok(())
    })
}

#[test]
fn a_server_that_asks_for_a_password_gets_it_or_refuses() -> Result<()> {
    let server = NatsServer::start_with_login("ci", "s3cret")?;
    runtime()?.block_on(async {
        let refused = NatsOptions::new(server.url()).connect().await;
        let said = refused.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(said.contains("cannot connect to NATS at"), "{said}");
        let mut options = NatsOptions::new(server.url());
        options.user = Some("ci".into());
        options.password = Some("s3cret".into());
        let client = options.connect().await?;
        let dir = tempfile::tempdir()?;
        Blobs::open(client, dir.path()).await?;
        anyhow::Ok(())
    })
}
