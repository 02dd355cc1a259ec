//! `cargo xtask bench-serve`: `sluice serve` on a runs folder of 10,000 runs (copies of one small
//! record) — the median time of the runs page and of `/api/runs` — and a 100 MB log streamed
//! through it, with the server's peak memory after. Not part of `test`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

const RUNS: usize = 10_000;
const ROUNDS: usize = 21;
const LOG_MIB: usize = 100;

pub fn bench(sluice: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runs = dir.path().join("runs");
    let started = Instant::now();
    for i in 0..RUNS {
        let id = format!("20260101T{:06}Z-{i:06x}", i % 240_000);
        let run = runs.join(&id);
        std::fs::create_dir_all(run.join("logs"))?;
        std::fs::write(run.join("report.json"), record(&id, i))?;
    }
    let big = runs.join(format!("20260101T{:06}Z-{:06x}", 0, 0));
    let mut log = std::fs::File::create(big.join("logs/build.log"))?;
    let line = "0123456789abcdef ".repeat(4) + "\n";
    for _ in 0..(LOG_MIB << 20) / line.len() {
        log.write_all(line.as_bytes())?;
    }
    drop(log);
    println!(
        "{RUNS} run folders and a {LOG_MIB} MiB log written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut server = Command::new(sluice)
        .args(["serve", "--listen", "127.0.0.1:0", "--runs-dir"])
        .arg(&runs)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start sluice serve")?;
    let result = (|| -> Result<()> {
        let mut line = String::new();
        BufReader::new(server.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let address: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("sluice serve said {line:?}"))?;
        let (first_ms, _) = timed_get(address, "/?page=1")?;
        println!("first GET /?page=1 (reads all {RUNS} records): {first_ms:.1} ms");
        for path in ["/?page=1", "/api/runs", "/api/runs?status=failed&page=3"] {
            let mut times = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let (ms, bytes) = timed_get(address, path)?;
                if bytes == 0 {
                    bail!("GET {path} answered nothing");
                }
                times.push(ms);
                // Past the index's freshness window: each request looks at the folder again.
                std::thread::sleep(std::time::Duration::from_millis(520));
            }
            times.sort_by(f64::total_cmp);
            println!(
                "GET {path}: median {:.1} ms, max {:.1} ms ({ROUNDS} requests)",
                times[ROUNDS / 2],
                times[ROUNDS - 1]
            );
        }
        let id = big.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (ms, bytes) = timed_get(address, &format!("/runs/{id}/logs/build"))?;
        println!(
            "GET a {LOG_MIB} MiB log: {bytes} bytes in {ms:.0} ms; server peak memory {} MiB",
            peak_mib(server.id())?
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// One GET with a fresh connection: milliseconds and body bytes.
fn timed_get(address: SocketAddr, path: &str) -> Result<(f64, usize)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "GET {path}: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |at| answer.len() - at - 4);
    Ok((ms, body))
}

fn peak_mib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok(kib / 1024)
}

/// A small finished run's record.
fn record(id: &str, i: usize) -> String {
    let status = if i.is_multiple_of(7) {
        "failed"
    } else {
        "succeeded"
    };
    serde_json::json!({
        "schema": 1, "pipeline": format!("pipeline-{}", i % 5), "pipeline_file": "pipeline.toml",
        "pipeline_sha256": "0", "run_id": id, "run_dir": "", "status": status, "exit_code": 0,
        "started_at": format!("2026-01-01T00:00:00.{:03}Z", i % 1000), "trigger": "manual",
        "finished_at": "2026-01-01T00:00:01.000Z", "duration_ms": 1000.0 + i as f64,
        "sluice_version": "bench",
        "stages": [{
            "name": "build", "phase": null, "status": status,
            "plugin": {"reference": "exec", "sha256": null, "size": null, "name": null,
                       "version": null, "cache_hit": null, "load_ms": null},
            "started_at": "2026-01-01T00:00:00.000Z", "duration_ms": 900.0, "outputs": [],
            "inputs": [], "summary": null, "message": null, "log": "logs/build.log"
        }]
    })
    .to_string()
}
