//! One connection to a NATS server with JetStream, with the four things a distributed run uses
//! on it: the job queue, the blob store, the results stream, and core subjects for live events;
//! and the keys its messages are signed and checked with.

use std::path::Path;

use anyhow::Result;

use super::{Blobs, ClusterTrust, JobQueue, NatsOptions, Redelivery, Results, RunBoard};

/// A connection to the NATS server the run's stages are sent through.
pub struct Remote {
    pub(crate) client: async_nats::Client,
    queue: JobQueue,
    blobs: Blobs,
    results: Results,
    board: RunBoard,
    /// This machine's key and the keys it trusts: every job, result and stop is signed.
    trust: ClusterTrust,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("blobs", &self.blobs)
            .finish()
    }
}

impl Remote {
    /// Connects and opens the queue, the object store (blobs cached under `cache`) and the
    /// results stream.
    pub async fn connect(
        options: &NatsOptions,
        cache: &Path,
        redelivery: Redelivery,
        trust: ClusterTrust,
    ) -> Result<Self> {
        let client = options.connect().await?;
        // Four round trips to the server, at once.
        let (queue, blobs, results, board) = tokio::try_join!(
            JobQueue::open(client.clone(), redelivery),
            Blobs::open(client.clone(), cache),
            Results::open(client.clone()),
            RunBoard::open(client.clone()),
        )?;
        Ok(Self {
            queue,
            blobs,
            results,
            board,
            client,
            trust,
        })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    pub fn results(&self) -> &Results {
        &self.results
    }

    pub fn board(&self) -> &RunBoard {
        &self.board
    }

    pub fn trust(&self) -> &ClusterTrust {
        &self.trust
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }
}
