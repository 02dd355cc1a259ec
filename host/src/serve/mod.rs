//! `sluice serve`: a read-only web view of the runs folders — the runs list, each run's page (the
//! report page, updated live while the run goes on, its logs streamed) and the same as JSON.
//! Safe by default: loopback only unless a token guards it, GET and HEAD only, nothing read
//! outside the runs folders, every plugin's text escaped as in `report.html`.

mod auth;
mod index;
mod list;
mod live;
mod run_page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use index::{RunIndex, RunSummary, is_run_id};

/// What `sluice serve` was asked.
pub struct ServeOptions {
    pub runs_dirs: Vec<PathBuf>,
    /// A folder whose every folder is a runs folder (every pipeline's default runs folders).
    pub runs_home: Option<PathBuf>,
    pub listen: SocketAddr,
    /// The token every request must carry; required for an address other than loopback.
    pub token: Option<String>,
}

/// What every request sees.
struct App {
    index: RunIndex,
    token: Option<String>,
}

type Shared = Arc<App>;

/// Checks the options: an address other than loopback is refused without a token.
pub fn check(options: &ServeOptions) -> Result<()> {
    if !options.listen.ip().is_loopback() && options.token.is_none() {
        bail!(
            "refusing to serve runs on {} without a token: anyone who can reach it could read \
             every log and artifact\n  = help: pass --token-file FILE (a file holding a long \
             random secret), or listen on 127.0.0.1",
            options.listen
        );
    }
    if options.token.as_ref().is_some_and(|t| t.len() < 16) {
        bail!(
            "the token is too short (fewer than 16 characters)\n  = help: put a long random \
             secret in the token file, e.g. `head -c 32 /dev/urandom | base64 > token`"
        );
    }
    Ok(())
}

/// Binds `options.listen`, calls `bound` with the address, and serves until `stop` resolves.
pub async fn serve(
    options: ServeOptions,
    bound: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    check(&options)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the address listened on")?;
    let app = Arc::new(App {
        index: RunIndex::new(&options.runs_dirs, options.runs_home),
        token: options.token,
    });
    bound(address);
    // Once told to stop, open event streams (a browser watching a run) get a second to close,
    // then the server stops regardless.
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let graceful = async move {
        stop.await;
        let _ = stopping.send(true);
    };
    let server = axum::serve(listener, router(app)).with_graceful_shutdown(graceful);
    let deadline = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    tokio::select! {
        done = std::future::IntoFuture::into_future(server) => {
            done.context("the web server stopped")
        }
        () = deadline => Ok(()),
    }
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(list::page))
        .route("/api/runs", get(list::api))
        .route("/api/runs/{id}", get(run_page::api))
        .route("/runs/{id}", get(run_page::page))
        .route("/runs/{id}/report.json", get(run_page::api))
        .route("/runs/{id}/junit.xml", get(run_page::junit))
        .route("/runs/{id}/provenance/{which}", get(run_page::provenance))
        .route("/runs/{id}/artifacts/{sha256}", get(run_page::artifact))
        .route("/runs/{id}/logs/{stage}", get(live::log))
        .route("/runs/{id}/events", get(live::events))
        .route("/static/live.js", get(live_script))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::guard,
        ))
        .with_state(app)
}

/// The content security policy of every response: the page's own script only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

async fn live_script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("live.js"),
    )
        .into_response()
}

/// A plain-text error response.
fn problem(status: axum::http::StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    problem(axum::http::StatusCode::NOT_FOUND, format!("no {what} here"))
}

/// `token=...` to carry on to the page's own links, when the request had one in its query.
fn token_query(query: &Option<String>) -> String {
    match query {
        Some(token) => format!("token={}", encode(token)),
        None => String::new(),
    }
}

/// Percent-encodes everything but letters, digits and `-._~`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
