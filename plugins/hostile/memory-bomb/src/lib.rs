//! Hostile fixture: allocates 16 MiB at a time and touches it, forever. Only the memory limit
//! stops it.

use sluice_sdk::{Context, Failure, Phase, Stage};

struct MemoryBomb;

impl Stage for MemoryBomb {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Allocates until memory runs out";

    fn run(_ctx: &mut Context) -> Result<(), Failure> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let chunk = vec![0xA5u8; 16 << 20];
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

sluice_sdk::stage!(MemoryBomb);
