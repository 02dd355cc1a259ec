//! Hostile fixture: an endless loop that never calls the host. Only the host's timeout (epoch
//! interruption plus a wall-clock deadline) can stop it.

use sluice_sdk::{Context, Failure, Phase, Stage};

struct BusyLoop;

impl Stage for BusyLoop {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Loops forever";

    fn run(_ctx: &mut Context) -> Result<(), Failure> {
        let mut counter: u64 = 0;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

sluice_sdk::stage!(BusyLoop);
