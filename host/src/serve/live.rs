//! What keeps a run's page live: server-sent events each time the run's record changes (its
//! report.json or journal.jsonl, looked at every 200 ms), and a stage's log from an offset — the
//! page appends what was written since it last asked.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;

use super::run_page::{open_run, report_file, send_range};
use super::{Shared, not_found};
use crate::model::report::{JOURNAL_FILE, RunReport, RunStatus};

const POLL: Duration = Duration::from_millis(200);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Deserialize)]
pub(super) struct LogQuery {
    offset: Option<u64>,
}

/// `/runs/ID/logs/STAGE?offset=N`: the stage's log from byte N to its end now.
pub(super) async fn log(
    State(app): State<Shared>,
    UrlPath((id, stage)): UrlPath<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let (dir, report) = match open_run(&app, id).await {
        Ok(run) => run,
        Err(answer) => return *answer,
    };
    let Some(record) = report.stage(&stage) else {
        return not_found("stage");
    };
    let relative = record
        .log
        .clone()
        .unwrap_or_else(|| format!("logs/{}.log", record.name));
    match report_file(&dir, &relative) {
        Some(path) => {
            send_range(
                &path,
                query.offset.unwrap_or(0),
                "text/plain; charset=utf-8",
                None,
            )
            .await
        }
        // Not written yet: nothing so far.
        None => {
            let mut empty = Response::new(Body::empty());
            empty.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            empty
                .headers_mut()
                .insert("x-log-end", HeaderValue::from(0u32));
            empty
        }
    }
}

/// The stamp of a run's record: its report's and journal's sizes and times.
fn stamp(dir: &Path) -> [(u64, Option<SystemTime>); 2] {
    let of = |name: &str| {
        std::fs::metadata(dir.join(name))
            .map(|m| (m.len(), m.modified().ok()))
            .unwrap_or((0, None))
    };
    [of("report.json"), of(JOURNAL_FILE)]
}

struct Watch {
    dir: PathBuf,
    last: Option<[(u64, Option<SystemTime>); 2]>,
    quiet: Duration,
    ended: bool,
}

/// `/runs/ID/events`: `report` each time the record changes (and once at once), then `end` when
/// the run is no longer running; the page fetches itself again on each.
pub(super) async fn events(State(app): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let (dir, _) = match open_run(&app, id).await {
        Ok(run) => run,
        Err(answer) => return *answer,
    };
    let watch = Watch {
        dir,
        last: None,
        quiet: Duration::ZERO,
        ended: false,
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        if watch.ended {
            return None;
        }
        loop {
            if watch.last.is_some() {
                tokio::time::sleep(POLL).await;
                watch.quiet += POLL;
            }
            let dir = watch.dir.clone();
            let last = watch.last;
            let now = tokio::task::spawn_blocking(move || {
                let stamp = stamp(&dir);
                // The record is read only when it changed.
                let running = (last != Some(stamp)).then(|| still_running(&dir));
                (stamp, running)
            })
            .await;
            let Ok((stamp, running)) = now else {
                return None;
            };
            if let Some(running) = running {
                watch.last = Some(stamp);
                watch.quiet = Duration::ZERO;
                let mut text = String::from("event: report\ndata: changed\n\n");
                if !running {
                    text.push_str("event: end\ndata: finished\n\n");
                    watch.ended = true;
                }
                return Some((Ok::<_, std::io::Error>(text), watch));
            }
            if watch.quiet >= KEEP_ALIVE {
                watch.quiet = Duration::ZERO;
                return Some((Ok(": still here\n\n".to_string()), watch));
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// Whether the run's record still says running (a run killed mid-way says so too; the page then
/// keeps waiting, as `sluice runs` shows it interrupted).
fn still_running(dir: &Path) -> bool {
    RunReport::read(&dir.join("report.json")).is_ok_and(|r| r.status == RunStatus::Running)
}
