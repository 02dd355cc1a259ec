//! What signing costs a remote stage: sealing a job and a result (ed25519 over their JSON) and
//! opening each on the other side, against encoding and decoding the same values as plain JSON
//! (what travelled before), in alternating rounds.
//!
//! `cargo bench -p sluice --bench sealing -- [ROUNDS]` (default 2001) prints the median and p90
//! of one job + one result round trip each way, in microseconds, and the difference.

use std::time::Instant;

use anyhow::Result;
use sluice::cluster::sealed::{open, seal};
use sluice::trust::signing::{SigningKey, TrustedKey, generate_key_pair};

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(2001), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (private, public, _) = generate_key_pair(&dir.path().join("machine"))?;
    let key = SigningKey::from_file(&private)?;
    let trusted = TrustedKey::from_file(&public)?;
    // A job and a result the size of the ones the distributed bench sends (a stage with a few
    // inputs, earlier records and grants; a result with a small log inside).
    let job = serde_json::json!({
        "run_id": "20261207T120000Z-abcdef", "job_id": "00112233445566778899aabbccddeeff",
        "expires_at": 1_800_000_000u64, "pipeline_sha256": "a".repeat(64),
        "stage": {"name": "build", "plugin_sha256": "b".repeat(64), "config_json": "{\"op\":\"upper\"}",
                  "grants": {"workspace": "read", "exec": ["cargo"]}, "inputs": "all-earlier"},
        "available": (0..4).map(|i| serde_json::json!({"stage": "code", "name": format!("f{i}.txt"),
                  "path": format!("artifacts/code/f{i}.txt"), "size": 100, "sha256": "c".repeat(64)}))
                  .collect::<Vec<_>>(),
        "earlier": [{"name": "code", "status": "succeeded"}],
    });
    let result = serde_json::json!({
        "job_sha256": "d".repeat(64), "record": {"name": "build", "status": "succeeded"},
        "log_text": "line of log\n".repeat(50), "by": "agent-1", "delivery": 1,
    });
    let mut plain = Vec::with_capacity(rounds);
    let mut sealed = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let time_plain = || -> Result<f64> {
            let started = Instant::now();
            for value in [&job, &result] {
                let bytes = serde_json::to_vec(value)?;
                let back: serde_json::Value = serde_json::from_slice(&bytes)?;
                std::hint::black_box(back);
            }
            Ok(started.elapsed().as_secs_f64() * 1e6)
        };
        let time_sealed = || -> Result<f64> {
            let started = Instant::now();
            for (kind, value) in [("job", &job), ("result", &result)] {
                let bytes = seal(&key, kind, value)?;
                let back = open::<serde_json::Value>(&bytes, kind, &[&trusted])
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                std::hint::black_box(back);
            }
            Ok(started.elapsed().as_secs_f64() * 1e6)
        };
        if round % 2 == 0 {
            plain.push(time_plain()?);
            sealed.push(time_sealed()?);
        } else {
            sealed.push(time_sealed()?);
            plain.push(time_plain()?);
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() * 9 / 10])
    };
    let (plain_median, plain_p90) = stat(&mut plain);
    let (sealed_median, sealed_p90) = stat(&mut sealed);
    println!("plain-json-job+result-us {plain_median:.1} p90 {plain_p90:.1} n {rounds}");
    println!("sealed-job+result-us {sealed_median:.1} p90 {sealed_p90:.1} n {rounds}");
    println!(
        "added by signing and verifying: {:.1} us per remote stage ({:.3} ms)",
        sealed_median - plain_median,
        (sealed_median - plain_median) / 1000.0
    );
    Ok(())
}
