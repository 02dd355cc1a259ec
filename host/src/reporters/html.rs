//! The run as one self-contained web page (`report.html` in every run folder, `sluice report
//! RUN`): the stage graph coloured by status, a timeline showing what ran side by side, and per
//! stage its result, cache hit, log, artifacts with size and sha256, grants, refused attempts and
//! gate; the provenance summary at the end. No script, no network, no external asset — and a
//! Content-Security-Policy that forbids them — so nothing a plugin wrote can run: all of it is
//! escaped text (logs are already masked of secrets when written).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::model::report::{RunReport, StageRecord, StageStatus};

/// A stage's log is shown up to this much (its end, where failures are).
const MAX_LOG_BYTES: usize = 256 << 10;

/// The page for `report`; logs are read from the run's folder.
pub fn report_html(report: &RunReport) -> String {
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
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut page, report);
    graph(&mut page, report);
    timeline(&mut page, report);
    page.push_str("<h2>Stages</h2>\n");
    for stage in &report.stages {
        stage_section(&mut page, stage, report);
    }
    provenance(&mut page, report);
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

fn stage_section(page: &mut String, stage: &StageRecord, report: &RunReport) {
    let status = stage.status.label();
    let cached = stage.cache.as_ref().is_some_and(|c| c.hit);
    let _ = write!(
        page,
        "<section class=\"stage {class}\" id=\"stage-{id}\" data-stage=\"{name}\" data-status=\"{status}\">\n\
         <h3><span class=\"badge {class}\">{mark} {status}</span> {name}{took}{cached}</h3>\n",
        class = status_class(stage.status),
        id = esc(&anchor(&stage.name)),
        name = esc(&stage.name),
        status = esc(status),
        mark = mark(stage.status),
        took = stage
            .duration_ms
            .map(|ms| format!(" <small>{}</small>", esc(&seconds(ms))))
            .unwrap_or_default(),
        cached = if cached {
            " <span class=\"tag\">cache hit</span>"
        } else {
            ""
        },
    );
    if let Some(message) = &stage.message {
        let _ = writeln!(page, "<p class=\"message\">{}</p>", esc(message));
    }
    if let Some(summary) = &stage.summary {
        let _ = writeln!(page, "<p class=\"summary\">{}</p>", esc(summary));
    }
    page.push_str("<dl class=\"facts\">");
    let plugin = &stage.plugin;
    let described = match (&plugin.name, &plugin.version) {
        (Some(name), Some(version)) => format!("{name} {version} "),
        _ => String::new(),
    };
    let _ = write!(
        page,
        "<dt>plugin</dt><dd>{}{}{}</dd>",
        esc(&described),
        esc(&plugin.reference),
        plugin
            .sha256
            .as_ref()
            .map(|d| format!(" <code>{}</code>", esc(d)))
            .unwrap_or_default()
    );
    if let Some(phase) = &stage.phase {
        let _ = write!(page, "<dt>phase</dt><dd>{}</dd>", esc(phase));
    }
    if stage.gate {
        page.push_str("<dt>gate</dt><dd>waits for a person's approval</dd>");
    }
    if !stage.depends_on.is_empty() {
        let _ = write!(
            page,
            "<dt>after</dt><dd>{}</dd>",
            esc(&stage.depends_on.join(", "))
        );
    }
    if !stage.inputs.is_empty() {
        let _ = write!(
            page,
            "<dt>inputs</dt><dd>{}</dd>",
            esc(&stage.inputs.join(", "))
        );
    }
    let grants = if stage.grants.is_empty() {
        "nothing".to_string()
    } else {
        stage.grants.join("; ")
    };
    let _ = write!(page, "<dt>granted</dt><dd>{}</dd>", esc(&grants));
    if !stage.denied.is_empty() {
        let _ = write!(
            page,
            "<dt>refused</dt><dd class=\"refused\">{}</dd>",
            esc(&stage.denied.join("; "))
        );
    }
    page.push_str("</dl>\n");
    if !stage.outputs.is_empty() {
        page.push_str("<div class=\"scroll\"><table><thead><tr><th>artifact</th><th>size</th><th>sha256</th></tr></thead><tbody>\n");
        for artifact in &stage.outputs {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&artifact.name),
                bytesize::ByteSize(artifact.size),
                esc(&artifact.sha256)
            );
        }
        page.push_str("</tbody></table></div>\n");
    }
    let cases = crate::model::test_cases::of_stage(report, stage);
    super::test_cases::html_section(page, &cases, stage, esc);
    let log = stage.log.as_ref().and_then(|l| report.file_in_run(l));
    if let Some(log) = log.as_deref().and_then(read_log) {
        let lines = log.lines().count();
        let open = if matches!(
            stage.status,
            StageStatus::Failed | StageStatus::Crashed | StageStatus::Error
        ) {
            " open"
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<details class=\"log\"{open}><summary>log ({lines} lines)</summary><pre>{}</pre></details>",
            esc(&log)
        );
    }
    page.push_str("</section>\n");
}

