//! The workspace's packs are checked file by file (issue 30): the library's own ship and
//! materialize against a real nats-server. A shipment rebuilds the tree byte for byte (modes
//! kept, files read-only); a pack replaced in the store by someone with NATS rights (same name,
//! same length, other bytes) is refused when the agent unpacks it — none of the replaced bytes
//! reaches the job's folder or the agent's blob cache.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;
use sluice::cluster::Blobs;
use sluice::cluster::workspace::{materialize, ship};
use sluice::stage::cache::StageCache;

use crate::support::NatsServer;
use crate::support::agents::files_containing;

fn write_tree(root: &Path) -> Result<()> {
    for i in 0..40 {
        let dir = root.join(format!("src/m{}", i % 4));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("f{i}.rs")),
            format!("pub const N{i}: u32 = {i};\n"),
        )?;
    }
    std::fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n")?;
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[test]
fn a_shipment_rebuilds_the_tree_and_a_replaced_pack_is_refused() -> Result<()> {
    let server = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let (ws, scratch) = (dir.path().join("ws"), dir.path().join("scratch"));
    std::fs::create_dir_all(&scratch)?;
    write_tree(&ws)?;
    let tree = StageCache::new(None).content_tree(&ws)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = async_nats::connect(server.url()).await?;
        let coordinator =
            Blobs::open(client.clone(), &dir.path().join("coordinator-blobs")).await?;
        let (shipment, shipped) =
            ship(&coordinator, &ws, &tree, &scratch, None, |_| false, |_| ()).await?;
        assert_eq!((shipped.files, shipped.sent, shipped.objects), (41, 41, 1));

        // An honest agent: the same bytes, modes kept, read-only.
        let agent = Blobs::open(client.clone(), &dir.path().join("agent-blobs")).await?;
        let built = materialize(&agent, &shipment, &dir.path().join("job1")).await?;
        assert_eq!((built.files, built.fetched), (41, 41));
        for (rel, entry) in &tree.entries {
            let copy = dir.path().join("job1").join(rel);
            if entry.kind == sluice::model::tree::EntryKind::File {
                assert_eq!(std::fs::read(&copy)?, std::fs::read(ws.join(rel))?, "{rel}");
                let mode = std::fs::metadata(&copy)?.permissions().mode() & 0o777;
                assert_eq!(mode, if entry.executable { 0o555 } else { 0o444 }, "{rel}");
            }
        }

        // Someone with NATS rights replaces the pack: same name, same length, other bytes.
        let store = async_nats::jetstream::new(client)
            .get_object_store("sluice-blobs")
            .await?;
        let pack_name = {
            use futures_util::StreamExt;
            let mut list = store.list().await?;
            let mut found = None;
            while let Some(info) = list.next().await {
                let info = info?;
                if info.name.starts_with("pack-") {
                    found = Some((info.name.clone(), info.size));
                }
            }
            found
        };
        let (name, size) = pack_name.expect("a pack in the store");
        let forged = vec![b'X'; size];
        store.put(name.as_str(), &mut forged.as_slice()).await?;
        let fresh = Blobs::open(
            async_nats::connect(server.url()).await?,
            &dir.path().join("fresh-agent-blobs"),
        )
        .await?;
        let refused = materialize(&fresh, &shipment, &dir.path().join("job2")).await;
        let err = format!("{:#}", refused.expect_err("a replaced pack was unpacked"));
        assert!(err.contains("hashes to"), "{err}");
        let needle = vec![b'X'; 16];
        assert!(files_containing(&dir.path().join("job2"), &needle).is_empty());
        assert!(files_containing(&dir.path().join("fresh-agent-blobs"), &needle).is_empty());
        anyhow::Ok(())
    })
}
