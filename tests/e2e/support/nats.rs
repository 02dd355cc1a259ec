//! A real NATS server with JetStream (Debian's `nats-server`) on a 127.0.0.1 port it picks itself
//! (`-p -1`), with its own storage folder, optionally asking for a user and password; stopped
//! when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::eventually;

pub struct NatsServer {
    child: Option<Child>,
    /// The port it listens on (0 until it first started).
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
            port: 0,
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
            port: 0,
            storage: tempfile::tempdir()?,
            login: login.map(|(u, p)| (u.to_string(), p.to_string())),
            config: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Stops the server (SIGKILL), waits `down`, and starts it again on the same port with the
    /// same storage: what a NATS restart looks like to its clients. (`down` is the scenario:
    /// how long the clients are without a server.)
    pub fn restart_after(&mut self, down: Duration) -> Result<()> {
        self.stop();
        std::thread::sleep(down);
        // Its clients know this port only. Another server can hold it only briefly (the port
        // was one the kernel picked, not a well-known one): try again for a while.
        let port = self.port;
        eventually(
            Duration::from_secs(15),
            format_args!("nats-server back on its port {port}"),
            || match self.spawn() {
                Ok(()) => Ok(Some(())),
                Err(err) if format!("{err:#}").contains("address already in use") => Ok(None),
                Err(err) => Err(err),
            },
        )
    }

    /// Starts the server on `self.port`, or on a port of its choosing when that is 0, and
    /// waits until it says it is ready and its port answers.
    fn spawn(&mut self) -> Result<()> {
        let Some(binary) = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            bail!("nats-server is not installed: run `cargo xtask setup` (the test command does)");
        };
        let log_path = self.storage.path().join("nats.log");
        // The log is kept across restarts: only what this start adds is read.
        let from = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let port = match self.port {
            0 => "-1".to_string(),
            port => port.to_string(),
        };
        let mut command = Command::new(binary);
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
            .arg(self.storage.path().join("data"))
            .env("HOME", self.storage.path())
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
        let mut child = command.spawn().context("cannot start nats-server")?;
        let said = || {
            std::fs::read(&log_path)
                .map(|bytes| String::from_utf8_lossy(&bytes[from.min(bytes.len())..]).into_owned())
                .unwrap_or_default()
        };
        let listening = eventually(Duration::from_secs(30), "nats-server ready", || {
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited ({status}):\n{}", said());
            }
            let said = said();
            let Some(port) = said
                .split("Listening for client connections on 127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.lines().next()?.trim().parse::<u16>().ok())
            else {
                return Ok(None);
            };
            Ok((said.contains("Server is ready")
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            .then_some(port))
        });
        match listening {
            Ok(port) => {
                self.port = port;
                self.child = Some(child);
                Ok(())
            }
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err.context(format!("nats-server said:\n{}", said())))
            }
        }
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
