//! The run as one self-contained web page (`report.html` in every run folder, `sluice report
//! RUN`): the stage graph coloured by status, a timeline showing what ran side by side, and per
//! stage its result, cache hit, log, artifacts with size and sha256, grants, refused attempts and
//! gate; the provenance summary at the end. No script, no network, no external asset — and a
//! Content-Security-Policy that forbids them — so nothing a plugin wrote can run: all of it is
//! escaped text (logs are already masked of secrets when written).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::model::report::{RunReport, StageRecord, StageStatus};

mod stage;
mod style;
use stage::stage_section;
use style::STYLE;

/// A stage's log is shown up to this much (its end, where failures are).
const MAX_LOG_BYTES: usize = 256 << 10;

/// What the live view (`sluice serve`) adds to the page: links to the server's own endpoints and
/// the same-origin script that keeps the page up to date. Every string is escaped here.
pub struct Live<'a> {
    /// The run's path on the server (`/runs/ID`).
    pub base: &'a str,
    /// Carried on to every link (`token=...`), or empty.
    pub query: &'a str,
    /// The live script's path, for a run still going; `None` for a finished run.
    pub script: Option<&'a str>,
}

impl Live<'_> {
    fn href(&self, path: &str) -> String {
        let sep = if self.query.is_empty() { "" } else { "?" };
        esc(&format!("{}{path}{sep}{}", self.base, self.query))
    }
}

/// The page for `report`; logs are read from the run's folder.
pub fn report_html(report: &RunReport) -> String {
    render(report, None)
}

/// The page `sluice serve` shows: the same page, with links to download artifacts, JUnit and
/// provenance, and — while the run goes on — a script that updates it and streams logs.
pub fn live_report_html(report: &RunReport, live: &Live) -> String {
    render(report, Some(live))
}

/// The style sheet of the pages (shared with the runs list of `sluice serve`).
pub fn page_style() -> &'static str {
    STYLE
}

/// Text as HTML (every character markup could use escaped).
pub fn escape_html(text: &str) -> String {
    esc(text)
}

fn render(report: &RunReport, live: Option<&Live>) -> String {
    let mut page = String::new();
    let title = format!(
        "sluice · {} · {} · {}",
        report.pipeline,
        report.run_id,
        report.status.label().trim_start_matches("is ")
    );
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:{live_csp}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n{script}</head>\n<body>\n",
        esc(&title),
        live_csp = if live.is_some() {
            "; script-src 'self'; connect-src 'self'"
        } else {
            ""
        },
        script = live
            .and_then(|l| Some((l, l.script?)))
            .map(|(l, src)| format!(
                "<script src=\"{}\" data-base=\"{}\" defer></script>\n",
                esc(src),
                esc(l.base)
            ))
            .unwrap_or_default(),
    );
    header(&mut page, report);
    if let Some(live) = live {
        let _ = writeln!(
            page,
            "<p class=\"links\"><a href=\"{}\">JUnit XML</a> · <a href=\"{}\">report.json</a></p>",
            live.href("/junit.xml"),
            live.href("/report.json"),
        );
    }
    graph(&mut page, report);
    timeline(&mut page, report);
    page.push_str("<h2>Stages</h2>\n");
    for stage in &report.stages {
        stage_section(&mut page, stage, report, live);
    }
    provenance(&mut page, report, live);
    page.push_str("</body>\n</html>\n");
    page
}

