//! One run: its page (the report page, live while the run goes on), its record as JSON, its
//! JUnit XML, provenance and artifacts — every file found through the run's record and read
//! only inside the run's folder.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::list::{html_response, json_response};
use super::{Shared, not_found, problem, token_query};
use crate::model::report::{RunReport, RunStatus, StageStatus};
use crate::reporters::{Live, junit_xml, live_report_html};

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenQuery {
    token: Option<String>,
}

/// The run `id`'s folder (canonical, inside its runs folder) and its record as it stands now;
/// `Err` is the answer to give.
pub(super) async fn open_run(
    app: &Shared,
    id: String,
) -> Result<(PathBuf, RunReport), Box<Response>> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || open_run_now(&app, &id))
        .await
        .unwrap_or_else(|_| Err(Box::new(not_found("run"))))
}

fn open_run_now(app: &Shared, id: &str) -> Result<(PathBuf, RunReport), Box<Response>> {
    let run = app
        .index
        .find(id)
        .ok_or_else(|| Box::new(not_found("run")))?;
    let dir = inside(&run.root, &run.dir).ok_or_else(|| Box::new(not_found("run")))?;
    let mut report = RunReport::read(&dir.join("report.json")).map_err(|err| {
        Box::new(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the run's record: {err:#}"),
        ))
    })?;
    // The folder is the run's, whatever its record says: logs and artifacts are read there.
    report.run_dir = dir.display().to_string();
    for stage in &mut report.stages {
        if stage.log.is_none() && stage.status == StageStatus::Running {
            let rel = format!("logs/{}.log", stage.name);
            if report_file(&dir, &rel).is_some() {
                stage.log = Some(rel);
            }
        }
    }
    Ok((dir, report))
}

/// `dir` canonicalized, when it is a folder inside `root` (a symlink out of it is not).
pub(super) fn inside(root: &Path, dir: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return None;
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    (real.starts_with(&root) && real != root).then_some(real)
}

/// A file a run's record names, when it is a plain file inside the run folder reached through no
/// symlink.
pub(super) fn report_file(dir: &Path, relative: &str) -> Option<PathBuf> {
    let probe = RunReport {
        run_dir: dir.display().to_string(),
        ..empty_report()
    };
    let path = probe.file_in_run(relative)?;
    std::fs::symlink_metadata(&path)
        .ok()?
        .is_file()
        .then_some(path)
}

fn empty_report() -> RunReport {
    RunReport {
        schema: 0,
        pipeline: String::new(),
        pipeline_file: String::new(),
        pipeline_sha256: String::new(),
        run_id: String::new(),
        run_dir: String::new(),
        status: RunStatus::Running,
        exit_code: 0,
        started_at: String::new(),
        resumed_at: Vec::new(),
        trigger: String::new(),
        finished_at: String::new(),
        duration_ms: 0.0,
        sluice_version: String::new(),
        stages: Vec::new(),
        provenance: None,
    }
}

pub(super) async fn page(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<TokenQuery>,
) -> Response {
    let (_, report) = match open_run(&app, id.clone()).await {
        Ok(run) => run,
        Err(answer) => return *answer,
    };
    let html = tokio::task::spawn_blocking(move || {
        // `id` is a plain run id (the index checked it): safe in a path as it is.
        let base = format!("/runs/{id}");
        let token = token_query(&query.token);
        let live = Live {
            base: &base,
            query: &token,
            script: (report.status == RunStatus::Running).then_some("/static/live.js"),
        };
        live_report_html(&report, &live)
    })
    .await;
    match html {
        Ok(html) => html_response(html),
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot draw the run's page",
        ),
    }
}

/// `/api/runs/ID` and `/runs/ID/report.json`: the run's record as it stands now.
pub(super) async fn api(State(app): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    match open_run(&app, id).await {
        Ok((_, report)) => match serde_json::to_string_pretty(&report) {
            Ok(json) => json_response(json),
            Err(err) => problem(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        },
        Err(answer) => *answer,
    }
}

pub(super) async fn junit(State(app): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    match open_run(&app, id).await {
        Ok((_, report)) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml; charset=utf-8"),
            )],
            junit_xml(&report),
        )
            .into_response(),
        Err(answer) => *answer,
    }
}

pub(super) async fn provenance(
    State(app): State<Shared>,
    UrlPath((id, which)): UrlPath<(String, String)>,
) -> Response {
    let (dir, report) = match open_run(&app, id).await {
        Ok(run) => run,
        Err(answer) => return *answer,
    };
    let Some(record) = &report.provenance else {
        return not_found("provenance");
    };
    let file = match which.as_str() {
        "statement" => Some(record.statement.as_str()),
        "envelope" => record.envelope.as_deref(),
        _ => None,
    };
    match file.and_then(|f| report_file(&dir, f)) {
        Some(path) => send_file(&path, "application/json", None).await,
        None => not_found("provenance file"),
    }
}

/// An artifact, by its sha256 (as the page lists it), as a download.
pub(super) async fn artifact(
    State(app): State<Shared>,
    UrlPath((id, sha256)): UrlPath<(String, String)>,
) -> Response {
    let is_digest = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_digest {
        return not_found("artifact");
    }
    let (dir, report) = match open_run(&app, id).await {
        Ok(run) => run,
        Err(answer) => return *answer,
    };
    let found = report
        .stages
        .iter()
        .flat_map(|s| &s.outputs)
        .find(|a| a.sha256.eq_ignore_ascii_case(&sha256));
    let Some(artifact) = found else {
        return not_found("artifact");
    };
    match report_file(&dir, &artifact.path) {
        Some(path) => send_file(&path, "application/octet-stream", Some(&artifact.name)).await,
        None => not_found("artifact file"),
    }
}

/// A file streamed from `offset` to its length now (never read whole), as `content_type`; a
/// download named after `download` when given.
pub(super) async fn send_file(
    path: &Path,
    content_type: &'static str,
    download: Option<&str>,
) -> Response {
    send_range(path, 0, content_type, download).await
}

/// Like `send_file`, from `offset`; the answer's `X-Log-End` says where it ends.
pub(super) async fn send_range(
    path: &Path,
    offset: u64,
    content_type: &'static str,
    download: Option<&str>,
) -> Response {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return not_found("file");
    };
    let Ok(end) = file.metadata().await.map(|m| m.len()) else {
        return not_found("file");
    };
    let start = offset.min(end);
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return not_found("file");
    }
    let chunks = futures_util::stream::unfold(
        Some((file.take(end - start), vec![0u8; 64 << 10])),
        |state| async move {
            let (mut file, mut buffer) = state?;
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
                    Some((Ok::<_, std::io::Error>(chunk), Some((file, buffer))))
                }
                // The answer ends here, cut short: the client sees it did not get it all.
                Err(err) => Some((Err(err), None)),
            }
        },
    );
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert("x-log-end", HeaderValue::from(end));
    if let Some(name) = download {
        let safe: String = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}
