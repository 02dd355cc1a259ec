//! A stage plugin as the host sees it: a component file loaded, classified, compiled through the
//! cache, checked against the `stage` world and its grants, pre-linked, and described.

pub mod caps;
pub mod inspect;
mod load;

pub use load::*;
