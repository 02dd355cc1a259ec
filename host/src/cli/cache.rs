//! `sluice cache ls` and `sluice cache gc`: the stage cache's entries, and trimming it to a size.

use sluice::stage::cache::StageCache;

use crate::args::{CacheCommand, GlobalArgs};
use crate::error::{Outcome, done};

/// `sluice cache ls` and `sluice cache gc`.
pub fn cache(global: &GlobalArgs, command: CacheCommand) -> Outcome {
    let cache = StageCache::new(global.stage_cache.clone().or_else(StageCache::default_root));
    match command {
        CacheCommand::Ls => {
            let entries = cache.list();
            let total: u64 = entries.iter().map(|(_, size)| size).sum();
            for (entry, size) in &entries {
                println!(
                    "{:.16}  {:<24} {:>10}  {}",
                    entry.key,
                    entry.stage,
                    bytesize::ByteSize::b(*size).display().iec().to_string(),
                    entry.created_at
                );
            }
            println!(
                "{} entries, {} in {}",
                entries.len(),
                bytesize::ByteSize::b(total).display().iec(),
                cache
                    .root()
                    .map_or("(no cache folder)".into(), |r| r.display().to_string())
            );
        }
        CacheCommand::Gc { max_size } => {
            let removed = cache.gc(max_size.as_u64());
            println!("removed {} entries", removed.len());
        }
    }
    done()
}
