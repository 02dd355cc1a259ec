//! A real NATS server with JetStream (Debian's `nats-server`) on a free 127.0.0.1 port, with its
//! own storage folder, optionally asking for a user and password; stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use super::free_port;

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    /// Kept until the server stops.
    _storage: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let Some(binary) = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            bail!("nats-server is not installed: run `cargo xtask setup` (the test command does)");
        };
        let port = free_port()?;
        let storage = tempfile::tempdir()?;
        let log = std::fs::File::create(storage.path().join("nats.log"))?;
        let mut command = Command::new(binary);
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(storage.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some((user, password)) = login {
            command.args(["--user", user, "--pass", password]);
        }
        let child = command.spawn().context("cannot start nats-server")?;
        let mut server = Self {
            child: Some(child),
            port,
            _storage: storage,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        server.stop();
        bail!("nats-server did not listen on 127.0.0.1:{port}")
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
