//! `baseline`: a bare tonic unary RPC that echoes its payload, served in this process with
//! tonic's defaults (no layers, no auth, no storage) and called closed-loop by as many callers
//! as `throughput` has senders, over as many connections. What this machine's RPC stack can
//! do, so Echo's figures read as a fraction of it.
//!
//! The service is written out by hand (what tonic's codegen would emit): a proto for it would
//! put bench-only types into the public API crate. It also serves `Watch`, a server-streaming
//! method whose streams are fed through a [`Hub`], for the fan-out floor
//! ([`super::stream_floor`]).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::cli::{BaselineArgs, Global};
use crate::client::Pool;
use crate::report::{Progress, Report, Setup};
use crate::stats::{Latencies, per_second};

const SERVICE: &str = "echo.bench.v1.Baseline";
const METHOD_PATH: &str = "/echo.bench.v1.Baseline/Echo";
/// The server-streaming method of the fan-out floor.
pub const WATCH_PATH: &str = "/echo.bench.v1.Baseline/Watch";
/// A Watch stream's channel capacity (presence's default `watch_buffer`).
const WATCH_BUFFER: usize = 256;

/// The senders of every open Watch stream, in the order they were opened.
pub type Hub = Arc<Mutex<Vec<mpsc::Sender<Payload>>>>;

/// The request and the answer: bytes, echoed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// Echoed back unchanged.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
}

/// The server side: Echo (unary) and Watch (server-streaming, fed through `hub`).
#[derive(Clone, Debug, Default)]
struct Baseline {
    hub: Hub,
}

impl tonic::server::NamedService for Baseline {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for Baseline
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let hub = self.hub.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Payload, Payload>::default());
            match request.uri().path() {
                METHOD_PATH => Ok(grpc.unary(EchoMethod, request).await),
                WATCH_PATH => Ok(grpc.server_streaming(WatchMethod(hub), request).await),
                _ => Ok(Status::unimplemented("only Echo and Watch are served").into_http()),
            }
        })
    }
}

struct WatchMethod(Hub);

type Items = Pin<Box<dyn futures::Stream<Item = Result<Payload, Status>> + Send>>;

impl tonic::server::ServerStreamingService<Payload> for WatchMethod {
    type Response = Payload;
    type ResponseStream = Items;
    type Future = Ready<Result<Response<Items>, Status>>;

    fn call(&mut self, _request: Request<Payload>) -> Self::Future {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        let items = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((Ok(item), rx))
        });
        ready(Ok(Response::new(Box::pin(items))))
    }
}

/// The service served on 127.0.0.1 with tonic's defaults until the token is cancelled.
pub struct Served {
    /// Where.
    pub addr: SocketAddr,
    /// Cancel to stop it.
    pub shutdown: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Served {
    /// Serve Echo and Watch (fed through `hub`).
    pub async fn start(hub: Hub) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // What `Server::serve(addr)` does with tonic's defaults: TCP_NODELAY on.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Baseline { hub })
                .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()),
        );
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// Stop and wait for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

struct EchoMethod;

impl tonic::server::UnaryService<Payload> for EchoMethod {
    type Response = Payload;
    type Future = Ready<Result<Response<Payload>, Status>>;

    fn call(&mut self, request: Request<Payload>) -> Self::Future {
        ready(Ok(Response::new(request.into_inner())))
    }
}

/// One call of the echo RPC.
async fn call(channel: &tonic::transport::Channel, payload: Payload) -> Result<Payload, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(METHOD_PATH);
    let codec = ProstCodec::<Payload, Payload>::default();
    grpc.unary(Request::new(payload), path, codec)
        .await
        .map(Response::into_inner)
}

/// Run the scenario.
pub async fn run(args: &BaselineArgs, global: &Global) -> anyhow::Result<Vec<Report>> {
    let served = Served::start(Hub::default()).await?;
    let pool = Pool::connect(
        &format!("http://{}", served.addr),
        global.connections,
        global.streams_per_connection,
    )
    .await;
    let outcome = match pool {
        Ok(pool) => load(args, global, &pool).await,
        Err(error) => Err(error),
    };
    served.stop().await;
    outcome
}

async fn load(args: &BaselineArgs, global: &Global, pool: &Pool) -> anyhow::Result<Vec<Report>> {
    let payload = Payload {
        data: bytes::Bytes::from(vec![b'x'; args.payload]),
    };
    let duration = Duration::from_secs(args.duration);
    let bar = Progress::new(global.quiet).bar(args.duration, "baseline seconds");
    let started = Instant::now();
    let deadline = started + duration;
    let callers = (0..args.concurrency.max(1)).map(|index| {
        let channel = pool.get(index).clone();
        let payload = payload.clone();
        async move {
            let mut latencies = Latencies::new();
            let mut failed = 0u64;
            while Instant::now() < deadline {
                let call_started = Instant::now();
                match call(&channel, payload.clone()).await {
                    Ok(_) => latencies.record(call_started.elapsed()),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        }
    });
    let ticker = async {
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            bar.set_position(started.elapsed().as_secs().min(args.duration));
        }
    };
    let (results, ()) = tokio::join!(futures::future::join_all(callers), ticker);
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut latencies = Latencies::new();
    let mut failed = 0;
    for (caller, caller_failed) in results {
        latencies.merge(&caller);
        failed += caller_failed;
    }
    let calls_per_s = per_second(latencies.count(), elapsed);
    let summary = latencies.summary();
    let setup = Setup {
        backend: "bare tonic".into(),
        server: "in-process".into(),
    };
    let line = format!(
        "{} callers, {} connections, {} B payload: {calls_per_s} calls/s | {summary}{}",
        args.concurrency,
        pool.len(),
        args.payload,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    let figures = json!({
        "callers": args.concurrency,
        "client_connections": pool.len(),
        "payload_bytes": args.payload,
        "duration_s": args.duration,
        "calls_per_s": calls_per_s,
        "latency": summary,
        "failed": failed,
    });
    Ok(vec![Report::new("baseline", &setup, line, figures)])
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_payload_is_a_proto_bytes_field() {
        let payload = Payload {
            data: bytes::Bytes::from_static(b"hi"),
        };
        // Field 1, wire type 2 (length-delimited), length 2, "hi".
        assert_eq!(payload.encode_to_vec(), vec![0x0a, 2, b'h', b'i']);
        assert_eq!(
            Payload::decode(&[0x0a, 2, b'h', b'i'][..]).ok(),
            Some(payload)
        );
    }
}
