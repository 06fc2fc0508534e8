//! The damage done to a request's gRPC framing, what each must answer, and how it is sent
//! (HTTP/2 gRPC, HTTP/1.1 grpc-web, HTTP/1.1 grpc-web-text).

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::frames::{self, Answer, frame, message_frame};

/// How a request travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// gRPC over HTTP/2.
    H2,
    /// grpc-web (binary) over HTTP/1.1.
    Web,
    /// grpc-web-text (base64) over HTTP/1.1.
    WebText,
}

pub const TRANSPORTS: [Transport; 3] = [Transport::H2, Transport::Web, Transport::WebText];

/// One way to damage the framing of a valid request.
#[derive(Clone, Debug)]
pub enum Damage {
    /// Nothing damaged: the control.
    Intact,
    /// The prefix announces this many bytes more than the message has.
    LongerPrefix(u32),
    /// The prefix announces this many bytes fewer; the rest follows as if a next frame.
    ShorterPrefix(usize),
    /// The prefix announces the whole message; the body stops after this many of its bytes.
    Truncated(usize),
    /// Only the 5-byte header, announcing the message.
    HeaderOnly,
    /// A 5-byte header announcing 0 bytes: an empty message, which is valid framing.
    EmptyMessage,
    /// No frame at all.
    EmptyBody,
    /// Compressed flag set, no `grpc-encoding`.
    CompressedWithoutEncoding,
    /// Compressed flag set, with a `grpc-encoding` of this name.
    CompressedAs(&'static str),
    /// A flag byte other than 0, 1 and 0x80.
    Flag(u8),
    /// The message, then a grpc-web trailer frame (0x80), which only servers send.
    ClientTrailers,
    /// The message twice, to a method that takes one.
    TwoMessages,
    /// A content type that is not gRPC's, or none.
    ContentType(Option<&'static str>),
    /// grpc-web-text whose body is not base64.
    BrokenBase64(&'static str),
    /// The prefix announces 4 GiB - 1 bytes.
    Oversized,
}

/// What a damaged request must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This code (or a refusal that comes before the body is read: see [`before_the_body`]).
    Code(Code),
    /// Any considered answer: the framing is valid, or the damage leaves a valid message.
    Considered,
    /// Not gRPC over HTTP/1.1: an HTTP 4xx with no gRPC status is an answer too.
    NotGrpc,
}

impl Damage {
    /// Every kind of damage, with its random parts drawn from `rng`.
    pub fn all(rng: &mut StdRng, message_len: usize) -> Vec<Damage> {
        let flag = loop {
            let flag = rng.random_range(2..=255u8);
            if flag != 0x80 {
                break flag;
            }
        };
        let mut all = vec![
            Damage::Intact,
            Damage::LongerPrefix(rng.random_range(1..100_000)),
            Damage::EmptyMessage,
            Damage::EmptyBody,
            Damage::CompressedWithoutEncoding,
            Damage::CompressedAs(["gzip", "snappy", "br", "x-nope"][rng.random_range(0..4)]),
            Damage::Flag(flag),
            Damage::ClientTrailers,
            Damage::TwoMessages,
            Damage::ContentType(
                [None, Some("application/json"), Some("text/plain")][rng.random_range(0..3)],
            ),
            Damage::BrokenBase64(
                ["!!!!", "AAAAAA=", "AAAA\u{7f}AAA", "=AAA"][rng.random_range(0..4)],
            ),
            Damage::Oversized,
        ];
        if message_len > 0 {
            // For an empty message these would be valid framing (a header announcing 0).
            all.push(Damage::HeaderOnly);
            all.push(Damage::ShorterPrefix(rng.random_range(1..=message_len)));
            all.push(Damage::Truncated(rng.random_range(0..message_len)));
        }
        all
    }

    /// Whether this damage is a grpc-web-text one only.
    pub fn text_only(&self) -> bool {
        matches!(self, Damage::BrokenBase64(_))
    }

    pub fn expect(&self, transport: Transport) -> Expect {
        match self {
            Damage::Intact | Damage::EmptyMessage => Expect::Considered,
            Damage::ContentType(_) if transport == Transport::H2 => Expect::Considered,
            Damage::ContentType(_) => Expect::NotGrpc,
            // No compression is accepted: the encoding is refused before the body.
            Damage::CompressedAs(_) => Expect::Code(Code::Unimplemented),
            Damage::Oversized => Expect::Code(Code::ResourceExhausted),
            // A second frame, whole or the remainder of a short prefix: every Echo RPC takes
            // exactly one message (runtime's OneMessageLayer).
            Damage::LongerPrefix(_)
            | Damage::ShorterPrefix(_)
            | Damage::TwoMessages
            | Damage::Truncated(_)
            | Damage::HeaderOnly
            | Damage::EmptyBody
            | Damage::CompressedWithoutEncoding
            | Damage::Flag(_)
            | Damage::ClientTrailers
            | Damage::BrokenBase64(_) => Expect::Code(Code::InvalidArgument),
        }
    }

    /// The body for `message`, and the `grpc-encoding` to send with it, if any.
    fn body(&self, message: &[u8]) -> (Vec<u8>, Option<&'static str>) {
        let len = u32::try_from(message.len()).expect("small");
        let body = match self {
            Damage::Intact | Damage::ContentType(_) | Damage::BrokenBase64(_) => {
                message_frame(message)
            }
            Damage::LongerPrefix(more) => frame(0, len + more, message),
            Damage::ShorterPrefix(fewer) => {
                frame(0, len - u32::try_from(*fewer).expect("small"), message)
            }
            Damage::Truncated(at) => frame(0, len, &message[..*at]),
            Damage::HeaderOnly => frame(0, len, &[]),
            Damage::EmptyMessage => frame(0, 0, &[]),
            Damage::EmptyBody => Vec::new(),
            Damage::CompressedWithoutEncoding => frame(1, len, message),
            Damage::CompressedAs(encoding) => return (frame(1, len, message), Some(encoding)),
            Damage::Flag(flag) => frame(*flag, len, message),
            Damage::ClientTrailers => {
                let trailers = b"grpc-status:0\r\ngrpc-message:from the client\r\n";
                let mut body = message_frame(message);
                body.extend(frame(0x80, trailers.len() as u32, trailers));
                body
            }
            Damage::TwoMessages => [message_frame(message), message_frame(message)].concat(),
            Damage::Oversized => frame(0, u32::MAX, message),
        };
        (body, None)
    }
}

/// Sends `message` to `path` with `damage` over `transport` as the holder of `token`; `None`
/// when no answer came within 10 s.
pub async fn send(
    addr: SocketAddr,
    channel: Channel,
    transport: Transport,
    (path, streaming): (&str, bool),
    token: &str,
    message: &[u8],
    damage: &Damage,
) -> Option<Answer> {
    let (body, encoding) = damage.body(message);
    let grpc_content_type = match transport {
        Transport::H2 => "application/grpc",
        Transport::Web => "application/grpc-web+proto",
        Transport::WebText => "application/grpc-web-text+proto",
    };
    let content_type = match damage {
        Damage::ContentType(other) => *other,
        _ => Some(grpc_content_type),
    };
    let stream_wait = if streaming {
        Duration::from_millis(150)
    } else {
        Duration::from_secs(10)
    };
    match transport {
        Transport::H2 => {
            let mut headers = vec![
                ("te", "trailers".to_owned()),
                ("authorization", format!("Bearer {token}")),
                ("grpc-timeout", "10S".to_owned()),
            ];
            if let Some(content_type) = content_type {
                headers.push(("content-type", content_type.to_owned()));
            }
            if let Some(encoding) = encoding {
                headers.push(("grpc-encoding", encoding.to_owned()));
            }
            frames::grpc_h2(channel, path, &headers, body, stream_wait).await
        }
        Transport::Web | Transport::WebText => {
            let text = transport == Transport::WebText;
            let web = frames::WebCall {
                addr,
                path,
                content_type,
                token: Some(token),
                encoding,
                stream_wait,
            };
            match damage {
                Damage::BrokenBase64(junk) => {
                    // Valid base64 of the message, then junk that is not.
                    let mut body = frames::base64_of(&body);
                    body.extend_from_slice(junk.as_bytes());
                    web.send(body, false).await
                }
                _ => web.send(body, text).await,
            }
        }
    }
}

/// A refusal that comes before the body is read, so whatever the framing: an internal
/// contract on the public port, a service the public port does not serve at all (the admin
/// port's AdminService: the router's UNIMPLEMENTED, with no reason, unlike a served RPC's
/// `UNIMPLEMENTED_YET`), a caller whose session a generated Logout ended, a rate limit.
pub fn before_the_body(status: &tonic::Status) -> bool {
    let reason = crate::common::reason(status);
    matches!(
        (status.code(), reason.as_str()),
        (Code::PermissionDenied, "SERVICE_ONLY")
            | (Code::Unimplemented, "")
            | (Code::Unauthenticated, _)
            | (Code::ResourceExhausted, "RATE_LIMITED")
    )
}

/// Why `answer` is not what `expect` allows, if it is not.
pub fn fault(answer: Option<&Answer>, expect: Expect, streaming: bool) -> Option<String> {
    let Some(answer) = answer else {
        return Some("no answer within 10 s".into());
    };
    let Some(status) = &answer.status else {
        if answer.streaming && streaming && answer.http == 200 {
            return None;
        }
        if answer.streaming {
            return Some("a unary call with no end within 10 s".into());
        }
        return match expect {
            Expect::NotGrpc if (400..500).contains(&answer.http) => None,
            _ => Some(format!("HTTP {} without a gRPC status", answer.http)),
        };
    };
    if answer.request_id.is_empty() {
        return Some("an answer without x-request-id".into());
    }
    let reason = crate::common::reason(status);
    let code = status.code();
    match code {
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => {
            return Some(format!("{code:?}"));
        }
        Code::DeadlineExceeded => return Some("DEADLINE_EXCEEDED".into()),
        Code::Unavailable if reason.is_empty() => return Some("a transport failure".into()),
        Code::InvalidArgument if crate::common::violated_fields(status).is_empty() => {
            return Some("INVALID_ARGUMENT without field violations".into());
        }
        _ => {}
    }
    match expect {
        Expect::Code(expected) if code != expected && !before_the_body(status) => {
            Some(format!("{code:?}, expected {expected:?}"))
        }
        _ => None,
    }
}
