//! One trace from the edge to every consumer (DESIGN §11). In split mode on the real backends,
//! a SendMessage sent through the edge with a client's `traceparent` produces, in that trace,
//! the edge's RPC span, the message service's RPC span below it, the outbox relay's
//! `outbox.publish` span below that, and the notification consumer's `event.consume` span of
//! the MessageCreated below the publish. In the embedded whole mesh (one process, no edge hop,
//! no relay) the consume span hangs below the one RPC span. The spans are exported over
//! OTLP/gRPC to a receiver inside the test, as a collector would receive them.
//!
//! The SendMessage is stored by a group-commit task, outside the call: the event still carries
//! the call's trace context (it rides with the queued send). Both backends run in one test,
//! one after the other, because the OpenTelemetry layer is process-global.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use echo_telemetry::testing::otlp_receiver;
use echo_testkit::{Backend, TestMesh};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt;

/// Long enough for a slow CI machine; a broken chain fails instead of hanging.
const WAIT: Duration = Duration::from_secs(30);

/// The calling client's span: each backend's run gets its own trace id (distinct by
/// construction: the last byte is the run's number).
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn trace_id(run: u8) -> String {
    format!("4bf92f3577b34da6a3ce929d0e0e47{run:02x}")
}

/// The services in one mesh and the edge in another, forwarding to it (sharing the data dir,
/// so the same signing key and service secret): split mode needs the real backends.
async fn split() -> Option<(TestMesh, TestMesh)> {
    let backend = Backend::Real;
    let services =
        TestMesh::start_with(backend, "auth,user,message,presence,notification", |_| {}).await?;
    let edge = services.start_edge().await;
    Some((services, edge))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// The spans of one trace received so far, by span id.
#[derive(Default)]
struct Trace {
    spans: HashMap<String, Span>,
}

impl Trace {
    fn add(&mut self, export: ExportTraceServiceRequest, trace: &str) {
        let spans = export
            .resource_spans
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans);
        for span in spans.filter(|s| hex(&s.trace_id) == trace) {
            self.spans.insert(hex(&span.span_id), span);
        }
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.values().filter(move |s| s.name == name)
    }

    /// The names of `span`'s ancestors inside the trace, nearest first, ending with the
    /// client's span id if the chain reaches it unbroken.
    fn ancestry(&self, span: &Span) -> Vec<String> {
        let mut chain = Vec::new();
        let mut parent = hex(&span.parent_span_id);
        while let Some(up) = self.spans.get(&parent) {
            chain.push(up.name.clone());
            parent = hex(&up.parent_span_id);
        }
        chain.push(parent);
        chain
    }

    /// The consumers whose `event.consume` of a ConversationEventRecorded is in the trace.
    fn consumers(&self) -> Vec<&str> {
        self.named("event.consume")
            .filter(|s| {
                attribute(s, "event_type") == Some("echo.events.v1.ConversationEventRecorded")
            })
            .filter_map(|s| attribute(s, "consumer"))
            .collect()
    }
}

/// Flush the provider (on a blocking thread: the exporter needs the runtime meanwhile).
async fn flush(provider: &SdkTracerProvider) {
    let flusher = provider.clone();
    tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || flusher.force_flush()),
    )
    .await
    .expect("force_flush timed out")
    .unwrap()
    .expect("force_flush failed");
}

async fn one_trace_through(
    backend: Backend,
    run: u8,
    provider: &SdkTracerProvider,
    received: &mut mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
) {
    // The mesh the client calls, the services' mesh when they run apart, and the spans the
    // consumer's chain must pass, nearest first.
    let (edge, services, hops): (TestMesh, Option<TestMesh>, &[&str]) = match backend {
        Backend::Real => {
            let Some((services, edge)) = split().await else {
                return;
            };
            (edge, Some(services), &["outbox.publish", "rpc", "rpc"])
        }
        Backend::Embedded => {
            let mesh = TestMesh::start(backend).await.expect("embedded");
            (mesh, None, &["rpc"])
        }
    };
    // Sign-ups where auth runs (its codes are captured there); every call after through `edge`.
    let auth = services.as_ref().unwrap_or(&edge);
    let ada = auth.sign_up().await;
    let bob = auth.sign_up().await;
    let conversation = common::messages::direct(&edge, &ada, &bob).await;

    let trace = trace_id(run);
    let mut request = tonic::Request::new(common::messages::send_request(
        &conversation,
        &format!("traced-{run}"),
        common::messages::text("follow me"),
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{CLIENT_SPAN}-01").parse().unwrap(),
    );
    edge.message_as(&ada)
        .send_message(request)
        .await
        .expect("send through the edge");

    // Notification's pipeline consumes every conversation event (for pushes).
    let wanted = ["notification.messages"];
    let mut spans = Trace::default();
    let deadline = Instant::now() + WAIT;
    loop {
        flush(provider).await;
        while let Ok(export) = received.try_recv() {
            spans.add(export, &trace);
        }
        let consumers = spans.consumers();
        if wanted.iter().all(|w| consumers.contains(w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{backend:?}: consumers traced: {consumers:?}; spans of the trace: {:?}",
            spans.spans.values().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first RPC span continues the client's; in split mode the service's continues the
    // edge's.
    let method = "/echo.message.v1.MessageService/SendMessage";
    let mut chains: Vec<Vec<String>> = spans
        .named("rpc")
        .filter(|s| attribute(s, "method") == Some(method))
        .map(|s| spans.ancestry(s))
        .collect();
    chains.sort_by_key(Vec::len);
    let expected: Vec<Vec<String>> = (0..hops.iter().filter(|h| **h == "rpc").count())
        .map(|depth| {
            let mut chain = vec!["rpc".to_owned(); depth];
            chain.push(CLIENT_SPAN.to_owned());
            chain
        })
        .collect();
    assert_eq!(chains, expected, "{backend:?}: the RPC spans' ancestry");

    // Every consumer's span hangs below the service's RPC (through the relay's publish on
    // NATS), unbroken up to the client.
    for consume in spans
        .named("event.consume")
        .filter(|s| attribute(s, "event_type") == Some("echo.events.v1.ConversationEventRecorded"))
    {
        let chain = spans.ancestry(consume);
        let names: Vec<&str> = chain
            .iter()
            .map(String::as_str)
            .filter(|n| *n == "rpc" || *n == "outbox.publish")
            .collect();
        assert_eq!(
            names,
            hops,
            "{backend:?}: {:?} consumed below {chain:?}",
            attribute(consume, "consumer")
        );
        assert_eq!(
            chain.last().map(String::as_str),
            Some(CLIENT_SPAN),
            "{backend:?}: the chain reaches the client: {chain:?}"
        );
    }
    edge.shutdown().await;
    if let Some(services) = services {
        services.shutdown().await;
    }
}

// Multi-threaded: `force_flush` blocks its thread while the exporter's tonic channel needs the
// runtime to make progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_one_trace_from_the_edge_to_every_consumer() {
    let (endpoint, mut received) = otlp_receiver().await;
    let provider = echo_telemetry::otlp_provider(&endpoint, "echo-traces-test").unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("echo")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    one_trace_through(Backend::Embedded, 1, &provider, &mut received).await;
    one_trace_through(Backend::Real, 2, &provider, &mut received).await;
}
