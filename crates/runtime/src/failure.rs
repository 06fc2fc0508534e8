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
            Failure::InvalidArgument(violations) => {
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|v| FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {summary}"),
                    ErrorDetails::with_bad_request(violations),
                )
            }
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
