//! Hostile fixture: prints without end. Only the log limit (or the timeout) stops it.

use sluice_sdk::{Context, Failure, Phase, Stage};

struct LogFlood;

impl Stage for LogFlood {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Floods the log";

    fn run(_ctx: &mut Context) -> Result<(), Failure> {
        let line = "flood ".repeat(100);
        let mut n: u64 = 0;
        loop {
            n += 1;
            println!("{n} {line}");
        }
    }
}

sluice_sdk::stage!(LogFlood);
