//! The runs list: every run of the runs folders, newest first, filtered by pipeline and status
//! and cut into pages — as a page (`/`) and as JSON (`/api/runs`).

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{RunSummary, Shared, encode, token_query};
use crate::model::report::RunStatus;
use crate::reporters::{escape_html as esc, page_style};

const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;

/// The query string of `/` and `/api/runs`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    pipeline: Option<String>,
    /// `succeeded`, `failed`, `crashed`, `error`, `awaiting-approval` or `running`.
    status: Option<String>,
    /// From 1.
    page: Option<usize>,
    per_page: Option<usize>,
    token: Option<String>,
}

/// One page of the list, as `/api/runs` answers.
#[derive(Serialize)]
struct Listing {
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    runs: Vec<RunSummary>,
}

fn select(app: &Shared, filter: &Filter) -> Listing {
    let runs = app.index.runs();
    let wanted = |run: &&RunSummary| {
        filter
            .pipeline
            .as_deref()
            .is_none_or(|p| p.is_empty() || run.pipeline == p)
            && filter
                .status
                .as_deref()
                .is_none_or(|s| s.is_empty() || status_name(run) == s)
    };
    let per_page = filter.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let total = runs.iter().filter(wanted).count();
    let pages = total.div_ceil(per_page).max(1);
    let page = filter.page.unwrap_or(1).clamp(1, pages);
    let selected = runs
        .iter()
        .filter(wanted)
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    Listing {
        total,
        page,
        per_page,
        pages,
        runs: selected,
    }
}

/// The status as the record spells it (`awaiting-approval`), as the filter takes it.
fn status_name(run: &RunSummary) -> &'static str {
    match run.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Crashed => "crashed",
        RunStatus::Error => "error",
        RunStatus::AwaitingApproval => "awaiting-approval",
        RunStatus::Running => "running",
    }
}

pub(super) async fn api(State(app): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let listing = tokio::task::spawn_blocking(move || select(&app, &filter)).await;
    match listing.ok().and_then(|l| serde_json::to_string(&l).ok()) {
        Some(json) => json_response(json),
        None => super::problem(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot list the runs",
        ),
    }
}

pub(super) fn json_response(json: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

pub(super) fn html_response(html: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response()
}

pub(super) async fn page(State(app): State<Shared>, Query(filter): Query<Filter>) -> Response {
    let html = tokio::task::spawn_blocking(move || {
        let listing = select(&app, &filter);
        render(&listing, &filter)
    })
    .await;
    match html {
        Ok(html) => html_response(html),
        Err(_) => super::problem(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot list the runs",
        ),
    }
}

const STATUSES: [&str; 6] = [
    "succeeded",
    "failed",
    "crashed",
    "error",
    "awaiting-approval",
    "running",
];

fn render(listing: &Listing, filter: &Filter) -> String {
    let token = token_query(&filter.token);
    let with_token = |path: String| {
        if token.is_empty() {
            path
        } else if path.contains('?') {
            format!("{path}&{token}")
        } else {
            format!("{path}?{token}")
        }
    };
    let mut page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>sluice · runs</title>\n<style>{}{LIST_STYLE}</style>\n</head>\n<body>\n<h1>Runs</h1>\n",
        page_style()
    );
    let pipeline = filter.pipeline.as_deref().unwrap_or("");
    let status = filter.status.as_deref().unwrap_or("");
    let _ = write!(
        page,
        "<form method=\"get\" action=\"/\" class=\"filter\">\
         <label>pipeline <input name=\"pipeline\" value=\"{}\"></label> \
         <label>status <select name=\"status\"><option value=\"\">any</option>",
        esc(pipeline)
    );
    for name in STATUSES {
        let selected = if name == status { " selected" } else { "" };
        let _ = write!(page, "<option{selected}>{name}</option>");
    }
    page.push_str("</select></label> ");
    if let Some(token) = &filter.token {
        let _ = write!(
            page,
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            esc(token)
        );
    }
    let _ = writeln!(
        page,
        "<button>show</button> <span class=\"count\">{} runs</span></form>",
        listing.total
    );
    page.push_str(
        "<div class=\"scroll\"><table class=\"runs\"><thead><tr><th>status</th><th>pipeline</th>\
         <th>run</th><th>trigger</th><th>took</th><th>started</th><th>machine</th></tr></thead><tbody>\n",
    );
    for run in &listing.runs {
        let name = status_name(run);
        let _ = writeln!(
            page,
            "<tr data-run=\"{id}\" data-status=\"{name}\"><td><span class=\"badge {class}\">{label}</span></td>\
             <td>{pipeline}</td><td><a href=\"{href}\">{id}</a></td><td>{trigger}</td><td>{took}</td>\
             <td>{started}</td><td>{machine}</td></tr>",
            id = esc(&run.id),
            name = esc(name),
            class = class(name),
            label = esc(run.status.label().trim_start_matches("is ")),
            pipeline = esc(&run.pipeline),
            href = esc(&with_token(format!("/runs/{}", encode(&run.id)))),
            trigger = esc(if run.trigger.is_empty() {
                "-"
            } else {
                &run.trigger
            }),
            took = esc(&took(run.duration_ms)),
            started = esc(&run.started_at),
            machine = esc(&run.machine),
        );
    }
    page.push_str("</tbody></table></div>\n<nav class=\"pages\">");
    let link = |to: usize| {
        let mut query = format!("/?page={to}");
        if !pipeline.is_empty() {
            let _ = write!(query, "&pipeline={}", encode(pipeline));
        }
        if !status.is_empty() {
            let _ = write!(query, "&status={}", encode(status));
        }
        if let Some(per_page) = filter.per_page {
            let _ = write!(query, "&per_page={per_page}");
        }
        esc(&with_token(query))
    };
    if listing.page > 1 {
        let _ = write!(
            page,
            "<a rel=\"prev\" href=\"{}\">← newer</a> ",
            link(listing.page - 1)
        );
    }
    let _ = write!(page, "page {} of {}", listing.page, listing.pages);
    if listing.page < listing.pages {
        let _ = write!(
            page,
            " <a rel=\"next\" href=\"{}\">older →</a>",
            link(listing.page + 1)
        );
    }
    page.push_str("</nav>\n</body>\n</html>\n");
    page
}

fn class(status: &str) -> &'static str {
    match status {
        "succeeded" => "ok",
        "failed" | "crashed" | "error" => "bad",
        "awaiting-approval" => "wait",
        _ => "run",
    }
}

fn took(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.0} min", ms / 60_000.0)
    }
}

const LIST_STYLE: &str = "
.filter{margin:.5em 0 1em}.filter input,.filter select,.filter button{font:inherit}.count{color:var(--muted)}
table.runs{width:100%;font-size:.9em}.runs td{white-space:nowrap}.pages{margin:1em 0}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_filter_spells_statuses_as_the_record_does() {
        use RunStatus::*;
        for status in [Succeeded, Failed, Crashed, Error, AwaitingApproval, Running] {
            let run = RunSummary::for_test("x", status, "2026");
            let spelled = serde_json::to_value(status).unwrap_or_default();
            assert_eq!(spelled, serde_json::json!(status_name(&run)));
            assert!(STATUSES.contains(&status_name(&run)));
        }
    }
}
