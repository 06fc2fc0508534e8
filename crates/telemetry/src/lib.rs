//! Logging and tracing for every target (DESIGN §11): structured JSON logs (or text for a
//! terminal), filtered by `log_filter`, and OTLP/gRPC trace export when an endpoint is set.
//! W3C trace context (`traceparent`) carries a trace across processes: edge → services → bus.

use std::collections::HashMap;

use echo_config::LogFormat;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[cfg(feature = "testing")]
pub mod testing;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log_filter` is not valid `tracing` filter syntax.
    #[error("invalid log_filter: {0}")]
    Filter(String),
    /// The OTLP exporter could not be built.
    #[error("otlp exporter: {0}")]
    Otlp(String),
}

/// Flushes buffered spans when dropped (at the end of `main`).
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// The tracer provider exporting to `endpoint` over OTLP/gRPC, batching spans.
pub fn otlp_provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Install the global subscriber: logs to stdout in `format`, spans to `otlp_endpoint` if set.
/// `service` names this process in traces (e.g. `echo-message`).
pub fn init(
    format: LogFormat,
    filter: &str,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    // For libraries that propagate through the global propagator; our own helpers below use
    // `TraceContextPropagator` directly, so they work whether or not `init` ran.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    let provider = otlp_endpoint
        .map(|endpoint| otlp_provider(endpoint, service))
        .transpose()?;
    let traces = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("echo")));
    // A second init in one process (tests) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// The header (and event field) that carries W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C `traceparent` of the current tracing span, to hand to another process (a gRPC
/// header, an event's `trace_parent`). `None` when there is no valid span context: no span, or
/// no OpenTelemetry layer in the subscriber.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Make `span` a child of the remote span that `traceparent` names, so its trace continues
/// the caller's. Call it before the span is first entered; an unparsable `traceparent` (or a
/// span already started, or no OpenTelemetry layer) leaves the span as it was.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // The only errors are "no layer" and "already started": both mean nothing to continue.
        let _ = span.set_parent(cx);
    }
}
