//! Distributed runs on NATS JetStream: connecting with the options a
//! NATS deployment asks for; blobs (plugins, artifacts) stored and fetched by digest; stage
//! jobs on a work queue, routed by labels and given again when an agent dies; stage results
//! recorded at most once.

pub mod blobs;
pub mod connect;
pub mod jobs;
pub mod results;
pub mod wire;

pub use blobs::{Blobs, Stored};
pub use connect::NatsOptions;
pub use jobs::{JobQueue, Redelivery, TakenJob};
pub use results::Results;
