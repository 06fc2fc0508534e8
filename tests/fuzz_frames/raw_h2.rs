//! HTTP/2 abused by hand, as raw frames on a TCP connection of its own (no client library
//! would send most of these): a stream reset right after its HEADERS and one mid-body, HEADERS
//! without `:path`, a 1 MiB header value over CONTINUATION frames, WINDOW_UPDATE of 0 and one
//! that overflows the window, a PING flood and a rapid-reset flood (CVE-2023-44487).
//!
//! Checked for each: something comes back within 10 s (an answer, RST_STREAM, GOAWAY or a
//! close: no hang); a stream-level abuse leaves its connection serving (the next call on it is
//! answered); a bystander connection opened before keeps working (it answers a PING); and a
//! normal call on a new connection is answered.
//!
//! One piece: the hand-made HTTP/2 client (frame and HPACK encoding, `Conn` and the `Seen` its
//! reader task fills) exists only for these abuses, and the verdicts (`reacted`, `went_away`, the
//! bystander's PING acks) read that `Seen`; split, the client would become support code with one
//! caller, apart from the checks that depend on what it records.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echo_proto::echo::user::v1 as user_pb;
use echo_testkit::{SignedIn, TestMesh};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::common::frames::message_frame;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 0x8;

/// A frame's bytes.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut bytes = vec![len[1], len[2], len[3], kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits 0.
fn hpack_int(mut value: usize, n: u32, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literals without indexing (no Huffman, no table: a decoder's plainest
/// input).
fn header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(0);
        hpack_int(name.len(), 7, &mut block);
        block.extend_from_slice(name.as_bytes());
        hpack_int(value.len(), 7, &mut block);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// What the server has sent on one connection.
#[derive(Debug, Default)]
struct Seen {
    /// The error code of its GOAWAY.
    goaway: Option<u32>,
    /// RST_STREAM error codes by stream.
    resets: HashMap<u32, u32>,
    /// Streams it sent HEADERS on (an answer).
    answered: HashSet<u32>,
    ping_acks: u64,
    closed: bool,
}

/// A raw HTTP/2 connection: frames out through a writer task, frames in recorded by a reader
/// task that acknowledges the server's SETTINGS and PINGs.
struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
    token: String,
}

impl Conn {
    async fn open(mesh: &TestMesh, token: &str) -> Conn {
        let tcp = TcpStream::connect(mesh.addr()).await.expect("connect");
        let (mut read, mut write) = tcp.into_split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = outgoing.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (record, acks) = (seen.clone(), out.clone());
        tokio::spawn(async move {
            let mut header = [0u8; 9];
            loop {
                if read.read_exact(&mut header).await.is_err() {
                    break;
                }
                let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                let (kind, flags) = (header[3], header[4]);
                let stream = u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff;
                let mut payload = vec![0; len];
                if read.read_exact(&mut payload).await.is_err() {
                    break;
                }
                let code = || u32::from_be_bytes(payload[..4].try_into().unwrap());
                let mut seen = record.lock().unwrap();
                match kind {
                    HEADERS => _ = seen.answered.insert(stream),
                    RST_STREAM => _ = seen.resets.insert(stream, code()),
                    GOAWAY => {
                        seen.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
                    }
                    SETTINGS if flags & ACK == 0 => _ = acks.send(frame(SETTINGS, ACK, 0, &[])),
                    PING if flags & ACK != 0 => seen.ping_acks += 1,
                    PING => _ = acks.send(frame(PING, ACK, 0, &payload)),
                    _ => {}
                }
            }
            record.lock().unwrap().closed = true;
        });
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend(frame(SETTINGS, 0, 0, &[]));
        let conn = Conn {
            out,
            seen,
            token: token.to_owned(),
        };
        conn.send(preface);
        conn
    }

    fn send(&self, bytes: Vec<u8>) {
        let _ = self.out.send(bytes);
    }

    /// A gRPC request's headers to `path`, without `leave_out`.
    fn request_headers(&self, path: &str, leave_out: &str) -> Vec<u8> {
        let bearer = format!("Bearer {}", self.token);
        let headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", bearer.as_str()),
        ];
        let kept: Vec<_> = headers
            .into_iter()
            .filter(|(n, _)| *n != leave_out)
            .collect();
        header_block(&kept)
    }

    /// A whole GetMe call on `stream`.
    fn get_me(&self, stream: u32) {
        let headers = self.request_headers(GET_ME, "");
        let mut bytes = frame(HEADERS, END_HEADERS, stream, &headers);
        bytes.extend(frame(DATA, END_STREAM, stream, &message_frame(&[])));
        self.send(bytes);
    }

    /// Waits up to 10 s for `done` to hold; whether it did.
    async fn until(&self, done: impl Fn(&Seen) -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if done(&self.seen.lock().unwrap()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// What the connection says now, for the report.
    fn outcome(&self) -> String {
        let seen = self.seen.lock().unwrap();
        let resets: HashSet<u32> = seen.resets.values().copied().collect();
        format!(
            "goaway {:?}, {} streams reset (codes {resets:?}), {} answered, {} ping acks, closed {}",
            seen.goaway,
            seen.resets.len(),
            seen.answered.len(),
            seen.ping_acks,
            seen.closed
        )
    }
}

const GET_ME: &str = "/echo.user.v1.UserService/GetMe";
const SEND: &str = "/echo.message.v1.MessageService/SendMessage";

/// Whether the server reacted to stream 1's abuse: answered it, reset it, or went away.
fn reacted(seen: &Seen) -> bool {
    seen.answered.contains(&1)
        || seen.resets.contains_key(&1)
        || seen.goaway.is_some()
        || seen.closed
}

fn went_away(seen: &Seen) -> bool {
    seen.goaway.is_some() || seen.closed
}

/// One abuse on a fresh connection; whether it is a stream-level one (the connection must go
/// on serving).
async fn abuse(conn: &Conn, name: &str) -> bool {
    let open = |stream: u32, path: &str| {
        frame(
            HEADERS,
            END_HEADERS,
            stream,
            &conn.request_headers(path, ""),
        )
    };
    match name {
        "reset right after HEADERS" => {
            let mut bytes = open(1, SEND);
            bytes.extend(frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()));
            conn.send(bytes);
            true
        }
        "reset mid-body" => {
            let mut bytes = open(1, SEND);
            let mut partial = vec![0, 0, 0, 0, 100];
            partial.extend_from_slice(&[0x0a; 10]);
            bytes.extend(frame(DATA, 0, 1, &partial));
            bytes.extend(frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()));
            conn.send(bytes);
            true
        }
        "HEADERS without :path" => {
            let headers = conn.request_headers(GET_ME, ":path");
            conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, &headers));
            assert!(
                conn.until(reacted).await,
                "{name}: no reaction: {}",
                conn.outcome()
            );
            false
        }
        "a 1 MiB header value" => {
            let junk = "j".repeat(1 << 20);
            let mut block = conn.request_headers(GET_ME, "");
            block.extend(header_block(&[("x-junk", &junk)]));
            let mut pieces = block.chunks(16_384);
            let mut bytes = frame(HEADERS, END_STREAM, 1, pieces.next().unwrap());
            let rest: Vec<_> = pieces.collect();
            for (i, piece) in rest.iter().enumerate() {
                let flags = if i + 1 == rest.len() { END_HEADERS } else { 0 };
                bytes.extend(frame(CONTINUATION, flags, 1, piece));
            }
            conn.send(bytes);
            assert!(
                conn.until(reacted).await,
                "{name}: no reaction: {}",
                conn.outcome()
            );
            false
        }
        "WINDOW_UPDATE of 0 on the connection" => {
            conn.send(frame(WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes()));
            assert!(
                conn.until(went_away).await,
                "{name}: still open: {}",
                conn.outcome()
            );
            false
        }
        "WINDOW_UPDATE of 0 on a stream" => {
            let mut bytes = open(1, SEND);
            bytes.extend(frame(WINDOW_UPDATE, 0, 1, &0u32.to_be_bytes()));
            conn.send(bytes);
            assert!(
                conn.until(reacted).await,
                "{name}: no reaction: {}",
                conn.outcome()
            );
            false
        }
        "a window overflowing 2^31-1" => {
            conn.send(frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()));
            assert!(
                conn.until(went_away).await,
                "{name}: still open: {}",
                conn.outcome()
            );
            false
        }
        "100,000 PINGs" => {
            let ping = frame(PING, 0, 0, &[7; 8]);
            for _ in 0..100 {
                conn.send(ping.repeat(1_000));
            }
            let flooded = |seen: &Seen| seen.ping_acks >= 100_000 || went_away(seen);
            assert!(conn.until(flooded).await, "{name}: {}", conn.outcome());
            false
        }
        "10,000 streams opened and reset" => {
            for batch in 0..100u32 {
                let mut bytes = Vec::new();
                for i in 0..100u32 {
                    let stream = 2 * (batch * 100 + i) + 1;
                    bytes.extend(open(stream, GET_ME));
                    bytes.extend(frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()));
                }
                conn.send(bytes);
            }
            conn.get_me(20_001);
            let settled = |seen: &Seen| went_away(seen) || seen.answered.contains(&20_001);
            assert!(conn.until(settled).await, "{name}: {}", conn.outcome());
            false
        }
        other => panic!("no abuse named {other}"),
    }
}

