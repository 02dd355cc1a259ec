//! A run exported as an OpenTelemetry trace (`OTEL_EXPORTER_OTLP_ENDPOINT`): an OTLP/HTTP
//! receiver in the test takes what sluice posts and decodes it with the protocol's own message
//! types. A span per stage with its status, cache hit and plugin digest, under a span for the run
//! (or under the CI job's span from `TRACEPARENT`); a collector that is down changes nothing but
//! a warning.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message;
use sluice::exit_codes;

use crate::support::{Pipeline, Sandbox, Stage, table};

/// One request as the receiver saw it.
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// An OTLP/HTTP receiver on a free loopback port; answers every POST with an empty
/// `ExportTraceServiceResponse`. It stops with the test process.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Result<Self> {
        Self::start_on(0)
    }

    /// A receiver on `port` of loopback (0: any free one).
    fn start_on(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Ok(Self { port, received })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.received
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }
}

/// HTTP/1.1 requests on one connection, each with a `Content-Length` body (what the exporter
/// sends), until the client closes it.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let (mut length, mut content_type) = (0usize, String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut all) = sink.lock() {
            all.push(Received {
                path,
                content_type,
                body,
            });
        }
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn flag(attributes: &[KeyValue], key: &str) -> Option<bool> {
    match attribute(attributes, key) {
        Some(any_value::Value::BoolValue(b)) => Some(*b),
        _ => None,
    }
}

