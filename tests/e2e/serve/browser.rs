//! A headless Chromium that stays open, driven over the DevTools protocol (a websocket): open a
//! page, evaluate script in it, take screenshots. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::support::Sandbox;

pub struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Chromium on `about:blank`, connected to that page.
    pub fn start(sandbox: &Sandbox) -> Result<Self> {
        let profile = tempfile::tempdir_in(sandbox.path())?;
        let mut child = sandbox
            .program("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(
                "cannot start chromium (Debian package `chromium`; `cargo xtask setup` installs it)",
            )?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let browser_ws = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                bail!("chromium ended before it said where DevTools listens");
            };
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep reading its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let port = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .context("no DevTools address")?
            .to_string();
        let page_ws = match page_socket(&port) {
            Ok(url) => url,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err);
            }
        };
        let (socket, _) = tungstenite::connect(page_ws.as_str())?;
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        }
        Ok(Self {
            child,
            socket,
            next_id: 1,
            _profile: profile,
        })
    }

    /// Sends a DevTools command and waits for its answer (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(text))?;
        loop {
            let message = self.socket.read()?;
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if value["id"] == json!(id) {
                if let Some(error) = value.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(value["result"].clone());
            }
        }
    }

    /// Opens `url` and waits until its document has loaded.
    pub fn open(&mut self, url: &str) -> Result<()> {
        self.call("Page.navigate", json!({"url": url}))?;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )
    }

    /// The value of `expression` in the page.
    pub fn eval(&mut self, expression: &str) -> Result<Value> {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )?;
        if let Some(thrown) = result.get("exceptionDetails") {
            bail!("{expression} threw: {thrown}");
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits until `expression` is true in the page.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(expression)? == json!(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''")?;
                bail!("`{expression}` did not become true within {within:?}; the page: {text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the page at `width`×`height` CSS pixels (the whole page's height when `full`).
    pub fn screenshot(&mut self, width: u32, height: u32, mobile: bool) -> Result<Vec<u8>> {
        use base64::Engine as _;
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )?;
        std::thread::sleep(Duration::from_millis(300));
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The websocket of the browser's first page (`/json/list` on the DevTools port).
fn page_socket(port: &str) -> Result<String> {
    let address = port.parse().context("bad DevTools address")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = super::request(address, "GET", "/json/list", &[])?;
        let targets: Value = serde_json::from_str(&list.body).unwrap_or(Value::Null);
        let page = targets.as_array().and_then(|all| {
            all.iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(str::to_string)
        });
        if let Some(page) = page {
            return Ok(page);
        }
        if Instant::now() > deadline {
            bail!("chromium shows no page on its DevTools port: {}", list.body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
