//! Hostile fixture: panics inside `run`. The host must report the stage as crashed, keep
//! earlier artifacts and skip the rest.

use sluice_sdk::{Context, Failure, Phase, Stage};

struct Panic;

impl Stage for Panic {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Panics on purpose";

    fn run(_ctx: &mut Context) -> Result<(), Failure> {
        let limit: Vec<u32> = Vec::new();
        // Index out of bounds: a real bug, not a `panic!` the compiler could see through.
        let value = limit[std::hint::black_box(3)];
        Err(Failure::new(format!("unreachable: {value}")))
    }
}

sluice_sdk::stage!(Panic);
