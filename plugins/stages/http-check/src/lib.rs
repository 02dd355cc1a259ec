//! Monitor stage: probes HTTP endpoints a number of times and fails the pipeline when one is
//! unhealthy — wrong status, missing body text, too slow, or unreachable. Needs `allow.net`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_sdk::{Context, Failure, Phase, Stage, info, warn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Endpoints to probe, e.g. "http://127.0.0.1:8080/health".
    urls: Vec<String>,
    #[serde(default = "default_status")]
    expect_status: u16,
    /// Text the body must contain.
    #[serde(default)]
    expect_body: Option<String>,
    /// Probes per URL.
    #[serde(default = "default_count")]
    count: u32,
    #[serde(default = "default_interval")]
    interval_ms: u64,
    /// A probe slower than this is unhealthy.
    #[serde(default = "default_budget")]
    latency_budget_ms: u64,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
}

fn default_status() -> u16 {
    200
}
fn default_count() -> u32 {
    3
}
fn default_interval() -> u64 {
    200
}
fn default_budget() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    5000
}

#[derive(Serialize)]
struct Probe {
    url: String,
    attempt: u32,
    status: Option<u16>,
    latency_ms: f64,
    healthy: bool,
    problem: Option<String>,
}

struct HttpCheck;

fn probe(config: &Config, url: &str, attempt: u32) -> Probe {
    let started = Instant::now();
    let response = waki::Client::new()
        .get(url)
        .connect_timeout(Duration::from_millis(config.timeout_ms))
        .send()
        .and_then(|response| {
            let status = response.status_code();
            Ok((status, response.body()?))
        });
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (status, problem) = match response {
        Err(err) => (None, Some(format!("request failed: {err:#}"))),
        Ok((status, body)) => {
            let body = String::from_utf8_lossy(&body);
            let problem = if status != config.expect_status {
                Some(format!(
                    "status {status}, expected {}",
                    config.expect_status
                ))
            } else if let Some(needle) = config.expect_body.as_deref().filter(|n| !body.contains(n))
            {
                Some(format!("body does not contain {needle:?}"))
            } else if latency_ms > config.latency_budget_ms as f64 {
                Some(format!(
                    "took {latency_ms:.0} ms, over the {} ms budget",
                    config.latency_budget_ms
                ))
            } else {
                None
            };
            (Some(status), problem)
        }
    };
    Probe {
        url: url.to_string(),
        attempt,
        status,
        latency_ms,
        healthy: problem.is_none(),
        problem,
    }
}

impl Stage for HttpCheck {
    const PHASE: Phase = Phase::Monitor;
    const DESCRIPTION: &'static str =
        "HTTP health probes: expected status and body, count, interval, latency budget";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        if config.urls.is_empty() || config.count == 0 {
            return Err(Failure::new(
                "nothing to probe: set `urls` and a `count` above 0",
            ));
        }
        let mut probes = Vec::new();
        for attempt in 1..=config.count {
            if attempt > 1 {
                std::thread::sleep(Duration::from_millis(config.interval_ms));
            }
            for url in &config.urls {
                let result = probe(&config, url, attempt);
                match &result.problem {
                    None => info!("{url} #{attempt}: healthy in {:.1} ms", result.latency_ms),
                    Some(problem) => warn!("{url} #{attempt}: {problem}"),
                }
                probes.push(result);
            }
        }
        let report = serde_json::to_string_pretty(&probes)?;
        ctx.write_output("monitor-report.json", "application/json", report)?;
        let unhealthy: Vec<&Probe> = probes.iter().filter(|p| !p.healthy).collect();
        if let Some(first) = unhealthy.first() {
            return Err(Failure::new(format!(
                "{} of {} probes unhealthy; first: {} #{}: {}",
                unhealthy.len(),
                probes.len(),
                first.url,
                first.attempt,
                first.problem.as_deref().unwrap_or("unknown")
            )));
        }
        let worst = probes.iter().map(|p| p.latency_ms).fold(0.0, f64::max);
        ctx.set_summary(format!(
            "{} probes healthy, slowest {worst:.1} ms",
            probes.len()
        ));
        Ok(())
    }
}

sluice_sdk::stage!(HttpCheck);
