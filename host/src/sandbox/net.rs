//! Outbound network for a stage: HTTP requests (checked in the wasi-http `send_request` hook)
//! and raw sockets (checked by WASI's `socket_addr_check`) reach only `allow.net` entries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

type HttpResult<T> = wasmtime_wasi_http::Result<T>;

use crate::config::grants::NetGrant;
use crate::model::events::LogSource;
use crate::model::text::{MAX_FIELD_BYTES, one_line};
use crate::sandbox::capture::StageLog;

/// The destinations one stage may reach, and the attempts it made elsewhere.
#[derive(Clone)]
pub struct NetPolicy {
    grants: Arc<Vec<NetGrant>>,
    /// Granted names resolved when the stage starts (so `localhost:8080` also allows
    /// `127.0.0.1:8080`), for socket checks.
    addresses: Arc<BTreeSet<SocketAddr>>,
    /// Each granted name and the addresses it had when the stage started: the only names a
    /// guest's lookups resolve.
    names: Arc<BTreeMap<String, Vec<IpAddr>>>,
    denials: Denials,
    log: StageLog,
}

/// What a stage tried and was refused, in its words ("HTTP to 10.0.0.1:80"), and which of those
/// refusals a grant would have allowed (for `sluice run --learn`).
#[derive(Debug, Clone, Default)]
pub struct Denials(Arc<Mutex<Refusals>>);

#[derive(Debug, Default)]
struct Refusals {
    shown: Vec<String>,
    wanted: Vec<Wanted>,
}

impl Denials {
    /// Records a refusal; `what` often holds plugin text (a program, a host), so it is made safe
    /// to show first.
    pub fn record(&self, what: String) {
        let what = one_line(&what, MAX_FIELD_BYTES);
        let mut refusals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if refusals.shown.len() < 100 && !refusals.shown.contains(&what) {
            refusals.shown.push(what);
        }
    }

    /// Records a refusal that the grant `key = [entry]` would have allowed.
    pub fn record_wanted(&self, what: String, key: GrantKey, entry: &str) {
        let wanted = Wanted {
            what: one_line(&what, MAX_FIELD_BYTES),
            key,
            entry: one_line(entry, MAX_FIELD_BYTES),
        };
        self.record(what);
        let mut refusals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if refusals.wanted.len() < 100 && !refusals.wanted.contains(&wanted) {
            refusals.wanted.push(wanted);
        }
    }

    pub fn list(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shown
            .clone()
    }

    /// The refusals a grant would have allowed, in the order they happened.
    pub fn wanted(&self) -> Vec<Wanted> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .wanted
            .clone()
    }
}

/// The `[stage.allow]` keys a refusal can be learned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantKey {
    /// The project checkout, asked for where the stage does not have it (its entry: "read").
    Workspace,
    Net,
    Exec,
    Env,
    ExecEnv,
    Secrets,
}

/// One refusal a grant would have allowed: how it was shown (`denied`), and the entry of `key`
/// that allows it (`127.0.0.1:8080` for `net`, `echo` for `exec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub what: String,
    pub key: GrantKey,
    pub entry: String,
}