pub const ABUSES: [&str; 9] = [
    "reset right after HEADERS",
    "reset mid-body",
    "HEADERS without :path",
    "a 1 MiB header value",
    "WINDOW_UPDATE of 0 on the connection",
    "WINDOW_UPDATE of 0 on a stream",
    "a window overflowing 2^31-1",
    "100,000 PINGs",
    "10,000 streams opened and reset",
];

/// Runs every abuse, asserting the above; what the server did for each, one per line.
pub async fn abuse_all(mesh: &TestMesh, user: &SignedIn) -> String {
    let token = &user.tokens.access_token;
    let bystander = Conn::open(mesh, token).await;
    let mut report = Vec::new();
    for (n, name) in ABUSES.iter().enumerate() {
        let started = Instant::now();
        let conn = Conn::open(mesh, token).await;
        let stream_level = abuse(&conn, name).await;
        if stream_level {
            // The connection goes on: the next call on it is answered.
            conn.get_me(3);
            let answered = |seen: &Seen| seen.answered.contains(&3);
            assert!(
                conn.until(answered).await,
                "{name}: the connection stopped serving: {}",
                conn.outcome()
            );
            assert!(
                !went_away(&conn.seen.lock().unwrap()),
                "{name}: {}",
                conn.outcome()
            );
        }
        report.push(format!(
            "{name}: {} ({:.0?})",
            conn.outcome(),
            started.elapsed()
        ));
        // The bystander is untouched, and a new connection gets an answer.
        bystander.send(frame(PING, 0, 0, &[1; 8]));
        let acked = |seen: &Seen| seen.ping_acks > n as u64;
        assert!(
            bystander.until(acked).await,
            "after {name}: the bystander: {}",
            bystander.outcome()
        );
        assert!(!went_away(&bystander.seen.lock().unwrap()), "after {name}");
        let fresh = tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.addr()))
            .unwrap()
            .connect()
            .await
            .expect("a new connection");
        let mut client = user_pb::user_service_client::UserServiceClient::new(
            echo_testkit::authed_on(&fresh, token),
        );
        let call = client.get_me(user_pb::GetMeRequest {});
        let answer = tokio::time::timeout(Duration::from_secs(10), call).await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "after {name}: a new call: {answer:?}"
        );
    }
    report.join("\n")
}
