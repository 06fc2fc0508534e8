//! The platform's error vocabulary and THE one mapping to `tonic::Status` (DESIGN §4).
//!
//! Each service has its own error enum and converts it into a [`Failure`]; only this file
//! builds a `Status`. Malformed fields become INVALID_ARGUMENT with `BadRequest` field
//! violations; everything else carries an `ErrorInfo` with a stable reason (domain `echo`);
//! rate limits and outages add `RetryInfo`. INTERNAL never carries the cause: it is logged
//! with the request id, and the client gets that id to quote.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::request_id;

/// The `ErrorInfo.domain` of every Echo error.
pub const ERROR_DOMAIN: &str = "echo";

/// Why a call failed, in terms a client can act on.
#[derive(Debug)]
pub enum Failure {
    /// Malformed fields: one violation per field, the whole list at once.
    InvalidArgument(Vec<Violation>),
    /// A failure with a stable reason (`ErrorInfo.reason`, an `ErrorReason` name).
    Reason {
        /// The gRPC code (never OK, INVALID_ARGUMENT or INTERNAL).
        code: Code,
        /// The stable reason, e.g. `CONVERSATION_NOT_FOUND`.
        reason: &'static str,
        /// A human-readable message (lowercase, no internals).
        message: String,
        /// When the client may retry (rate limits, outages).
        retry_after: Option<Duration>,
        /// `ErrorInfo.metadata` (e.g. `limit` on LIMIT_EXCEEDED).
        metadata: Vec<(&'static str, String)>,
    },
    /// A bug or an unexpected dependency failure: logged, never described to the client.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// One malformed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `content.text` or `member_user_ids[3]`.
    pub field: String,
    /// What is wrong with it, for the developer reading the error.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl Failure {
    /// A failure with a stable reason and no retry hint.
    pub fn reason(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Failure::Reason {
            code,
            reason,
            message: message.into(),
            retry_after: None,
            metadata: Vec::new(),
        }
    }

    /// RESOURCE_EXHAUSTED LIMIT_EXCEEDED for a full quota, naming it in the `limit` metadata
    /// (a client shows "you can pin at most 50 messages" from it).
    pub fn limit_exceeded(limit: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::Reason {
            code: Code::ResourceExhausted,
            reason: "LIMIT_EXCEEDED",
            message: message.into(),
            retry_after: None,
            metadata: vec![("limit", limit.into())],
        }
    }

    /// RESOURCE_EXHAUSTED with `RetryInfo`, for rate limits.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Failure::Reason {
            code: Code::ResourceExhausted,
            reason: "RATE_LIMITED",
            message: "too many requests; retry later".into(),
            retry_after: Some(retry_after),
            metadata: Vec::new(),
        }
    }

    /// UNAVAILABLE `DEPENDENCY_UNAVAILABLE` with a RetryInfo of a second: the database this
    /// call needs did not answer (`cause` is logged, never sent). What the call would have
    /// written may or may not have been committed; a retry with the same idempotency key is
    /// safe either way.
    pub fn dependency_unavailable(service: &str, cause: &str) -> Self {
        tracing::warn!(cause, "a dependency is unavailable");
        Self::unavailable(
            "DEPENDENCY_UNAVAILABLE",
            format!("the {service} service is unavailable right now; retry shortly"),
            Duration::from_secs(1),
        )
    }

    /// UNAVAILABLE with `RetryInfo`, for a dependency outage or load shedding.
    pub fn unavailable(reason: &'static str, message: impl Into<String>, retry: Duration) -> Self {
        Failure::Reason {
            code: Code::Unavailable,
            reason,
            message: message.into(),
            retry_after: Some(retry),
            metadata: Vec::new(),
        }
    }

    /// INVALID_ARGUMENT for a single field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Failure::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// INTERNAL from any error (logged when converted, never sent).
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Failure::Internal(Box::new(error))
    }
}

impl From<Failure> for Status {
    fn from(failure: Failure) -> Status {
        match failure {
            Failure::InvalidArgument(violations) => invalid_argument(violations),
            Failure::Reason {
                code,
                reason,
                message,
                retry_after,
                metadata,
            } => {
                let mut details = ErrorDetails::new();
                let metadata: std::collections::HashMap<String, String> = metadata
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect();
                details.set_error_info(reason, ERROR_DOMAIN, metadata);
                if let Some(delay) = retry_after {
                    details.set_retry_info(Some(delay));
                }
                Status::with_error_details(code, message, details)
            }
            Failure::Internal(cause) => {
                let request_id = request_id::current().unwrap_or_default();
                tracing::error!(%request_id, error = %cause, "internal error");
                let mut metadata = std::collections::HashMap::new();
                metadata.insert("request_id".to_owned(), request_id.clone());
                let mut details = ErrorDetails::new();
                details.set_error_info("INTERNAL", ERROR_DOMAIN, metadata);
                Status::with_error_details(
                    Code::Internal,
                    format!("internal error; quote request id {request_id}"),
                    details,
                )
            }
        }
    }
}

/// Most field violations sent; more are counted in one summary violation.
pub const MAX_VIOLATIONS: usize = 20;
/// Longest field path sent, in bytes (longer is cut, marked with `…`).
const MAX_FIELD_BYTES: usize = 128;
/// Longest violation description sent, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 256;
/// Most bytes of field paths and descriptions in one answer, whatever their number.
const MAX_VIOLATION_BYTES: usize = 3 * 1024;
/// Violations quoted in `grpc-message`, and the length of each part there.
const MESSAGE_VIOLATIONS: usize = 3;
const MESSAGE_PART_BYTES: usize = 64;

