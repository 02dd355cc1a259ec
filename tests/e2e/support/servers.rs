//! Real servers the tests start on 127.0.0.1 and stop when dropped: a counting TCP/HTTP
//! listener and Debian's `docker-registry`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::repo_root;

/// A real TCP listener on 127.0.0.1 that counts connections; with `http`, it answers each with
/// `200 ok`. Stops when dropped.
pub struct Listener {
    pub addr: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    pub fn start(http: bool) -> Result<Self> {
        Self::start_answering(http, 200)
    }

    /// An HTTP listener that answers every request with `status`.
    pub fn start_answering(http: bool, status: u16) -> Result<Self> {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let connections = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (count, stopped) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        if http {
                            let _ = stream.set_nonblocking(false);
                            let _ =
                                stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                            let mut request = Vec::new();
                            let mut buf = [0u8; 1024];
                            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                                match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => request.extend_from_slice(&buf[..n]),
                                }
                            }
                            // Read the body too: closing a socket with unread data resets the
                            // connection, and the client may see the reset before the answer.
                            let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                            let head = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
                            let length: usize = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            while request.len() < head + length {
                                match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => request.extend_from_slice(&buf[..n]),
                                }
                            }
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                                if status == 200 { "OK" } else { "Not OK" }
                            );
                        }
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            connections,
            stop,
        })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A port nothing listens on right now — and nothing holds for the caller: another process may
/// take it next. For a port that must stay closed (a client's "nobody answers" case), or for a
/// server that cannot bind port 0 and say which port it got, which must then try another port
/// when this one was taken (see the website test's nginx). Servers that can bind port 0 do.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A real OCI registry (Debian's `docker-registry`, distribution v2) on 127.0.0.1, started from
/// the repository's `registry/config.yml` with its own storage folder; stopped when dropped.
pub struct RegistryServer {
    child: Option<std::process::Child>,
    pub port: u16,
    pub storage: tempfile::TempDir,
}

impl RegistryServer {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// A registry that lets only `user` with `password` in (htpasswd, bcrypt).
    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let binary = Path::new("/usr/bin/docker-registry");
        if !binary.is_file() {
            bail!(
                "docker-registry is not installed: run `cargo xtask setup` (the test command does)"
            );
        }
        let storage = tempfile::tempdir()?;
        let log_path = storage.path().join("registry.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(binary);
        if let Some((user, password)) = login {
            let hash = bcrypt::hash(password, 5)?;
            let htpasswd = storage.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
            command
                .env("REGISTRY_AUTH", "htpasswd")
                .env("REGISTRY_AUTH_HTPASSWD_REALM", "sluice-tests")
                .env("REGISTRY_AUTH_HTPASSWD_PATH", htpasswd);
        }
        // Port 0: the registry binds a free port itself and says which (at log level info) —
        // no port handed over that someone else could take in between.
        let child = command
            .arg("serve")
            .arg(repo_root().join("registry/config.yml"))
            .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .env("REGISTRY_LOG_LEVEL", "info")
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                storage.path().join("data"),
            )
            .env("HOME", storage.path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start docker-registry")?;
        let mut server = Self {
            child: Some(child),
            port: 0,
            storage,
        };
        let said = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let listening = super::eventually(
            std::time::Duration::from_secs(30),
            "docker-registry listening",
            || {
                if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                    bail!("docker-registry exited ({}):\n{}", status?, said());
                }
                let Some(port) = said()
                    .split("msg=\"listening on 127.0.0.1:")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next()?.parse::<u16>().ok())
                else {
                    return Ok(None);
                };
                Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_ok()
                    .then_some(port))
            },
        );
        match listening {
            Ok(port) => {
                server.port = port;
                Ok(server)
            }
            Err(err) => {
                server.stop();
                Err(err.context(format!("docker-registry said:\n{}", said())))
            }
        }
    }

    /// `oci://127.0.0.1:PORT/PATH`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://127.0.0.1:{}/{path}", self.port)
    }

    /// The file the registry keeps a blob's bytes in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fake registry that answers every request with a 401 asking for Basic credentials, and
/// keeps every byte it was sent: the way to see whether sluice hands credentials to a host.
pub struct CredentialLure {
    pub addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CredentialLure {
    pub fn start() -> Result<Self> {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, stopped) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if let Ok(mut all) = kept.lock() {
                    all.extend_from_slice(&request);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"lure\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Ok(Self { addr, seen, stop })
    }

    /// Everything sent to it so far, as text.
    pub fn requests(&self) -> String {
        let bytes = self.seen.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for CredentialLure {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
