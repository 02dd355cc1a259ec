//! Sharing plugins: references, the OCI documents and registry client, the local plugin store
//! by digest, and publishing and pulling signed components.

mod auth;
mod download;
pub mod media;
pub mod oci;
pub mod sharing;
pub mod store;
