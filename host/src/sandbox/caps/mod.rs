//! The capabilities a stage can be granted beyond plain WASI, one module each (see
//! [`crate::sandbox::capability::Capability`]).

pub mod exec;
pub mod http;
pub mod secrets;
