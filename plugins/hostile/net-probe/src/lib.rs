//! Hostile fixture: reaches out over the network (`mode` = "tcp", "dns" or "http", `target` in config).
//! Succeeds only if the connection or request went through.

use serde::Deserialize;
use sluice_sdk::{Context, Failure, Phase, Stage};

#[derive(Deserialize)]
struct Config {
    mode: String,
    /// "127.0.0.1:8080" for tcp, a URL for http.
    target: String,
}

struct NetProbe;

impl Stage for NetProbe {
    const PHASE: Phase = Phase::Other;
    const DESCRIPTION: &'static str = "Connects to an address it was given";

    fn run(ctx: &mut Context) -> Result<(), Failure> {
        let config: Config = ctx.config()?;
        let loot = match config.mode.as_str() {
            "tcp" => {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(&config.target)
                    .map_err(|e| Failure::new(format!("blocked: tcp {}: {e}", config.target)))?;
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut reply = Vec::new();
                let _ = stream.read_to_end(&mut reply);
                reply
            }
            "dns" => {
                // A lookup alone can carry data out: the name itself is the message.
                use std::net::ToSocketAddrs;
                let addresses: Vec<String> = (config.target.as_str(), 80)
                    .to_socket_addrs()
                    .map_err(|e| Failure::new(format!("blocked: dns {}: {e}", config.target)))?
                    .map(|a| a.ip().to_string())
                    .collect();
                addresses.join("\n").into_bytes()
            }
            "http" => {
                let response = waki::Client::new()
                    .get(&config.target)
                    .send()
                    .map_err(|e| Failure::new(format!("blocked: http {}: {e:#}", config.target)))?;
                let status = response.status_code();
                let body = response
                    .body()
                    .map_err(|e| Failure::new(format!("http body: {e:#}")))?;
                format!("status {status}\n{}", String::from_utf8_lossy(&body)).into_bytes()
            }
            other => return Err(Failure::new(format!("unknown mode {other}"))),
        };
        ctx.write_output("loot.txt", "text/plain", loot)?;
        Ok(())
    }
}

sluice_sdk::stage!(NetProbe);
