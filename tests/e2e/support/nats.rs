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
    /// A configuration file (`-c`) and the environment the server reads it with.
    config: Option<(std::path::PathBuf, Vec<(String, String)>)>,
}

impl NatsServer {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    pub fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password)))
    }

    /// A server reading `config` (written beside `includes`, each a file copied next to it),
    /// with `env` in its environment.
    pub fn start_with_config(
        config: &str,
        includes: &[&Path],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let storage = tempfile::tempdir()?;
        for file in includes {
            let name = file.file_name().context("an include without a name")?;
            std::fs::copy(file, storage.path().join(name))?;
        }
        let file = storage.path().join("server.conf");
        std::fs::write(&file, config)?;
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut server = Self {
            child: None,
            port: free_port()?,
            storage,
            login: None,
            config: Some((file, env)),
        };
        server.spawn()?;
        Ok(server)
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let mut server = Self {
            child: None,
            port: free_port()?,
            storage: tempfile::tempdir()?,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            config: None,
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
        if let Some((file, env)) = &self.config {
            command
                .arg("-c")
                .arg(file)
                .envs(env.iter().map(|(k, v)| (k, v)));
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