/// INVALID_ARGUMENT with the violations, bounded so that the trailers (`grpc-message` beside
/// `grpc-status-details-bin`, which carries that message again) stay far below the 8 KiB
/// metadata limit of common clients, whatever the request: past it grpcio reports
/// RESOURCE_EXHAUSTED instead of our answer. At most [`MAX_VIOLATIONS`] (and
/// `MAX_VIOLATION_BYTES`) are listed, each cut to a bounded length, plus one summary
/// violation (field '') saying how many more there were; `grpc-message` quotes the first few.
fn invalid_argument(violations: Vec<Violation>) -> Status {
    let total = violations.len();
    let mut listed = Vec::new();
    let mut bytes = 0;
    for violation in violations {
        let field = cut(&violation.field, MAX_FIELD_BYTES);
        let description = cut(&violation.description, MAX_DESCRIPTION_BYTES);
        bytes += field.len() + description.len();
        if listed.len() == MAX_VIOLATIONS || bytes > MAX_VIOLATION_BYTES {
            break;
        }
        listed.push(FieldViolation::new(field, description));
    }
    let mut summary = listed
        .iter()
        .take(MESSAGE_VIOLATIONS)
        .map(|v| {
            let field = cut(&v.field, MESSAGE_PART_BYTES);
            format!("{field}: {}", cut(&v.description, MESSAGE_PART_BYTES))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if total > MESSAGE_VIOLATIONS {
        summary.push_str(&format!(" (and {} more)", total - MESSAGE_VIOLATIONS));
    }
    let unlisted = total - listed.len();
    if unlisted > 0 {
        listed.push(FieldViolation::new(
            "",
            format!(
                "{unlisted} more violations not listed (the first {} are); fix these and retry",
                total - unlisted
            ),
        ));
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        ErrorDetails::with_bad_request(listed),
    )
}

/// `text` cut to at most `max` bytes at a character boundary, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_survive_the_round_trip() {
        let status: Status = Failure::InvalidArgument(vec![
            Violation::new("phone_number", "not E.164"),
            Violation::new("password", "too short"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest detail");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[0].field, "phone_number");
    }

    /// The size of `status` as a client's metadata limit counts it (RFC 7541: name + value
    /// + 32 per entry), encoded by tonic as the server sends it.
    fn metadata_bytes(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).expect("encodable");
        headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    #[test]
    fn thousands_of_long_violations_fit_the_metadata_limit() {
        // Field paths and descriptions as long as a client can make them (descriptions quote
        // input), non-ASCII so that percent-encoding triples them in grpc-message.
        let violations = (0..10_000)
            .map(|i| {
                Violation::new(
                    format!("content.mentions[{i}].{}", "ü".repeat(300)),
                    format!("unknown path `{}`", "é".repeat(2_000)),
                )
            })
            .collect();
        let status: Status = Failure::InvalidArgument(violations).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let size = metadata_bytes(&status);
        assert!(size < 8 * 1024, "{size} bytes of metadata");
        let details = status.get_error_details();
        let listed = &details.bad_request().expect("BadRequest").field_violations;
        assert!(listed.len() <= MAX_VIOLATIONS + 1);
        let summary = listed.last().expect("a summary");
        assert_eq!(summary.field, "");
        assert!(
            summary.description.contains("more violations"),
            "{summary:?}"
        );
        assert!(
            status.message().contains("(and 9997 more)"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn few_violations_are_all_listed_in_full() {
        let violations: Vec<_> = (0..MAX_VIOLATIONS)
            .map(|i| Violation::new(format!("user_ids[{i}]"), "must be a UUID"))
            .collect();
        let status: Status = Failure::InvalidArgument(violations.clone()).into();
        let details = status.get_error_details();
        let listed = &details.bad_request().expect("BadRequest").field_violations;
        let fields: Vec<_> = listed.iter().map(|v| v.field.clone()).collect();
        let expected: Vec<_> = violations.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, expected, "no summary when nothing is left out");
        assert!(
            status
                .message()
                .starts_with("invalid request: user_ids[0]: must be a UUID; user_ids[1]"),
            "{}",
            status.message()
        );
        assert!(metadata_bytes(&status) < 8 * 1024);
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(cut("short", 10), "short");
        let cut_text = cut(&"é".repeat(10), 8);
        assert!(cut_text.len() <= 8 && cut_text.ends_with('…'), "{cut_text}");
    }

    #[test]
    fn reasons_and_retry_info_are_attached() {
        let status: Status = Failure::rate_limited(Duration::from_secs(3)).into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
        assert_eq!(details.error_info().unwrap().domain, "echo");
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn limits_are_named_in_the_metadata() {
        let status: Status = Failure::limit_exceeded("pins", "the pins limit is reached").into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let info = status.get_error_details().error_info().unwrap().clone();
        assert_eq!(info.reason, "LIMIT_EXCEEDED");
        assert_eq!(info.metadata.get("limit").map(String::as_str), Some("pins"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let cause = std::io::Error::other("password=hunter2 leaked by a driver");
        let status: Status = Failure::internal(cause).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        assert!(status.message().contains("request id"));
    }
}
