//! The parts distributed runs (issue 19) are being built from, against a real NATS server with
//! JetStream: blobs named by sha256 (stored once, fetched and verified, a damaged local copy
//! replaced, a replaced object refused), credentials, stage jobs routed by labels and given again
//! when an agent stops heartbeating, and stage results recorded at most once.

use anyhow::Result;
use sluice::cluster::{Blobs, NatsOptions};

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
            .get_object_store(sluice::cluster::blobs::BUCKET)
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

fn labels(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn jobs_reach_only_agents_with_their_labels_and_each_is_taken_once() -> Result<()> {
    use sluice::cluster::{JobQueue, Redelivery};
    use std::time::Duration;
    let server = NatsServer::start()?;
    runtime()?.block_on(async {
        let client = NatsOptions::new(server.url()).connect().await?;
        let queue = JobQueue::open(client, Redelivery::default()).await?;
        queue.publish(&labels(&[]), b"plain".to_vec()).await?;
        queue
            .publish(&labels(&["cargo"]), b"needs cargo".to_vec())
            .await?;
        queue
            .publish(&labels(&["cargo", "linux"]), b"needs both".to_vec())
            .await?;
        assert!(
            queue
                .publish(&labels(&["Bad.Label"]), Vec::new())
                .await
                .is_err()
        );

        // An agent without labels gets the plain job only.
        let bare = labels(&[]);
        let job = queue.take(&bare, Duration::from_secs(2)).await?;
        let job = job.ok_or_else(|| anyhow::anyhow!("no job for the bare agent"))?;
        assert_eq!((job.payload.as_slice(), job.delivered), (&b"plain"[..], 1));
        job.finish().await?;
        assert!(
            queue
                .take(&bare, Duration::from_millis(300))
                .await?
                .is_none()
        );

        // An agent with cargo but not linux gets the cargo job, never the one needing both.
        let cargo = labels(&["cargo"]);
        let job = queue
            .take(&cargo, Duration::from_secs(2))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job for the cargo agent"))?;
        assert_eq!(job.payload, b"needs cargo");
        job.finish().await?;
        assert!(
            queue
                .take(&cargo, Duration::from_millis(300))
                .await?
                .is_none()
        );

        let both = labels(&["cargo", "linux"]);
        let job = queue
            .take(&both, Duration::from_secs(2))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job for the agent with both labels"))?;
        assert_eq!(job.payload, b"needs both");
        job.finish().await?;
        // Finished jobs leave the work queue.
        assert!(
            queue
                .take(&both, Duration::from_millis(300))
                .await?
                .is_none()
        );
        anyhow::Ok(())
    })
}

#[test]
fn a_job_whose_agent_stops_heartbeating_goes_to_another_until_the_limit() -> Result<()> {
    use sluice::cluster::{JobQueue, Redelivery};
    use std::time::Duration;
    let server = NatsServer::start()?;
    runtime()?.block_on(async {
        let client = NatsOptions::new(server.url()).connect().await?;
        // The ack wait is several heartbeats long, so a slow machine delaying one heartbeat
        // does not give the job away while its agent lives.
        let ack_wait = Duration::from_secs(2);
        let redelivery = Redelivery {
            ack_wait,
            max_deliver: 2,
        };
        let queue = JobQueue::open(client, redelivery).await?;
        let none = labels(&[]);
        queue.publish(&none, b"long stage".to_vec()).await?;
        let first = queue
            .take(&none, Duration::from_secs(10))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job"))?;
        // A live agent heartbeats past the ack wait (a beat about every 250-400 ms, for longer
        // than the ack wait): nobody else gets the job meanwhile — asked between the beats.
        let alive = std::time::Instant::now();
        while alive.elapsed() < ack_wait + ack_wait / 2 {
            let other = queue.take(&none, Duration::from_millis(250)).await?;
            assert!(
                other.is_none(),
                "the job was given to another agent while its agent was heartbeating it"
            );
            first.heartbeat().await?;
        }
        // Then it dies (no ack, no heartbeat): the job is delivered again, to the next agent.
        drop(first);
        let second = queue
            .take(&none, ack_wait * 5)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the job was not delivered again"))?;
        assert_eq!(
            (second.payload.as_slice(), second.delivered),
            (&b"long stage"[..], 2)
        );
        // That agent dies too: two deliveries were the limit, no third (waited for past the
        // ack wait, when a third would come).
        drop(second);
        assert!(queue.take(&none, ack_wait * 2).await?.is_none());
        anyhow::Ok(())
    })
}

#[test]
fn nothing_recorded_can_be_replaced_and_nobody_blocks_a_stage_by_writing_first() -> Result<()> {
    use sha2::{Digest, Sha256};
    use sluice::cluster::Results;
    let server = NatsServer::start()?;
    runtime()?.block_on(async {
        let client = NatsOptions::new(server.url()).connect().await?;
        let results = Results::open(client.clone()).await?;
        let stage = "build (target = x86_64)";
        // A forger writes first: the honest result still gets recorded after it.
        results.record("run-1", stage, b"forged".to_vec()).await?;
        results.record("run-1", stage, b"honest".to_vec()).await?;
        let read: Vec<Vec<u8>> = results
            .since("run-1", stage, 0)
            .await?
            .into_iter()
            .map(|m| m.bytes)
            .collect();
        assert_eq!(read, [b"forged".to_vec(), b"honest".to_vec()]);
        // A plain publish on the honest result's own subject is refused by the server.
        let prefix = Sha256::new()
            .chain_update(b"run-1")
            .chain_update([0])
            .chain_update(stage.as_bytes())
            .finalize();
        let subject = format!(
            "sluice.results.{}.{}",
            hex::encode(&prefix[..16]),
            hex::encode(&Sha256::digest(b"honest")[..16])
        );
        let js = async_nats::jetstream::new(client.clone());
        let replaced = match js.publish(subject, "replaced".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(
            !replaced,
            "the server took a second message on a result's subject"
        );
        let read: Vec<Vec<u8>> = results
            .since("run-1", stage, 0)
            .await?
            .into_iter()
            .map(|m| m.bytes)
            .collect();
        assert_eq!(read, [b"forged".to_vec(), b"honest".to_vec()]);
        // Another run, or another stage, has messages of its own.
        results.record("run-2", stage, b"other".to_vec()).await?;
        assert!(results.since("run-1", "test", 0).await?.is_empty());
        assert_eq!(results.since("run-2", stage, 0).await?.len(), 1);
        anyhow::Ok(())
    })
}

#[test]
fn a_results_stream_someone_made_with_other_settings_is_refused() -> Result<()> {
    use sluice::cluster::Results;
    let server = NatsServer::start()?;
    runtime()?.block_on(async {
        let client = NatsOptions::new(server.url()).connect().await?;
        let js = async_nats::jetstream::new(client.clone());
        // Replacing allowed, and results aged out after a minute.
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "SLUICE_RESULTS".into(),
            subjects: vec!["sluice.results.>".into()],
            max_messages_per_subject: 1,
            max_age: std::time::Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
        let refused = Results::open(client).await.err().map(|e| format!("{e:#}"));
        assert!(
            refused.as_deref().is_some_and(
                |e| e.contains("SLUICE_RESULTS exists with settings") && e.contains("max_age")
            ),
            "{refused:?}"
        );
        anyhow::Ok(())
    })
}
