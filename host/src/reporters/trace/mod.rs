//! A finished run sent as an OpenTelemetry trace when the standard `OTEL_EXPORTER_OTLP_*`
//! variables ask for it, so runs show up in the tracing backend a team already has (Jaeger,
//! Tempo, Honeycomb, an OpenTelemetry Collector). OTLP over HTTP with protobuf, through the
//! OpenTelemetry crates' exporter; a trace that cannot be sent never changes the run's outcome.

mod spans;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use opentelemetry::trace::TraceId;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;

pub use spans::{Parent, run_spans, stage_span};

use crate::model::report::RunReport;

/// Where the trace goes, read from the environment the way every OpenTelemetry SDK reads it.
#[derive(Debug, Clone)]
pub struct TraceTarget {
    /// The URL spans are posted to (`…/v1/traces`).
    pub endpoint: String,
    pub timeout: Duration,
    /// The job's own span when sluice runs inside a traced job (`TRACEPARENT`).
    pub parent: Option<Parent>,
}

/// What was sent.
#[derive(Debug, Clone)]
pub struct Exported {
    pub spans: usize,
    pub trace_id: TraceId,
    pub endpoint: String,
}

impl TraceTarget {
    /// `None` when no endpoint is set (or `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`);
    /// an error for settings sluice cannot honour (gRPC, JSON), so the user hears why nothing
    /// arrived.
    pub fn from_env() -> Result<Option<Self>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
        {
            return Ok(None);
        }
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => traces,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p.trim() != "http/protobuf") {
            bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is {protocol:?}, but sluice sends traces as http/protobuf only: unset it (or set http/protobuf) and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (usually 4318)"
            );
        }
        let millis = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map(|v| {
                v.trim().parse::<u64>().with_context(|| {
                    format!("OTEL_EXPORTER_OTLP_TIMEOUT is {v:?}, not a number of milliseconds")
                })
            })
            .transpose()?
            .unwrap_or(10_000);
        let parent = match var("TRACEPARENT") {
            Some(value) => Some(Parent::from_traceparent(&value).with_context(|| {
                format!(
                    "TRACEPARENT is {value:?}, not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
                )
            })?),
            None => None,
        };
        Ok(Some(Self {
            endpoint,
            timeout: Duration::from_millis(millis),
            parent,
        }))
    }
}

/// Sends the spans of the latest invocation of `report`'s run to `target`.
pub async fn export_run(report: &RunReport, target: &TraceTarget) -> Result<Exported> {
    let parent = target
        .parent
        .unwrap_or_else(|| Parent::of_run(&report.run_id));
    let spans = run_spans(report, parent);
    let count = spans.len();

    // The registry client's TLS setup: rustls with ring (an `https://` collector).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(target.timeout.min(Duration::from_secs(5)))
        .timeout(target.timeout)
        .build()
        .context("cannot set up an HTTP client")?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(target.endpoint.clone())
        .with_timeout(target.timeout)
        .build()
        .with_context(|| format!("cannot send traces to {}", target.endpoint))?;
    exporter.set_resource(&resource());
    // The exporter retries within its timeout; this bounds the whole export however it retries.
    let sent = tokio::time::timeout(target.timeout * 2, exporter.export(spans)).await;
    let _ = exporter.shutdown();
    match sent {
        Ok(Ok(())) => Ok(Exported {
            spans: count,
            trace_id: parent.trace_id,
            endpoint: target.endpoint.clone(),
        }),
        Ok(Err(err)) => bail!("{}: {err}", target.endpoint),
        Err(_) => bail!(
            "{}: no answer within {:.1} s",
            target.endpoint,
            (target.timeout * 2).as_secs_f64()
        ),
    }
}

/// `service.name` is `sluice` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` say
/// otherwise (the SDK's own detectors read them).
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name"));
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("sluice").build()
    }
}
