//! Requests the server cannot decode answer as bad input (DESIGN §4), not as tonic's codes:
//! - an oversized message: tonic reads the 5-byte frame header (no large allocation) and
//!   answers OUT_OF_RANGE; this becomes RESOURCE_EXHAUSTED with ErrorInfo `PAYLOAD_TOO_LARGE`;
//! - a message that is not valid protobuf for its type (e.g. a string field holding invalid
//!   UTF-8): tonic-prost answers INTERNAL "failed to decode Protobuf message: …"; this becomes
//!   INVALID_ARGUMENT with a field violation naming the field prost names. The caller sent
//!   it, the server is fine, and INTERNAL would send operators looking for a bug;
//! - a body that is not valid gRPC framing: truncated inside a message (tonic: INTERNAL
//!   "Unexpected EOF decoding stream.", e.g. a grpc-web POST cut short), empty or ending right
//!   after a frame header (tonic: INTERNAL "Missing request message."), a bad compression flag
//!   or a compressed message that does not decompress, grpc-web-text that is not base64
//!   (tonic-web: INTERNAL "tonic-web: Invalid symbol …"); INVALID_ARGUMENT too, for the same
//!   reason (tests/fuzz_frames.rs sends each to every RPC).
//!
//! Each rewrite is logged at debug level under the request's id (the client gets the id in
//! `x-request-id`). All arrive as trailers-only responses, so rewriting the status headers is
//! enough; every other status passes untouched.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::Code;
use tower::{Layer, Service};

use crate::Failure;

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeFailuresLayer;

impl<S> Layer<S> for DecodeFailuresLayer {
    type Service = DecodeFailures<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeFailures { inner }
    }
}

/// See [`DecodeFailuresLayer`].
#[derive(Clone, Debug)]
pub struct DecodeFailures<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for DecodeFailures<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let rewritten =
                tonic::Status::from_header_map(headers).and_then(|status| rewrite(&status));
            if let Some(status) = rewritten {
                headers.remove("grpc-status-details-bin");
                let _ = tonic::Status::from(status).add_header(headers);
            }
            Ok(response)
        })
    }
}

/// What a decode failure becomes; None for every other status.
fn rewrite(status: &tonic::Status) -> Option<Failure> {
    const UNDECODABLE: &str = "failed to decode Protobuf message: ";
    let message = status.message();
    let failure = match status.code() {
        Code::OutOfRange if message.contains("too large") => Failure::reason(
            Code::ResourceExhausted,
            "PAYLOAD_TOO_LARGE",
            "request message exceeds the size limit",
        ),
        Code::Internal => {
            if let Some(detail) = message.strip_prefix(UNDECODABLE) {
                Failure::invalid(
                    field_path(detail),
                    format!("is not valid protobuf: {}", problem(detail)),
                )
            } else if is_framing_error(message) {
                Failure::invalid("", framing_problem(message))
            } else {
                return None;
            }
        }
        _ => return None,
    };
    let request_id = crate::request_id::current().unwrap_or_default();
    tracing::debug!(%request_id, code = ?status.code(), %message, "undecodable request");
    Some(failure)
}

/// tonic's INTERNAL for a request body that is not well-formed gRPC framing (tonic
/// `codec/decode.rs`): the request was cut short, or its compression flag or compressed bytes
/// are wrong. Only the request direction: a response's framing is the server's business.
fn is_framing_error(message: &str) -> bool {
    message == TRUNCATED
        || message == NO_MESSAGE
        // tonic-web's own errors reach the service only through the request body it decodes
        // (a response's are raised outside this layer).
        || message.starts_with(GRPC_WEB)
        || (message.starts_with("protocol error: received message with")
            && (message.ends_with("while sending request") || !message.contains("while")))
        || (message.starts_with("Error decompressing:")
            && message.ends_with("while sending request"))
}

/// tonic's message for a body that ends inside a length-prefixed message.
const TRUNCATED: &str = "Unexpected EOF decoding stream.";

/// tonic's message for a unary or server-streaming request whose body ends before a message:
/// empty, or cut right after a frame header.
const NO_MESSAGE: &str = "Missing request message.";

/// The prefix of tonic-web's errors decoding a request body (e.g. grpc-web-text that is not
/// base64).
const GRPC_WEB: &str = "tonic-web: ";

/// What to tell the caller about a framing error.
fn framing_problem(message: &str) -> String {
    if message == TRUNCATED {
        "the request body ends inside a gRPC message (truncated)".to_owned()
    } else if message == NO_MESSAGE {
        "the request body ends before a whole gRPC message (empty, or cut after a frame header)"
            .to_owned()
    } else if let Some(problem) = message.strip_prefix(GRPC_WEB) {
        format!("the request body is not valid grpc-web: {problem}")
    } else {
        format!("the request body is not valid gRPC framing: {message}")
    }
}

