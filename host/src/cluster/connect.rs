//! How sluice reaches a NATS server: its URL, and the credentials and TLS settings a real
//! deployment asks for (user and password, an nkey `.creds` file, a CA for TLS).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

/// What `--nats` and its companion flags say.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// `nats://host:port` (or `tls://`).
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// An nkey/JWT credentials file (`nsc` writes them).
    pub creds_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for a TLS server.
    pub tls_ca: Option<PathBuf>,
    /// Refuse a server that does not offer TLS.
    pub tls_required: bool,
}

impl NatsOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Connects, failing within a few seconds when the server is not there.
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .name("sluice")
            .connection_timeout(Duration::from_secs(5));
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(creds) = &self.creds_file {
            options = options
                .credentials_file(creds)
                .await
                .with_context(|| format!("cannot read the NATS credentials {}", creds.display()))?;
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        options.connect(self.url.as_str()).await.with_context(|| {
            format!(
                "cannot connect to NATS at {}: is nats-server running there (with -js), and are the credentials right?",
                self.url
            )
        })
    }
}