impl NetPolicy {
    pub fn new(grants: &[NetGrant], denials: Denials, log: StageLog) -> Self {
        let mut addresses = BTreeSet::new();
        let mut names: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for grant in grants {
            let found: Vec<SocketAddr> = (grant.host.as_str(), grant.port)
                .to_socket_addrs()
                .map(|it| it.collect())
                .unwrap_or_default();
            if grant.host.parse::<IpAddr>().is_err() {
                let known = names.entry(normal_name(&grant.host)).or_default();
                for addr in &found {
                    if !known.contains(&addr.ip()) {
                        known.push(addr.ip());
                    }
                }
            }
            addresses.extend(found);
        }
        Self {
            grants: Arc::new(grants.to_vec()),
            addresses: Arc::new(addresses),
            names: Arc::new(names),
            denials,
            log,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Whether `host:port` (as a guest names it) is granted.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if self.grants.iter().any(|g| g.host == host && g.port == port) {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.addresses.contains(&SocketAddr::new(ip, port)),
            Err(_) => false,
        }
    }

    /// Whether a socket may connect to `addr`.
    pub fn allows_addr(&self, addr: SocketAddr) -> bool {
        self.addresses.contains(&addr)
            || self
                .grants
                .iter()
                .any(|g| g.port == addr.port() && g.host.parse::<IpAddr>().ok() == Some(addr.ip()))
    }

    /// A guest's name lookup: an address literal as itself, a granted name as the addresses it
    /// had when the stage started; any other name is refused (None, and recorded) without asking
    /// a resolver.
    pub fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(vec![ip]);
        }
        let found = self.names.get(&normal_name(name)).cloned();
        if found.is_none() {
            // No port is known yet: nothing to propose (`--learn` says so).
            self.deny(format!("name lookup of `{name}`"), None);
        }
        found
    }

    /// Records a refusal; `wanted` is the `allow.net` entry that would have allowed it, if
    /// one would have.
    pub fn deny(&self, what: String, wanted: Option<String>) {
        let _ = self.log.message(
            LogSource::Warn,
            &format!("sluice denied {what}: not in this stage's allow.net"),
        );
        match wanted {
            Some(entry) => self.denials.record_wanted(what, GrantKey::Net, &entry),
            None => self.denials.record(what),
        }
    }

    /// The check WASI sockets run before every connect, bind or send.
    pub fn socket_check(
        &self,
    ) -> impl Fn(
        SocketAddr,
        wasmtime_wasi::sockets::SocketAddrUse,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
    + Send
    + Sync
    + 'static {
        let policy = self.clone();
        move |addr, usage| {
            use wasmtime_wasi::sockets::SocketAddrUse;
            let allowed = match usage {
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => policy.allows_addr(addr),
                // A connect binds implicitly first (to the wildcard address); binding to a local
                // port is harmless as long as nobody can listen or accept on it.
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => true,
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept | SocketAddrUse::UdpReceive => {
                    false
                }
            };
            if !allowed {
                let connect = matches!(usage, SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend);
                let wanted = connect.then(|| addr.to_string());
                policy.deny(format!("socket {usage:?} to {addr}"), wanted);
            }
            Box::pin(async move { allowed })
        }
    }
}

/// A host name as grants compare it: lower case, without a trailing dot.
fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl WasiHttpHooks for NetPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = HttpResult<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = HttpResult<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = HttpResult<()>> + Send>,
                )>,
            > + Send,
    > {
        _ = fut;
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_string();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.allows(&host, port) {
            let wanted = Some(format!("{}:{port}", host.to_ascii_lowercase()));
            self.deny(format!("HTTP {} {uri}", request.method()), wanted);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = HttpResult<()>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::events::EventSink;

    #[test]
    fn allows_only_granted_host_ports() -> anyhow::Result<()> {
        let grants = [
            NetGrant {
                host: "127.0.0.1".into(),
                port: 8080,
            },
            NetGrant {
                host: "localhost".into(),
                port: 9090,
            },
        ];
        let log = StageLog::new(
            "t",
            None,
            EventSink::discard(),
            Default::default(),
            u64::MAX,
        )?;
        let policy = NetPolicy::new(&grants, Denials::default(), log);
        assert!(policy.allows("127.0.0.1", 8080));
        assert!(!policy.allows("127.0.0.1", 8081));
        assert!(!policy.allows("10.0.0.1", 8080));
        assert!(policy.allows("LOCALHOST", 9090));
        assert!(
            policy.allows("127.0.0.1", 9090),
            "localhost resolves to 127.0.0.1"
        );
        assert!(policy.allows_addr("127.0.0.1:8080".parse()?));
        assert!(!policy.allows_addr("127.0.0.1:22".parse()?));
        // Only granted names resolve, whatever their case or a trailing dot; others are refused
        // and recorded.
        assert!(
            policy
                .lookup("LocalHost.")
                .is_some_and(|ips| !ips.is_empty())
        );
        assert_eq!(policy.lookup("10.1.2.3"), Some(vec!["10.1.2.3".parse()?]));
        assert_eq!(policy.lookup("exfil.attacker.example"), None);
        assert_eq!(
            policy.denials.list(),
            ["name lookup of `exfil.attacker.example`"]
        );
        Ok(())
    }
}
