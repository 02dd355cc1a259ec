//! Hostile fixture: recurses without end. The wasm stack limit turns it into a trap.

use sluice_sdk::{Context, Failure, Phase, Stage};

#[inline(never)]
#[allow(unconditional_recursion)]
fn descend(depth: u64, pad: [u64; 8]) -> u64 {
    let next = std::hint::black_box([pad[0].wrapping_add(depth); 8]);
    descend(depth + 1, next).wrapping_add(next[7])
}

struct DeepRecursion;

impl Stage for DeepRecursion {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Recurses without end";

    fn run(_ctx: &mut Context) -> Result<(), Failure> {
        let depth = descend(0, [1; 8]);
        Err(Failure::new(format!("returned from depth {depth}")))
    }
}

sluice_sdk::stage!(DeepRecursion);
