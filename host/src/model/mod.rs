//! What a run is made of, as data: artifacts, statuses and reports, the run folder's layout, and
//! the event stream every reporter renders. No wasmtime, no I/O beyond the run folder.

pub mod artifacts;
pub mod depth;
pub mod digests;
pub mod events;
pub mod identity;
pub mod journal;
pub mod layout;
pub mod learned;
pub mod report;
pub mod test_cases;
pub mod text;
pub mod tree;
