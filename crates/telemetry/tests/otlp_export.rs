//! OTLP trace export end to end (DESIGN §11): an OTLP/gRPC receiver runs inside the test, the
//! provider from `otlp_provider` exports to it, and what arrives is checked span by span. Also
//! the W3C `traceparent` helpers, which carry a trace from one process to the next.

use std::time::Duration;

use echo_telemetry::testing::otlp_receiver as start_receiver;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::time::timeout;
use tracing_subscriber::layer::SubscriberExt;

/// Long enough for a slow CI machine, short enough that a broken export fails instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

/// A trace id and parent span id chosen by "another process".
const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A subscriber that only feeds spans to `provider`, for use as a scoped (not global) default.
fn subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("echo-test")))
}

/// The `service.name` resource attribute of an export, if present.
fn service_name(request: &ExportTraceServiceRequest) -> Vec<String> {
    request
        .resource_spans
        .iter()
        .filter_map(|rs| rs.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn spans(request: &ExportTraceServiceRequest) -> impl Iterator<Item = &Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
}

// Multi-threaded: `force_flush` blocks its thread while the exporter's tonic channel needs the
// runtime to make progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_configured_endpoint() {
    let (endpoint, mut received) = start_receiver().await;
    let provider = echo_telemetry::otlp_provider(&endpoint, "echo-test").unwrap();

    tracing::subscriber::with_default(subscriber(&provider), || {
        tracing::info_span!("send_message").in_scope(|| {
            tracing::info_span!("store_message").in_scope(|| {});
        });
    });
    let flusher = provider.clone();
    timeout(
        WAIT,
        tokio::task::spawn_blocking(move || flusher.force_flush()),
    )
    .await
    .expect("force_flush timed out")
    .unwrap()
    .expect("force_flush failed");

    let mut exports = Vec::new();
    let mut names = Vec::new();
    while !(names.contains(&"send_message".to_owned())
        && names.contains(&"store_message".to_owned()))
    {
        let export = timeout(WAIT, received.recv())
            .await
            .expect("no spans reached the receiver")
            .unwrap();
        names.extend(spans(&export).map(|s| s.name.clone()));
        exports.push(export);
    }

    let all: Vec<&Span> = exports.iter().flat_map(spans).collect();
    let parent = all.iter().find(|s| s.name == "send_message").unwrap();
    let child = all.iter().find(|s| s.name == "store_message").unwrap();
    assert_eq!(child.parent_span_id, parent.span_id);
    assert_eq!(child.trace_id, parent.trace_id);
    assert!(
        parent.parent_span_id.is_empty(),
        "send_message is a root span"
    );
    for export in &exports {
        assert_eq!(service_name(export), ["echo-test"]);
    }

    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn traceparent_round_trips_through_a_span() {
    // No exporter: spans are still recorded and sampled, which is all the context needs.
    let provider = SdkTracerProvider::builder().build();
    tracing::subscriber::with_default(subscriber(&provider), || {
        assert_eq!(
            echo_telemetry::current_traceparent(),
            None,
            "no span, no context"
        );

        let span = tracing::info_span!("rpc");
        echo_telemetry::set_parent(&span, REMOTE);
        let ours = span.in_scope(echo_telemetry::current_traceparent).unwrap();
        let [version, trace, span_id, flags]: [&str; 4] =
            ours.split('-').collect::<Vec<_>>().try_into().unwrap();
        assert_eq!(version, "00");
        assert_eq!(
            trace, "4bf92f3577b34da6a3ce929d0e0e4736",
            "same trace as the caller"
        );
        assert_ne!(span_id, "00f067aa0ba902b7", "a new span, not the caller's");
        assert_eq!(flags, "01");

        // Handing ours on continues the same trace one hop further.
        let next = tracing::info_span!("consume");
        echo_telemetry::set_parent(&next, &ours);
        let theirs = next.in_scope(echo_telemetry::current_traceparent).unwrap();
        assert!(theirs.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    });
}

#[test]
fn an_invalid_traceparent_starts_a_new_trace() {
    let provider = SdkTracerProvider::builder().build();
    tracing::subscriber::with_default(subscriber(&provider), || {
        let span = tracing::info_span!("rpc");
        echo_telemetry::set_parent(&span, "not-a-traceparent");
        let ours = span.in_scope(echo_telemetry::current_traceparent).unwrap();
        assert!(!ours.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    });
}

#[test]
fn no_opentelemetry_layer_means_no_traceparent() {
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let span = tracing::info_span!("rpc");
        echo_telemetry::set_parent(&span, REMOTE);
        assert_eq!(span.in_scope(echo_telemetry::current_traceparent), None);
    });
}
