//! A run's record as OpenTelemetry spans: one for the invocation (`sluice run` or each
//! `sluice resume`), one per stage it ran, with status, cache hit, plugin digest, refused attempts
//! as events and dependencies as links. Ids are derived from the run's id, so a stage keeps its
//! span id wherever its record is exported from.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use sha2::{Digest, Sha256};

use crate::model::report::{RunReport, RunStatus, StageRecord, StageStatus};

/// Where the run's spans hang: a trace and, when sluice itself runs inside a traced job
/// (`TRACEPARENT`), the job's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: Option<SpanId>,
}

impl Parent {
    /// The trace of a run that nothing outside sluice traces: derived from its id.
    pub fn of_run(run_id: &str) -> Self {
        let digest = hash(&["trace", run_id]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self {
            trace_id: TraceId::from_bytes(id),
            span_id: None,
        }
    }

    /// A W3C `traceparent` header value (`00-<trace>-<span>-<flags>`), if well formed.
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || flags.len() != 2 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !lower_hex(trace, 32) || !lower_hex(span, 16) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some(Self {
            trace_id,
            span_id: Some(span_id),
        })
    }
}

/// The spans of what the latest invocation of `report`'s run did.
pub fn run_spans(report: &RunReport, parent: Parent) -> Vec<SpanData> {
    let scope = InstrumentationScope::builder("sluice")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let finished = time(&report.finished_at).unwrap_or_else(SystemTime::now);
    // A resumed run is exported once per invocation: each exports the stages it ran.
    let (kind, invoked_at) = match report.resumed_at.last() {
        Some(at) => ("resume", at.as_str()),
        None => ("run", report.started_at.as_str()),
    };
    let invoked = time(invoked_at).unwrap_or(finished);
    let run_span = span_id(&report.run_id, &["invocation", invoked_at]);
    let run_context = context(parent.trace_id, run_span);
    let final_record = !matches!(
        report.status,
        RunStatus::AwaitingApproval | RunStatus::Running
    );

    let mut spans = Vec::new();
    for stage in &report.stages {
        let started = stage.started_at.as_deref().and_then(time);
        let ran_now = match started {
            Some(at) => at >= invoked,
            // Never started (skipped, cancelled): shown once the run is over.
            None => final_record && !matches!(stage.status, StageStatus::AwaitingApproval),
        };
        if !ran_now {
            continue;
        }
        let start = started.unwrap_or(finished);
        let end =
            start + Duration::from_secs_f64(stage.duration_ms.unwrap_or(0.0).max(0.0) / 1000.0);
        let links = stage
            .depends_on
            .iter()
            .map(|name| {
                Link::new(
                    context(parent.trace_id, stage_span(&report.run_id, name)),
                    vec![KeyValue::new("sluice.link", "depends_on")],
                    0,
                )
            })
            .collect();
        spans.push(SpanData {
            span_context: context(parent.trace_id, stage_span(&report.run_id, &stage.name)),
            parent_span_id: run_span,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(format!("stage {}", stage.name)),
            start_time: start,
            end_time: end,
            attributes: stage_attributes(stage),
            dropped_attributes_count: 0,
            events: span_events(stage_events(stage, start)),
            links: span_links(links),
            status: stage_status(stage),
            instrumentation_scope: scope.clone(),
        });
    }

    let mut attributes = vec![
        KeyValue::new("sluice.run.id", report.run_id.clone()),
        KeyValue::new("sluice.pipeline", report.pipeline.clone()),
        KeyValue::new("sluice.pipeline.file", report.pipeline_file.clone()),
        KeyValue::new("sluice.pipeline.sha256", report.pipeline_sha256.clone()),
        KeyValue::new("sluice.run.status", report.status.label()),
        KeyValue::new("sluice.run.exit_code", i64::from(report.exit_code)),
        KeyValue::new("sluice.run.stages", stage_count(report.stages.len())),
    ];
    if !report.trigger.is_empty() {
        attributes.push(KeyValue::new("sluice.run.trigger", report.trigger.clone()));
    }
    let status = match report.status {
        RunStatus::Succeeded | RunStatus::AwaitingApproval => Status::Ok,
        RunStatus::Running => Status::Unset,
        other => Status::error(format!("the run {}", other.label())),
    };
    spans.push(SpanData {
        span_context: run_context,
        parent_span_id: parent.span_id.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: parent.span_id.is_some(),
        span_kind: SpanKind::Internal,
        name: Cow::Owned(format!("sluice {kind} {}", report.pipeline)),
        start_time: invoked,
        end_time: finished.max(invoked),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope,
    });
    spans
}

