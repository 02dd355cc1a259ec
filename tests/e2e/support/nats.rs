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
    storage: tempfile::TempDir,
    login: Option<(String, String)>,
}

impl NatsServer {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port()?,
            storage: tempfile::tempdir()?,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        server.spawn()?;
        Ok(server)
    }

    /// Stops the server (SIGKILL), waits `down`, and starts it again on the same port with the
    /// same storage: what a NATS restart looks like to its clients.
    pub fn restart_after(&mut self, down: std::time::Duration) -> Result<()> {
        self.stop();
        std::thread::sleep(down);
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let Some(binary) = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            bail!("nats-server is not installed: run `cargo xtask setup` (the test command does)");
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.storage.path().join("nats.log"))?;
        let mut command = Command::new(binary);
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.storage.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some((user, password)) = &self.login {
            command.args(["--user", user, "--pass", password]);
        }
        self.child = Some(command.spawn().context("cannot start nats-server")?);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        self.stop();
        bail!("nats-server did not listen on 127.0.0.1:{}", self.port)
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
