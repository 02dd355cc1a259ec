//! Name lookups, proven by a resolver of the test's own: a stage granted one host name gets its
//! address, and a name it was not granted never reaches any resolver (the query is the message).

use anyhow::{Context, Result};
use sluice::exit_codes;
use sluice::model::report::StageStatus::{Failed, Succeeded};

use crate::support::{Listener, Outcome, Pipeline, Ran, Sandbox, Stage, stopped_at, take_env_of};

/// A DNS server of the test's on port 53 of a loopback address of its own: it answers `granted`
/// with 127.0.0.1 and any other name with NXDOMAIN, and keeps every query it was sent (UDP, as
/// the C library asks). Stops when dropped.
struct Resolver {
    addr: std::net::Ipv4Addr,
    queries: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Resolver {
    fn start(granted: &str) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        // resolv.conf cannot name a port: 53 it is, on an address no other test uses.
        let pid = std::process::id();
        let mut bound = None;
        for attempt in 0..64u32 {
            let n = pid.wrapping_mul(31).wrapping_add(attempt);
            let addr = std::net::Ipv4Addr::new(127, 53, (n >> 8) as u8, (n % 250 + 2) as u8);
            match std::net::UdpSocket::bind((addr, 53)) {
                Ok(socket) => {
                    bound = Some((addr, socket));
                    break;
                }
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(err) => anyhow::bail!(
                    "cannot listen on {addr}:53 for the test's resolver (root, or \
                     net.ipv4.ip_unprivileged_port_start <= 53, is needed): {err}"
                ),
            }
        }
        let (addr, socket) = bound.context("no free loopback address for the resolver")?;
        socket.set_read_timeout(Some(std::time::Duration::from_millis(50)))?;
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped, granted) = (queries.clone(), stop.clone(), granted.to_string());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let query = buf[..len].to_vec();
                if let Some(reply) = dns_reply(&query, &granted) {
                    let _ = socket.send_to(&reply, from);
                }
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(query);
            }
        });
        Ok(Self {
            addr,
            queries,
            stop,
        })
    }

    /// How many queries held `label` (as DNS spells a name: label by label, any case).
    fn asked_for(&self, label: &str) -> usize {
        let label = label.to_ascii_lowercase();
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries
            .iter()
            .filter(|q| {
                q.to_ascii_lowercase()
                    .windows(label.len())
                    .any(|w| w == label.as_bytes())
            })
            .count()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The answer to one DNS query: `granted`'s A record is 127.0.0.1, it has no other records, and
/// no other name exists.
fn dns_reply(query: &[u8], granted: &str) -> Option<Vec<u8>> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let question = query.get(12..at + 4)?;
    let known = labels.join(".") == granted;
    let a_record = known && query.get(at..at + 2)? == [0, 1];
    let mut reply = query.get(..2)?.to_vec();
    // A response to a recursive query, recursion available; NXDOMAIN for an unknown name.
    reply.extend([0x81, if known { 0x80 } else { 0x83 }]);
    reply.extend([0, 1, 0, u8::from(a_record), 0, 0, 0, 0]);
    reply.extend(question);
    if a_record {
        // The name (a pointer to the question's), A, IN, TTL 0, 4 bytes: 127.0.0.1.
        reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some(reply)
}

/// Runs `pipeline` as `Sandbox::run_pipeline` does, but with sluice in a mount namespace of its
/// own (util-linux `unshare`, as in `disk_full`) whose `/etc/resolv.conf` names only `resolver`:
/// any name sluice's process looks up, for itself or for a plugin, is asked of the test.
fn run_resolving_with(
    sandbox: &Sandbox,
    pipeline: &Pipeline,
    resolver: &Resolver,
) -> Result<Outcome> {
    let file = sandbox.write(pipeline)?;
    let resolv = sandbox.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {}\noptions timeout:1 attempts:1\n",
            resolver.addr
        ),
    )?;
    let report = sandbox.path().join("report.json");
    let _ = std::fs::remove_file(&report);
    let args = sandbox.run_args(&file, &report);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let template = sandbox.command(&args);
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/resolv.conf || exit 97; exec "$@""#)
        .arg(&resolv)
        .arg(template.get_program())
        .args(template.get_args());
    take_env_of(&mut command, &template);
    let output = command
        .output()
        .context("cannot start unshare (util-linux)")?;
    let ran = Ran {
        command: format!("unshare … sluice {}", args.join(" ")),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    ran.assert_no_panic();
    assert_ne!(ran.code, 97, "cannot replace resolv.conf: {}", ran.stderr);
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
    Ok(Outcome::from((ran, serde_json::from_str(&text)?)))
}

#[test]
fn only_granted_names_resolve_and_refused_lookups_are_recorded() -> Result<()> {
    let granted = Listener::start(false)?;
    let port = granted.addr.port();
    let sandbox = Sandbox::new()?;
    let pid = std::process::id();
    // A name only the test's resolver knows, and one that nobody does. The second is the
    // message: a lookup of it would hand it to whoever runs the zone.
    let known = format!("granted{pid}.sluice.test");
    let resolver = Resolver::start(&known)?;
    let label = format!("c4n4ry{pid}");
    let exfil = format!("{label}.exfil.example");
    let run = run_resolving_with(
        &sandbox,
        &Pipeline::three_stage(
            Stage::new("attack", "net-probe")
                .allow("net", [format!("{known}:{port}")])
                .config("mode", "dns")
                .config("target", exfil.as_str()),
        ),
        &resolver,
    )?;
    // State first. Sluice's lookups do reach the test's resolver (it asked for the granted name
    // as the stage started), so one for the refused name would have been seen: there was none.
    assert!(
        resolver.asked_for(&format!("granted{pid}")) > 0,
        "the resolver was never asked for the granted name: this test sees no lookup\n{}",
        run.describe()
    );
    assert_eq!(
        resolver.asked_for(&label),
        0,
        "the refused name reached a resolver"
    );
    // The plugin got no address: it recorded and kept nothing, and connected nowhere.
    assert!(run.stage("attack").outputs.is_empty());
    assert!(!run.run_dir().join("artifacts/attack/loot.txt").exists());
    assert_eq!(granted.connections(), 0);
    // Then what was recorded and said.
    let denied = &run.stage("attack").denied;
    assert_eq!(
        denied,
        &[format!("name lookup of `{exfil}`")],
        "{}",
        run.describe()
    );
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("attack", Failed))
        .assert_message("attack", &["blocked: dns"]);

    // A granted name resolves (to what the resolver said when the stage started) and connects.
    let run = run_resolving_with(
        &sandbox,
        &Pipeline::three_stage(
            Stage::new("attack", "net-probe")
                .allow("net", [format!("{known}:{port}")])
                .config("mode", "tcp")
                .config("target", format!("{known}:{port}")),
        ),
        &resolver,
    )?;
    assert_eq!(granted.connections(), 1, "{}", run.describe());
    assert!(run.stage("attack").denied.is_empty(), "{}", run.describe());
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", Succeeded),
            ("attack", Succeeded),
            ("release", Succeeded),
        ],
    );
    Ok(())
}