fn stage_attributes(stage: &StageRecord) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("sluice.stage.name", stage.name.clone()),
        KeyValue::new("sluice.stage.status", stage.status.label()),
        KeyValue::new("sluice.plugin.reference", stage.plugin.reference.clone()),
        KeyValue::new(
            "sluice.stage.cache_hit",
            stage.cache.as_ref().is_some_and(|cache| cache.hit),
        ),
        KeyValue::new("sluice.stage.outputs", stage_count(stage.outputs.len())),
    ];
    let optional = [
        ("sluice.plugin.sha256", stage.plugin.sha256.as_ref()),
        ("sluice.plugin.name", stage.plugin.name.as_ref()),
        ("sluice.plugin.version", stage.plugin.version.as_ref()),
        ("sluice.stage.phase", stage.phase.as_ref()),
        ("sluice.stage.message", stage.message.as_ref()),
        ("sluice.stage.summary", stage.summary.as_ref()),
        (
            "sluice.stage.cache_key",
            stage.cache.as_ref().map(|c| &c.key),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, value.clone()));
        }
    }
    if let Some(hit) = stage.plugin.cache_hit {
        attributes.push(KeyValue::new("sluice.plugin.compiled_cache_hit", hit));
    }
    if !stage.inputs.is_empty() {
        attributes.push(KeyValue::new("sluice.stage.inputs", strings(&stage.inputs)));
    }
    if !stage.grants.is_empty() {
        attributes.push(KeyValue::new("sluice.stage.grants", strings(&stage.grants)));
    }
    for (key, value) in &stage.matrix {
        attributes.push(KeyValue::new(
            format!("sluice.stage.matrix.{key}"),
            value.clone(),
        ));
    }
    if stage.failure_allowed {
        attributes.push(KeyValue::new("sluice.stage.failure_allowed", true));
    }
    if stage.gate {
        attributes.push(KeyValue::new("sluice.stage.gate", true));
    }
    attributes
}

/// Refused attempts and earlier (retried) attempts, at the stage's start: the record does not
/// say when within the stage they happened.
fn stage_events(stage: &StageRecord, start: SystemTime) -> Vec<Event> {
    let refused = stage.denied.iter().map(|what| {
        Event::new(
            "sluice.refused",
            start,
            vec![KeyValue::new("sluice.refused", what.clone())],
            0,
        )
    });
    let attempts = stage
        .earlier_attempts
        .iter()
        .enumerate()
        .map(|(n, attempt)| {
            let mut attributes = vec![
                KeyValue::new("sluice.attempt", stage_count(n + 1)),
                KeyValue::new("sluice.attempt.status", attempt.status.label()),
            ];
            if let Some(message) = &attempt.message {
                attributes.push(KeyValue::new("sluice.attempt.message", message.clone()));
            }
            Event::new("sluice.retried", start, attributes, 0)
        });
    refused.chain(attempts).collect()
}

fn stage_status(stage: &StageRecord) -> Status {
    match stage.status {
        StageStatus::Succeeded => Status::Ok,
        StageStatus::Failed | StageStatus::Crashed | StageStatus::Error => Status::error(
            stage
                .message
                .clone()
                .unwrap_or_else(|| format!("the stage {}", stage.status.label())),
        ),
        _ => Status::Unset,
    }
}

fn span_events(events: Vec<Event>) -> SpanEvents {
    let mut all = SpanEvents::default();
    all.events = events;
    all
}

fn span_links(links: Vec<Link>) -> SpanLinks {
    let mut all = SpanLinks::default();
    all.links = links;
    all
}

fn strings(values: &[String]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| opentelemetry::StringValue::from(v.clone()))
            .collect::<Vec<_>>()
            .into(),
    )
}

fn stage_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

fn context(trace_id: TraceId, span_id: SpanId) -> SpanContext {
    SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// A stage's span id: the same in every export of its run.
pub fn stage_span(run_id: &str, stage: &str) -> SpanId {
    span_id(run_id, &["stage", stage])
}

fn span_id(run_id: &str, parts: &[&str]) -> SpanId {
    let mut all = vec!["span", run_id];
    all.extend_from_slice(parts);
    let digest = hash(&all);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    SpanId::from_bytes(id)
}

fn hash(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_the_w3c_spec_writes_it() {
        let parent =
            Parent::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            parent.map(|p| (p.trace_id.to_string(), p.span_id.map(|s| s.to_string()))),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".to_string(),
                Some("00f067aa0ba902b7".to_string())
            ))
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(Parent::from_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_follow_the_run() {
        assert_eq!(Parent::of_run("a"), Parent::of_run("a"));
        assert_ne!(Parent::of_run("a").trace_id, Parent::of_run("b").trace_id);
        assert_ne!(stage_span("a", "x"), stage_span("a", "y"));
        assert_ne!(stage_span("a", "x"), stage_span("b", "x"));
    }
}