fn header(page: &mut String, report: &RunReport) {
    let status = report.status.label().trim_start_matches("is ");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for stage in &report.stages {
        *counts.entry(stage.status.label()).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(label, n)| format!("{n} {label}"))
        .collect();
    let _ = write!(
        page,
        "<header>\n<h1>{pipeline} <span class=\"badge {class}\" id=\"run-status\">{status}</span></h1>\n\
         <dl class=\"facts\">\
         <dt>run</dt><dd>{run_id}</dd>\
         <dt>started</dt><dd>{started}</dd>\
         <dt>took</dt><dd>{took}</dd>\
         <dt>trigger</dt><dd>{trigger}</dd>\
         <dt>stages</dt><dd>{counts}</dd>\
         <dt>pipeline file</dt><dd>{file}</dd>\
         <dt>sluice</dt><dd>{version}</dd>\
         </dl>\n</header>\n",
        pipeline = esc(&report.pipeline),
        class = run_class(report),
        status = esc(status),
        run_id = esc(&report.run_id),
        started = esc(&report.started_at),
        took = esc(&seconds(report.duration_ms)),
        trigger = esc(if report.trigger.is_empty() {
            "-"
        } else {
            &report.trigger
        }),
        counts = esc(&counts.join(", ")),
        file = esc(&report.pipeline_file),
        version = esc(&report.sluice_version),
    );
}

/// The stage graph: a column per depth (stages with no dependency first), arrows from each
/// stage to those that waited for it.
fn graph(page: &mut String, report: &RunReport) {
    let depth = depths(&report.stages);
    let mut rows_in_column: BTreeMap<usize, usize> = BTreeMap::new();
    let mut place: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for stage in &report.stages {
        let column = depth.get(stage.name.as_str()).copied().unwrap_or(0);
        let row = rows_in_column.entry(column).or_default();
        place.insert(&stage.name, (column, *row));
        *row += 1;
    }
    let (box_w, box_h, gap_x, gap_y) = (150, 36, 50, 14);
    let columns = rows_in_column.len().max(1);
    let rows = rows_in_column.values().copied().max().unwrap_or(1);
    let width = columns * (box_w + gap_x);
    let height = rows * (box_h + gap_y) + gap_y;
    let at = |(column, row): (usize, usize)| {
        (column * (box_w + gap_x) + 10, row * (box_h + gap_y) + gap_y)
    };
    let _ = write!(
        page,
        "<h2>Graph</h2>\n<div class=\"scroll\"><svg class=\"graph\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"stage graph\">\n"
    );
    for stage in &report.stages {
        let Some(&to) = place.get(stage.name.as_str()) else {
            continue;
        };
        for before in &stage.depends_on {
            if let Some(&from) = place.get(before.as_str()) {
                let (x1, y1) = at(from);
                let (x2, y2) = at(to);
                let _ = writeln!(
                    page,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"edge\"/>",
                    x1 + box_w,
                    y1 + box_h / 2,
                    x2,
                    y2 + box_h / 2
                );
            }
        }
    }
    for stage in &report.stages {
        let Some(&spot) = place.get(stage.name.as_str()) else {
            continue;
        };
        let (x, y) = at(spot);
        let _ = writeln!(
            page,
            "<g class=\"node {class}\"><rect x=\"{x}\" y=\"{y}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"6\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{mark} {name}</text><title>{name}: {status}</title></g>",
            class = status_class(stage.status),
            tx = x + 8,
            ty = y + box_h / 2 + 5,
            mark = mark(stage.status),
            name = esc(&shorten(&stage.name, 18)),
            status = esc(stage.status.label()),
        );
    }
    page.push_str("</svg></div>\n");
}

/// Each stage's longest chain of dependencies: its column in the graph.
fn depths(stages: &[StageRecord]) -> BTreeMap<&str, usize> {
    let depth = crate::model::depth::depths(
        stages
            .iter()
            .map(|s| (s.name.as_str(), s.depends_on.as_slice())),
    );
    stages.iter().map(|s| s.name.as_str()).zip(depth).collect()
}

