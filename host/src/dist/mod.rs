//! Distributed runs on NATS JetStream: connecting with the options a
//! NATS deployment asks for; blobs (plugins, artifacts) stored and fetched by digest; stage
//! jobs on a work queue, routed by labels and given again when an agent dies; stage results
//! recorded at most once.

pub mod blobs;
pub mod board;
pub mod connect;
pub mod jobs;
pub mod remote;
pub mod results;
pub mod wire;

pub use blobs::{Blobs, Stored};
pub use board::{RunBoard, RunState};
pub use connect::NatsOptions;
pub use jobs::{JobQueue, Redelivery, TakenJob};
pub use remote::Remote;
pub use results::Results;
