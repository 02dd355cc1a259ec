//! Who is trusted with what: signing keys and DSSE signatures, secret values and their masking,
//! and the signed provenance of a release.

pub mod keys;
pub mod local_key;
pub mod secrets;
pub mod signing;