/// When each stage ran, as bars on one time axis: stages that overlap ran side by side.
fn timeline(page: &mut String, report: &RunReport) {
    let Some(origin) = parse_time(&report.started_at) else {
        return;
    };
    let spans: Vec<(&StageRecord, f64, f64)> = report
        .stages
        .iter()
        .filter_map(|stage| {
            let start = parse_time(stage.started_at.as_deref()?)?;
            let offset = start
                .duration_since(origin)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
            Some((stage, offset, stage.duration_ms.unwrap_or(0.0)))
        })
        .collect();
    let total = spans
        .iter()
        .map(|(_, start, took)| start + took)
        .fold(report.duration_ms, f64::max)
        .max(1.0);
    page.push_str("<h2>Timeline</h2>\n<div class=\"timeline\">\n");
    for (stage, start, took) in spans {
        let left = start / total * 100.0;
        let width = (took / total * 100.0).max(0.4);
        let _ = writeln!(
            page,
            "<div class=\"lane\"><span class=\"lane-name\">{name}</span><span class=\"track\">\
             <span class=\"bar {class}\" style=\"left:{left:.2}%;width:{width:.2}%\" title=\"{name}: {status}, {took}\"></span></span>\
             <span class=\"lane-time\">{took}</span></div>",
            name = esc(&stage.name),
            class = status_class(stage.status),
            status = esc(stage.status.label()),
            took = esc(&seconds(took)),
        );
    }
    let _ = writeln!(
        page,
        "<div class=\"axis\"><span>0 s</span><span>{}</span></div>\n</div>",
        esc(&seconds(total))
    );
}

fn provenance(page: &mut String, report: &RunReport, live: Option<&Live>) {
    let Some(provenance) = &report.provenance else {
        return;
    };
    let _ = write!(
        page,
        "<h2>Provenance</h2>\n<dl class=\"facts\"><dt>statement</dt><dd>{}</dd>",
        linked(live, "/provenance/statement", &provenance.statement)
    );
    if let Some(envelope) = &provenance.envelope {
        let _ = write!(
            page,
            "<dt>signed envelope</dt><dd>{}</dd>",
            linked(live, "/provenance/envelope", envelope)
        );
    }
    if let Some(signer) = &provenance.signed_by {
        let _ = write!(page, "<dt>signed by</dt><dd>{}</dd>", esc(signer));
    }
    if let Some(problem) = &provenance.problem {
        let _ = write!(
            page,
            "<dt>problem</dt><dd class=\"refused\">{}</dd>",
            esc(problem)
        );
    }
    page.push_str("</dl>\n");
}

/// `text`, a link to the server's `path` in the live view.
fn linked(live: Option<&Live>, path: &str, text: &str) -> String {
    match live {
        Some(live) => format!("<a href=\"{}\">{}</a>", live.href(path), esc(text)),
        None => esc(text),
    }
}

/// A status mark from characters every system font has (the terminal's set includes emoji that
/// some browsers' fonts lack).
fn mark(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Succeeded => "✔",
        StageStatus::Failed | StageStatus::Crashed | StageStatus::Error => "✘",
        StageStatus::Skipped => "–",
        StageStatus::Pending => "·",
        StageStatus::AwaitingApproval => "‖",
        StageStatus::Running => "›",
        StageStatus::Cancelled => "×",
    }
}

fn run_class(report: &RunReport) -> &'static str {
    use crate::model::report::RunStatus;
    match report.status {
        RunStatus::Succeeded => "ok",
        RunStatus::Failed | RunStatus::Crashed | RunStatus::Error => "bad",
        RunStatus::AwaitingApproval => "wait",
        RunStatus::Running => "run",
    }
}

fn status_class(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Succeeded => "ok",
        StageStatus::Failed | StageStatus::Crashed | StageStatus::Error => "bad",
        StageStatus::Skipped | StageStatus::Cancelled | StageStatus::Pending => "off",
        StageStatus::AwaitingApproval => "wait",
        StageStatus::Running => "run",
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

fn seconds(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max_chars - 1).collect();
        short.push('…');
        short
    }
}

/// A stage name as an id: names are letters, digits, `-` and `_` already; anything else becomes `_`.
fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Text as HTML: every character markup could use escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_plugin_text_is_shown_not_parsed() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
