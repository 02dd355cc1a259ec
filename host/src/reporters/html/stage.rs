//! One stage's section of the report page: result, facts, artifacts, test cases and its log
//! (the end of it, and where the live view goes on streaming it).

use std::fmt::Write as _;
use std::path::Path;

use super::{Live, MAX_LOG_BYTES, anchor, esc, mark, seconds, status_class};
use crate::model::report::{RunReport, StageRecord, StageStatus};

pub(super) fn stage_section(
    page: &mut String,
    stage: &StageRecord,
    report: &RunReport,
    live: Option<&Live>,
) {
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
            let name = match live {
                Some(live) => format!(
                    "<a href=\"{}\" download>{}</a>",
                    live.href(&format!("/artifacts/{}", artifact.sha256)),
                    esc(&artifact.name)
                ),
                None => esc(&artifact.name),
            };
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                name,
                bytesize::ByteSize(artifact.size),
                esc(&artifact.sha256)
            );
        }
        page.push_str("</tbody></table></div>\n");
    }
    let cases = crate::model::test_cases::of_stage(report, stage);
    crate::reporters::test_cases::html_section(page, &cases, stage, esc);
    let log = stage.log.as_ref().and_then(|l| report.file_in_run(l));
    let log = log.as_deref().and_then(read_log).or_else(|| {
        // A running stage's log is shown (and streamed) even before its first line.
        (live.is_some() && stage.status == StageStatus::Running).then(|| (String::new(), 0))
    });
    if let Some((log, end)) = log {
        let lines = log.lines().count();
        let open = if matches!(
            stage.status,
            StageStatus::Failed | StageStatus::Crashed | StageStatus::Error | StageStatus::Running
        ) {
            " open"
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<details class=\"log\"{open}><summary>log ({lines} lines)</summary><pre data-log=\"{}\" data-offset=\"{end}\">{}</pre></details>",
            esc(&stage.name),
            esc(&log)
        );
    }
    page.push_str("</section>\n");
}

/// The log's text, its end when it is long (lossy for bytes that are not UTF-8), and the offset
/// it was read up to. Only the end is read: a log of any size costs at most `MAX_LOG_BYTES`.
fn read_log(path: &Path) -> Option<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let end = file.metadata().ok()?.len();
    let start = end.saturating_sub(MAX_LOG_BYTES as u64);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.take(end - start).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let text = if start > 0 {
        format!("… ({start} earlier bytes not shown)\n{text}")
    } else {
        text
    };
    Some((text, start + bytes.len() as u64))
}