/// The field path in prost's description, outermost field first. prost pushes one
/// `Message.field` per level as the error unwinds, so the innermost comes first:
/// `MessageContent.text: SendMessageRequest.content: invalid string value: …` names
/// `content.text`. prost does not say which element of a repeated field failed, so
/// `content.mentions[3].user_id` comes out as `content.mentions.user_id`. '' when it names
/// none.
fn field_path(detail: &str) -> String {
    let mut fields = detail
        .split(": ")
        .map_while(|segment| {
            let (message, field) = segment.split_once('.')?;
            let is_name =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
            (is_name(message) && is_name(field)).then_some(field)
        })
        .collect::<Vec<_>>();
    fields.reverse();
    fields.join(".")
}

/// prost's description without the field path.
fn problem(detail: &str) -> &str {
    detail.rsplit(": ").next().unwrap_or(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tonic-prost's status for `bytes` decoded as `M`, exactly as a server answers it.
    fn decode_status<M: prost::Message + Default>(bytes: &[u8]) -> tonic::Status {
        let Err(error) = M::decode(bytes) else {
            panic!("decodes, but the test needs it not to");
        };
        tonic::Status::internal(error.to_string())
    }

    fn violated_field(status: &tonic::Status) -> String {
        let Some(Failure::InvalidArgument(violations)) = rewrite(status) else {
            panic!("{status:?} is bad input");
        };
        assert_eq!(violations.len(), 1);
        violations[0].field.clone()
    }

    /// A length-delimited field `number` holding `payload`.
    fn field(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        prost::encoding::encode_key(
            number,
            prost::encoding::WireType::LengthDelimited,
            &mut bytes,
        );
        prost::encoding::encode_varint(payload.len() as u64, &mut bytes);
        bytes.extend_from_slice(payload);
        bytes
    }

    const NOT_UTF8: &[u8] = b"a\xff";

    #[test]
    fn nested_fields_are_named_outermost_first() {
        use echo_proto::echo::message::v1::SendMessageRequest;
        // SendMessageRequest.content (3) → MessageContent.text (1).
        let request = field(3, &field(1, NOT_UTF8));
        let status = decode_status::<SendMessageRequest>(&request);
        assert_eq!(violated_field(&status), "content.text");
        // UpdateProfileRequest.profile (1) → Profile.avatar (5) → Media.url (1).
        use echo_proto::echo::user::v1::UpdateProfileRequest;
        let request = field(1, &field(5, &field(1, NOT_UTF8)));
        let status = decode_status::<UpdateProfileRequest>(&request);
        assert_eq!(violated_field(&status), "profile.avatar.url");
    }

    #[test]
    fn repeated_fields_are_named_without_an_index() {
        use echo_proto::echo::message::v1::SendMessageRequest;
        // SendMessageRequest.content (3) → MessageContent.mentions (2)[1] → Mention.user_id (1).
        let good = field(2, &field(1, b"0192a0c4-0000-7000-8000-000000000000"));
        let bad = field(2, &field(1, NOT_UTF8));
        let content = [good, bad].concat();
        let status = decode_status::<SendMessageRequest>(&field(3, &content));
        assert_eq!(violated_field(&status), "content.mentions.user_id");
    }

    #[test]
    fn prost_descriptions_name_the_field() {
        let detail = "MessageContent.text: SendMessageRequest.content: invalid string value: data is not UTF-8 encoded";
        assert_eq!(field_path(detail), "content.text");
        assert_eq!(problem(detail), "data is not UTF-8 encoded");
        assert_eq!(field_path("buffer underflow"), "");
        let internal =
            tonic::Status::internal(format!("failed to decode Protobuf message: {detail}"));
        assert_eq!(violated_field(&internal), "content.text");
        assert!(rewrite(&tonic::Status::internal("database down")).is_none());
    }

    #[test]
    fn broken_framing_is_bad_input() {
        for message in [
            "Unexpected EOF decoding stream.",
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            "protocol error: received message with invalid compression flag: 7 (valid flags are 0 and 1), while sending request",
            "Error decompressing: corrupt deflate stream, while sending request",
            "Missing request message.",
            "tonic-web: Invalid symbol 33, offset 108.",
            "tonic-web: malformed base64 request",
        ] {
            let status = tonic::Status::internal(message);
            assert!(
                matches!(rewrite(&status), Some(Failure::InvalidArgument(_))),
                "{message}"
            );
        }
        let response_side = "protocol error: received message with invalid compression flag: 7 (valid flags are 0 and 1) while receiving response with status: 0";
        assert!(rewrite(&tonic::Status::internal(response_side)).is_none());
    }
}
