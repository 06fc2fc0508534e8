//! gRPC framing by hand, below the protobuf layer: length-prefixed frames as bytes, sent over
//! HTTP/2 (through a tonic `Channel` used as a plain HTTP/2 client, so any header and any body
//! go out as given) and over HTTP/1.1 as grpc-web or grpc-web-text; the answer's status read
//! from the headers of a trailers-only answer, the HTTP/2 trailers, or grpc-web's trailer
//! frame (tests/malformed_requests.rs, tests/fuzz_frames.rs).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderMap;
use tonic::codegen::Body as _;
use tonic::transport::Channel;
use tower::{Service as _, ServiceExt as _};

/// A frame: flag byte (0 plain, 1 compressed, 0x80 grpc-web trailers), big-endian length
/// `announced`, then `payload` (which need not be `announced` bytes long).
pub fn frame(flag: u8, announced: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&announced.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A well-formed uncompressed frame holding `payload`.
pub fn message_frame(payload: &[u8]) -> Vec<u8> {
    frame(0, u32::try_from(payload.len()).expect("small"), payload)
}

/// What the server answered a hand-made request.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub http: u16,
    /// The gRPC status: `None` when the answer carried none (a plain HTTP refusal), OK as
    /// `Some(Status{code: Ok})`.
    pub status: Option<tonic::Status>,
    /// The answer's `x-request-id`, empty when it had none.
    pub request_id: String,
    /// Whether a stream opened and went on sending without ending (streaming RPCs).
    pub streaming: bool,
}

impl Answer {
    /// The gRPC code, if the answer carried one.
    pub fn code(&self) -> Option<tonic::Code> {
        self.status.as_ref().map(tonic::Status::code)
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The status in `headers`, with grpc-status `0` as an OK status.
fn status_in(headers: &HeaderMap) -> Option<tonic::Status> {
    headers.get("grpc-status")?;
    tonic::Status::from_header_map(headers)
}

/// A grpc-web POST over HTTP/1.1 to `path`: `content_type` (e.g.
/// `application/grpc-web+proto`; `None` sends none), a bearer `token`, a `grpc-encoding`.
pub struct WebCall<'a> {
    pub addr: SocketAddr,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub token: Option<&'a str>,
    pub encoding: Option<&'a str>,
    /// How long an open answer may stay silent before it counts as a stream (10 s for a
    /// unary call).
    pub stream_wait: Duration,
}

impl WebCall<'_> {
    /// Sends `body`, base64-encoded when `text` (the content type is the caller's, to match
    /// or not). The status comes from the headers of a trailers-only answer or from the
    /// trailer frame (flag 0x80) of the body.
    pub async fn send(&self, body: Vec<u8>, text: bool) -> Option<Answer> {
        tokio::time::timeout(Duration::from_secs(10), self.call(body, text))
            .await
            .ok()
    }

    async fn call(&self, body: Vec<u8>, text: bool) -> Answer {
        let http = reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("client");
        let mut request = http
            .post(format!("http://{}{}", self.addr, self.path))
            .header("x-grpc-web", "1");
        if let Some(content_type) = self.content_type {
            request = request.header("content-type", content_type);
        }
        if self
            .content_type
            .is_some_and(|t| t.starts_with("application/grpc-web-text"))
        {
            // As grpc-web-text clients do: the answer in base64 too.
            request = request.header("accept", "application/grpc-web-text");
        }
        if let Some(token) = self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(encoding) = self.encoding {
            request = request.header("grpc-encoding", encoding);
        }
        let body = if text { base64_of(&body) } else { body };
        let mut response = request.body(body).send().await.expect("an answer");
        let mut answer = Answer {
            http: response.status().as_u16(),
            status: None,
            request_id: request_id(response.headers()),
            streaming: false,
        };
        let mut headers = response.headers().clone();
        let answer_is_text = headers
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc-web-text"));
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.stream_wait, response.chunk()).await {
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                Ok(Ok(None)) => break,
                Ok(Err(error)) => panic!("the answer's body broke off: {error}"),
                Err(_) => {
                    answer.streaming = true;
                    break;
                }
            }
        }
        let body = if answer_is_text {
            base64_decode(&body)
        } else {
            body
        };
        // Trailer frames (flag 0x80) hold `name: value` lines.
        let mut rest = &body[..];
        while rest.len() >= 5 {
            let length = u32::from_be_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
            let (frame, after) = rest[5..].split_at(length.min(rest.len() - 5));
            if rest[0] & 0x80 != 0 {
                for line in String::from_utf8_lossy(frame).split("\r\n") {
                    if let Some((name, value)) = line.split_once(':') {
                        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap();
                        headers.insert(name, value.trim().parse().expect("header value"));
                    }
                }
            }
            rest = after;
        }
        answer.status = status_in(&headers);
        answer
    }
}

pub fn base64_of(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// grpc-web-text's answer: each frame base64-encoded on its own (padding inside the body),
/// so decoded four characters at a time.
fn base64_decode(text: &[u8]) -> Vec<u8> {
    text.chunks(4)
        .flat_map(|quantum| {
            base64::engine::general_purpose::STANDARD
                .decode(quantum)
                .expect("a grpc-web-text answer is base64")
        })
        .collect()
}

/// POSTs `body` as grpc-web to `path` on `addr`, signed in as `token` when given; the
/// answer's status (which it must have) and its `x-request-id`.
pub async fn grpc_web(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (tonic::Status, String) {
    let call = WebCall {
        addr,
        path,
        content_type: Some("application/grpc-web+proto"),
        token,
        encoding: None,
        stream_wait: Duration::from_secs(10),
    };
    let answer = call.send(body, false).await.expect("an answer within 10 s");
    assert_eq!(answer.http, 200);
    (answer.status.expect("a grpc-status"), answer.request_id)
}

/// Sends `body` to `path` over HTTP/2 on `channel` with `headers` as given (the caller adds
/// `content-type`, `te` and the rest, or leaves them out). The status comes from a
/// trailers-only answer or the trailers; an answer whose body stays silent for `stream_wait`
/// (an open stream; pass 10 s for a unary call) counts as `streaming`. `None` when no answer
/// came within 10 s.
pub async fn grpc_h2(
    channel: Channel,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    stream_wait: Duration,
) -> Option<Answer> {
    let mut request = http::Request::builder().method("POST").uri(path);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let body = tonic::body::Body::new(reqwest::Body::from(body));
    let request = request.body(body).expect("a request");
    let call = async {
        let mut channel = channel;
        let channel = channel.ready().await.expect("channel ready");
        let response = channel.call(request).await.expect("an HTTP/2 answer");
        let (parts, mut body) = response.into_parts();
        let mut answer = Answer {
            http: parts.status.as_u16(),
            status: status_in(&parts.headers),
            request_id: request_id(&parts.headers),
            streaming: false,
        };
        if answer.status.is_some() {
            return answer;
        }
        loop {
            let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
            match tokio::time::timeout(stream_wait, next).await {
                Ok(Some(Ok(frame))) => {
                    // A message: read on until the trailers, or until the stream idles.
                    if let Ok(trailers) = frame.into_trailers() {
                        answer.status = status_in(&trailers);
                        return answer;
                    }
                }
                Ok(Some(Err(status))) => {
                    answer.status = Some(status);
                    return answer;
                }
                Ok(None) => return answer,
                Err(_) => {
                    answer.streaming = true;
                    return answer;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .ok()
}