/// The spans of the one export request sluice made, with the resource's `service.name`.
fn one_export(receiver: &Receiver) -> Result<(String, Vec<Span>, Vec<u8>)> {
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "expected one export request");
    let request = &requests[0];
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(request.content_type, "application/x-protobuf");
    let decoded = ExportTraceServiceRequest::decode(request.body.as_slice())
        .context("the body is not an OTLP ExportTraceServiceRequest")?;
    let resource = decoded
        .resource_spans
        .first()
        .context("no resource spans")?;
    let service = resource
        .resource
        .as_ref()
        .and_then(|r| text(&r.attributes, "service.name"))
        .unwrap_or_default();
    let spans = resource
        .scope_spans
        .iter()
        .flat_map(|scope| scope.spans.iter().cloned())
        .collect();
    Ok((service, spans, request.body.clone()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_run_is_exported_as_a_trace_with_a_span_per_stage() -> Result<()> {
    let receiver = Receiver::start()?;
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("traced")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(
            Stage::new("check", "exec-probe")
                .inputs(["code/a.txt"])
                .config("program", "curl-s3cr3t-t0ken-in-a-name")
                .allow("exec", ["true"]),
        )
        .stage(Stage::new("release", "checksum").inputs(["check/*"]))
        .secret("TOKEN", table([("env", "CI_TEST_TOKEN")]));
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let secret = ("CI_TEST_TOKEN", "s3cr3t-t0ken");
    // Without an endpoint nothing is sent — not even to OTLP's default port, where a receiver
    // listens, and not because of the other OTEL variables; the first run fills the stage cache.
    let default_port = Receiver::start_on(4318)
        .context("the default OTLP/HTTP port must be free for this test")?;
    let (first, _) = sandbox.run_with_env(
        &file,
        &[
            secret,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "not-configured"),
        ],
    )?;
    assert_eq!(first.code, exit_codes::STAGE_FAILED, "{}", first.stderr);
    assert!(
        default_port.requests().is_empty(),
        "exported to the default port"
    );
    let endpoint = receiver.endpoint();
    // An endpoint with the SDK disabled: nothing either.
    let (disabled, _) = sandbox.run_with_env(
        &file,
        &[
            secret,
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    )?;
    assert_eq!(
        disabled.code,
        exit_codes::STAGE_FAILED,
        "{}",
        disabled.stderr
    );
    assert!(
        receiver.requests().is_empty(),
        "exported with OTEL_SDK_DISABLED=true"
    );

    let (ran, report) = sandbox.run_with_env(
        &file,
        &[secret, ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    )?;
    assert_eq!(ran.code, exit_codes::STAGE_FAILED, "{}", ran.stderr);
    let (service, spans, body) = one_export(&receiver)?;
    assert_eq!(service, "sluice");
    assert_eq!(spans.len(), 4, "a span for the run and one per stage");

    let run = spans
        .iter()
        .find(|s| s.name == "sluice run traced")
        .context("no span for the run")?;
    assert!(run.parent_span_id.is_empty(), "the run's span is the root");
    assert_eq!(
        text(&run.attributes, "sluice.run.id").as_deref(),
        Some(report.run_id.as_str())
    );
    assert_eq!(
        run.status.as_ref().map(|s| s.code()),
        Some(StatusCode::Error)
    );
    // sluice names the trace it sent.
    let trace_id = hex(&run.trace_id);
    assert!(
        ran.stderr.contains(&format!(
            "trace {trace_id} sent to {endpoint}/v1/traces (4 spans)"
        )),
        "{}",
        ran.stderr
    );

    for record in &report.stages {
        let span = spans
            .iter()
            .find(|s| text(&s.attributes, "sluice.stage.name").as_deref() == Some(&record.name))
            .with_context(|| format!("no span for stage {}", record.name))?;
        assert_eq!(span.trace_id, run.trace_id);
        assert_eq!(
            span.parent_span_id, run.span_id,
            "{} hangs under the run",
            record.name
        );
        assert_eq!(
            text(&span.attributes, "sluice.stage.status").as_deref(),
            Some(record.status.label())
        );
        assert_eq!(
            text(&span.attributes, "sluice.plugin.sha256"),
            record.plugin.sha256
        );
        assert_eq!(
            flag(&span.attributes, "sluice.stage.cache_hit"),
            Some(record.cache.as_ref().is_some_and(|c| c.hit))
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    let stage = |name: &str| {
        spans
            .iter()
            .find(|s| text(&s.attributes, "sluice.stage.name").as_deref() == Some(name))
    };
    let code = stage("code").context("code")?;
    assert_eq!(flag(&code.attributes, "sluice.stage.cache_hit"), Some(true));
    assert_eq!(code.status.as_ref().map(|s| s.code()), Some(StatusCode::Ok));
    let check = stage("check").context("check")?;
    let status = check.status.as_ref().context("check has no status")?;
    assert_eq!(status.code(), StatusCode::Error);
    assert_eq!(
        Some(&status.message),
        report.stage("check").and_then(|s| s.message.as_ref())
    );
    // The refused program is an event on the stage's span, masked like in the record; it
    // depends on `code`, a link to that span.
    let refused: Vec<_> = check
        .events
        .iter()
        .filter(|e| e.name == "sluice.refused")
        .filter_map(|e| text(&e.attributes, "sluice.refused"))
        .collect();
    assert_eq!(refused, ["exec of `curl-***-in-a-name`"]);
    assert_eq!(
        check.links.iter().map(|l| &l.span_id).collect::<Vec<_>>(),
        [&code.span_id]
    );
    let release = stage("release").context("release")?;
    assert_eq!(
        release
            .status
            .as_ref()
            .map(|s| s.code())
            .unwrap_or_default(),
        StatusCode::Unset,
        "a skipped stage neither succeeded nor failed"
    );
    // The secret never left the machine.
    assert!(
        !String::from_utf8_lossy(&body).contains(secret.1),
        "the secret is in the exported trace"
    );
    Ok(())
}

#[test]
fn a_traced_ci_job_is_the_parent_and_a_collector_that_is_down_is_only_a_warning() -> Result<()> {
    let receiver = Receiver::start()?;
    let sandbox = Sandbox::new()?;
    let file = sandbox.pipeline(
        "pipeline.toml",
        &Pipeline::new("ok")
            .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
            .to_toml(),
    )?;
    let endpoint = receiver.endpoint();
    let (ran, _) = sandbox.run_with_env(
        &file,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &format!("{endpoint}/custom/path"),
            ),
            ("OTEL_SERVICE_NAME", "ci-pipelines"),
            (
                "TRACEPARENT",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    )?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/custom/path"]
    );
    let decoded = ExportTraceServiceRequest::decode(requests[0].body.as_slice())?;
    let resource = decoded
        .resource_spans
        .first()
        .context("no resource spans")?;
    assert_eq!(
        resource
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .as_deref(),
        Some("ci-pipelines")
    );
    let spans: Vec<&Span> = resource.scope_spans.iter().flat_map(|s| &s.spans).collect();
    let run = spans
        .iter()
        .find(|s| s.name == "sluice run ok")
        .context("no run span")?;
    assert_eq!(hex(&run.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&run.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(run.status.as_ref().map(|s| s.code()), Some(StatusCode::Ok));

    // Nothing listens on a port just released: the run is what it was, and recorded.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let started = std::time::Instant::now();
    let (ran, report) = sandbox.run_with_env(
        &file,
        &[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{closed}"),
        )],
    )?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    assert!(
        started.elapsed().as_secs() < 30,
        "a dead collector held the run"
    );
    assert!(
        ran.stderr.contains("warning: the run's trace was not sent"),
        "{}",
        ran.stderr
    );
    assert!(
        std::path::Path::new(&report.run_dir)
            .join("report.json")
            .is_file()
    );

    // A protocol sluice does not speak is named, and nothing is sent.
    let (ran, _) = sandbox.run_with_env(
        &file,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    )?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    assert!(ran.stderr.contains("http/protobuf only"), "{}", ran.stderr);
    assert!(receiver.requests().is_empty());
    Ok(())
}

#[test]
fn a_resumed_run_sends_a_span_per_invocation_each_with_the_stages_it_ran() -> Result<()> {
    let receiver = Receiver::start()?;
    let sandbox = Sandbox::new()?;
    let pipeline = Pipeline::new("gate")
        .stage(Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")])))
        .stage(Stage::new("ship", "checksum").set("approval", "manual"));
    let endpoint = receiver.endpoint();
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let (ran, report) = sandbox.run_with_env(&file, &otel)?;
    assert_eq!(ran.code, exit_codes::AWAITING_APPROVAL, "{}", ran.stderr);
    let resumed =
        sandbox.sluice_with_env(&["resume", &report.run_id, "--approve", "ship"], &otel)?;
    assert_eq!(resumed.code, exit_codes::SUCCESS, "{}", resumed.stderr);

    let mut invocations = Vec::new();
    for request in receiver.requests() {
        let decoded = ExportTraceServiceRequest::decode(request.body.as_slice())?;
        let spans: Vec<Span> = decoded
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.iter().cloned())
            .collect();
        let root = spans
            .iter()
            .find(|s| s.parent_span_id.is_empty())
            .context("no invocation span")?
            .clone();
        let stages: Vec<String> = spans
            .iter()
            .filter_map(|s| text(&s.attributes, "sluice.stage.name"))
            .collect();
        invocations.push((root, stages));
    }
    let names: Vec<(&str, Vec<&str>)> = invocations
        .iter()
        .map(|(root, stages)| {
            (
                root.name.as_str(),
                stages.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("sluice run gate", vec!["code"]),
            ("sluice resume gate", vec!["ship"])
        ]
    );
    // One trace, two distinct invocation spans.
    assert_eq!(invocations[0].0.trace_id, invocations[1].0.trace_id);
    assert_ne!(invocations[0].0.span_id, invocations[1].0.span_id);
    Ok(())
}