/// The log's text, its end when it is long (lossy for bytes that are not UTF-8).
fn read_log(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let start = bytes.len().saturating_sub(MAX_LOG_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    Some(if start > 0 {
        format!("… ({start} earlier bytes not shown)\n{text}")
    } else {
        text
    })
}

fn provenance(page: &mut String, report: &RunReport) {
    let Some(provenance) = &report.provenance else {
        return;
    };
    let _ = write!(
        page,
        "<h2>Provenance</h2>\n<dl class=\"facts\"><dt>statement</dt><dd>{}</dd>",
        esc(&provenance.statement)
    );
    if let Some(envelope) = &provenance.envelope {
        let _ = write!(page, "<dt>signed envelope</dt><dd>{}</dd>", esc(envelope));
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

const STYLE: &str = "
:root{--ok:#1a7f37;--bad:#cf222e;--wait:#8250df;--run:#0969da;--off:#8c959f;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;padding:16px;max-width:1100px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid var(--line)}h3{font-size:1em;margin:0 0 .4em}
.badge{display:inline-block;padding:0 .55em;border-radius:1em;color:#fff;font-size:.8em;vertical-align:middle}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.wait{background:var(--wait)}.badge.run{background:var(--run)}.badge.off{background:var(--off)}
.tag{font-size:.75em;border:1px solid var(--run);color:var(--run);border-radius:1em;padding:0 .5em}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.4em 0}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}svg.graph{display:block;max-width:none}
.edge{stroke:var(--muted);stroke-width:1.5}.node rect{stroke-width:2;fill:var(--soft)}.node text{font-size:13px;fill:var(--fg)}
.node.ok rect{stroke:var(--ok)}.node.bad rect{stroke:var(--bad);fill:#ffebe9}.node.wait rect{stroke:var(--wait)}.node.run rect{stroke:var(--run)}.node.off rect{stroke:var(--off);stroke-dasharray:4 3}
.timeline{font-size:.85em}.lane{display:grid;grid-template-columns:minmax(6em,12em) 1fr 5.5em;gap:.5em;align-items:center;margin:2px 0}
.lane-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.lane-time{text-align:right;color:var(--muted)}
.track{position:relative;height:14px;background:var(--soft);border-radius:3px}.bar{position:absolute;top:0;bottom:0;border-radius:3px;background:var(--off)}
.bar.ok{background:var(--ok)}.bar.bad{background:var(--bad)}.bar.wait{background:var(--wait)}.bar.run{background:var(--run)}
.axis{display:flex;justify-content:space-between;color:var(--muted);margin-left:calc(min(12em,30%) + .5em);margin-right:6em}
section.stage{border:1px solid var(--line);border-left:5px solid var(--off);border-radius:6px;padding:.6em .8em;margin:.7em 0}
section.stage.ok{border-left-color:var(--ok)}section.stage.bad{border-left-color:var(--bad)}section.stage.wait{border-left-color:var(--wait)}section.stage.run{border-left-color:var(--run)}
.message{color:var(--bad);margin:.3em 0;overflow-wrap:anywhere}.summary{margin:.3em 0;overflow-wrap:anywhere}.refused{color:var(--bad)}
table{border-collapse:collapse;font-size:.85em}th,td{text-align:left;padding:.15em .6em;border-bottom:1px solid var(--line)}code{font-size:.85em;overflow-wrap:anywhere}
details.log pre{background:var(--soft);padding:.5em;overflow-x:auto;max-height:30em;font-size:.8em;white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:600px){body{padding:8px;font-size:14px}.lane{grid-template-columns:6em 1fr 4.5em}.axis{margin-left:6.5em;margin-right:5em}}
";

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
