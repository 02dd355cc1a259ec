//! `sluice cache ls`, `gc` and `why`: the stage cache's entries, trimming it to a size, and why a
//! stage missed it.

use sluice::stage::cache::StageCache;
use sluice::stage::volumes::CacheVolumes;

use crate::args::{CacheCommand, GlobalArgs};
use crate::error::{CliError, Outcome, done};
use crate::run_dirs::read_run;

/// `sluice cache ls`, `gc` and `why`.
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
            let volumes = CacheVolumes::new(CacheVolumes::default_root());
            let listed = volumes.list();
            for volume in listed.iter().rev() {
                println!(
                    "volume {:<24} {:<32} {:>10}  last used {}",
                    volume.name,
                    volume.scope,
                    bytesize::ByteSize::b(volume.size)
                        .display()
                        .iec()
                        .to_string(),
                    humantime::format_rfc3339_seconds(volume.last_used)
                );
            }
            println!(
                "{} cache volumes, {} in {}",
                listed.len(),
                bytesize::ByteSize::b(listed.iter().map(|v| v.size).sum())
                    .display()
                    .iec(),
                volumes
                    .root()
                    .map_or("(no volumes folder)".into(), |r| r.display().to_string())
            );
        }
        CacheCommand::Gc { max_size } => {
            let removed = cache.gc(max_size.as_u64());
            println!("removed {} entries", removed.len());
            let volumes = CacheVolumes::new(CacheVolumes::default_root());
            let gone = volumes.gc(max_size.as_u64());
            println!("removed {} cache volumes", gone.len());
        }
        CacheCommand::Why {
            stage,
            run: Some(run),
            runs_dir,
        } => why_in_run(&stage, &run, runs_dir.as_deref())?,
        CacheCommand::Why {
            stage, run: None, ..
        } => match cache.why_between_newest(&stage, None) {
            None => {
                return Err(CliError::input(format!(
                    "the stage cache holds fewer than two entries of stage `{stage}`: nothing to compare\n  = help: name a run (`sluice cache why {stage} RUN`) to see why it missed there"
                )));
            }
            Some((newer, older, lines)) => {
                println!(
                    "stage `{stage}`: entry {:.12}… ({}) against {:.12}… ({})",
                    newer.key, newer.created_at, older.key, older.created_at
                );
                print_lines(&lines);
            }
        },
    }
    done()
}

/// What the record of run `run` says about stage `stage` and the stage cache.
fn why_in_run(stage: &str, run: &str, runs_dir: Option<&std::path::Path>) -> Result<(), CliError> {
    let (_, report) = read_run(run, runs_dir)?;
    let Some(record) = report.stages.iter().find(|s| s.name == stage) else {
        return Err(CliError::input(format!(
            "run {} has no stage `{stage}`",
            report.run_id
        )));
    };
    let shown = sluice::model::text::one_line;
    match &record.cache {
        None => println!(
            "stage `{stage}` of run {} did not use the stage cache (off, not cacheable, or it did not succeed)",
            report.run_id
        ),
        Some(cache) if cache.hit => println!(
            "stage `{stage}` of run {} was served from the stage cache (key {:.12}…)",
            report.run_id, cache.key
        ),
        Some(cache) if cache.why.is_empty() => println!(
            "stage `{stage}` of run {} missed (key {:.12}…): no earlier entry of it was in the cache",
            report.run_id, cache.key
        ),
        Some(cache) => {
            println!(
                "stage `{stage}` of run {} missed (key {:.12}…); since the newest entry before it:",
                report.run_id, cache.key
            );
            let lines: Vec<String> = cache
                .why
                .iter()
                .map(|l| shown(l, sluice::model::text::MAX_MESSAGE_BYTES))
                .collect();
            print_lines(&lines);
        }
    }
    Ok(())
}

fn print_lines(lines: &[String]) {
    if lines.is_empty() {
        println!("  nothing in the key moved");
    }
    for line in lines {
        println!("  {line}");
    }
}
