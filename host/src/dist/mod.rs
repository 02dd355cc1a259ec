//! Distributed runs on NATS JetStream (issue 19, being built): connecting with the options a
//! NATS deployment asks for, and blobs (plugins, artifacts) stored and fetched by digest.

pub mod blobs;
pub mod connect;

pub use blobs::{Blobs, Stored};
pub use connect::NatsOptions;
