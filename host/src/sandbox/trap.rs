//! Turning what wasmtime reports about a guest into words for people: a trap's one-line reason
//! and a phase's name.

use super::bindings::sluice::pipeline::types::Phase;

/// A one-line reason for a trap or host error, without the wasm backtrace.
pub fn trap_message(err: &wasmtime::Error) -> String {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        let text = trap.to_string();
        return match trap {
            wasmtime::Trap::UnreachableCodeReached => {
                format!("{text} (a panic or abort in the plugin ends this way)")
            }
            _ => text,
        };
    }
    err.root_cause().to_string()
}

pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Code => "code",
        Phase::Build => "build",
        Phase::Test => "test",
        Phase::Release => "release",
        Phase::Deploy => "deploy",
        Phase::Monitor => "monitor",
        Phase::Other => "other",
    }
}

/// The phase named `name` (one of `config::pipeline::PHASES`).
pub fn phase_named(name: &str) -> Option<Phase> {
    [
        Phase::Code,
        Phase::Build,
        Phase::Test,
        Phase::Release,
        Phase::Deploy,
        Phase::Monitor,
        Phase::Other,
    ]
    .into_iter()
    .find(|phase| phase_name(*phase) == name)
}

/// wasmtime 48 has its own error type; this keeps its whole message chain in an `anyhow` one.
pub fn into_anyhow(err: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{err:#}")
}
