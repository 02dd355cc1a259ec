//! What a stage-cache key costs on a workspace of many files: the content key (a content tree
//! through the stat cache, plus the git state) against the size-and-mtime walk the key used
//! before (kept here as the baseline, doing the same walk in the same alternating rounds).
//!
//! `cargo bench -p sluice --bench stage_key -- [FILES] [ROUNDS]` (default 10000 files, 21
//! rounds) prints one line per figure: `<what> median_ms p10_ms p90_ms n`, then the ratios.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sluice::stage::LockedStage;
use sluice::stage::cache::StageCache;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let files: usize = args.first().map_or(Ok(10_000), |a| a.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(21), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let ws = dir.path().join("ws");
    for index in 0..files {
        let sub = ws.join(format!("d{:03}", index / 100));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(
            sub.join(format!("f{index:05}.rs")),
            format!("// file {index}\n{}", "x".repeat(1000)),
        )?;
    }
    let text = "version = 1\n[pipeline]\nname = \"bench\"\nworkspace = \"ws\"\n[[stage]]\nname = \"code\"\nplugin = \"p.wasm\"\n[stage.allow]\nworkspace = \"read\"\n";
    let pipeline = sluice::config::pipeline::parse(&dir.path().join("pipeline.toml"), text)
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    let locked = LockedStage::new(&pipeline, &pipeline.stages[0], "00");
    let (cache, off) = StageCache::open(Some(dir.path().join("stage-cache")))?;
    anyhow::ensure!(off.is_none(), "the stage cache is off: {off:?}");
    // Let every file settle (the racy-clean rule), then take the first, cold key.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = Instant::now();
    let cold_key = cache.key_parts(&locked, &[])?.key();
    let cold = started.elapsed().as_secs_f64() * 1e3;
    println!("key-cold {cold:.2} {cold:.2} {cold:.2} 1");

    let (mut walk, mut key, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let touched = ws.join("d000").join("f00000.rs");
    for round in 0..rounds {
        let started = Instant::now();
        let fingerprint = size_mtime_walk(&ws);
        walk.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(fingerprint);

        let started = Instant::now();
        let same = cache.key_parts(&locked, &[])?.key();
        key.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(same == cold_key, "an unchanged tree changed its key");

        std::fs::write(&touched, format!("// round {round}\n"))?;
        std::thread::sleep(std::time::Duration::from_millis(30));
        let started = Instant::now();
        let other = cache.key_parts(&locked, &[])?.key();
        changed.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(other != cold_key, "a changed file kept the key");
        std::fs::write(&touched, format!("// file 0\n{}", "x".repeat(1000)))?;
        std::thread::sleep(std::time::Duration::from_millis(30));
        // Back to the first content: the key is the first one again.
        anyhow::ensure!(cache.key_parts(&locked, &[])?.key() == cold_key);
    }
    let (w, k, c) = (stats(&mut walk), stats(&mut key), stats(&mut changed));
    println!("walk-size-mtime {:.2} {:.2} {:.2} {rounds}", w.0, w.1, w.2);
    println!("key-unchanged {:.2} {:.2} {:.2} {rounds}", k.0, k.1, k.2);
    println!("key-one-changed {:.2} {:.2} {:.2} {rounds}", c.0, c.1, c.2);
    println!(
        "ratio key-unchanged/walk {:.2}x, key-one-changed/walk {:.2}x ({files} files)",
        k.0 / w.0,
        c.0 / w.0
    );
    Ok(())
}

/// Median, p10, p90.
fn stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9))
}

/// The key's folder fingerprint before content keys: every path (but `.git`) with its size and
/// mtime, hashed — no file read.
fn size_mtime_walk(root: &Path) -> String {
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            let Ok(meta) =
                std::fs::symlink_metadata(&path).with_context(|| path.display().to_string())
            else {
                continue;
            };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if meta.is_dir() {
                stack.push(path);
                files.insert(rel, "dir".into());
            } else {
                files.insert(
                    rel,
                    format!("{}:{}:{}", meta.len(), meta.mtime(), meta.mtime_nsec()),
                );
            }
        }
    }
    let mut hasher = Sha256::new();
    for (path, fingerprint) in files {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update(fingerprint.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}
