//! The fake FCM: the OAuth token endpoint (RFC 7523 assertions) and `messages:send`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Version};
use axum::response::Response;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Recorded, Reply, State, header_map, now};
use crate::{FCM_SCOPE, Platform};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Keys FCM refuses in `data` (and the prefixes `google.` and `gcm.`).
const RESERVED_DATA_KEYS: &[&str] = &["from", "notification", "message_type"];

/// A `google.rpc.Status` body as FCM v1 sends it.
pub(super) fn error_body(
    status: u16,
    error_code: Option<&str>,
    message: &str,
    violation: Option<&str>,
) -> String {
    let rpc_status = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut details = Vec::new();
    if let Some(code) = error_code {
        details.push(json!({
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }));
    }
    if let Some(field) = violation {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{ "field": field, "description": message }],
        }));
    }
    json!({ "error": { "code": status, "message": message, "status": rpc_status, "details": details } })
        .to_string()
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: String,
    iat: i64,
    exp: i64,
}

/// `POST /token`: exchanges a service-account assertion for an access token.
pub(super) async fn token(
    Extract(state): Extract<Arc<State>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refuse = |status: u16, error: &str, reason: String| {
        let body = json!({ "error": error, "error_description": reason }).to_string();
        state.reject(None, status, reason, body)
    };
    if form.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return refuse(
            400,
            "unsupported_grant_type",
            "grant_type is not jwt-bearer".into(),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse(400, "invalid_request", "no assertion".into());
    };
    let token_uri = format!("{}/token", state.base_url);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&token_uri]);
    validation.set_issuer(&[super::CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<AssertionClaims>(
        assertion,
        &state.service_account,
        &validation,
    ) {
        Ok(data) => data.claims,
        Err(error) => return refuse(400, "invalid_grant", format!("assertion refused: {error}")),
    };
    if claims.exp - claims.iat > 3600 || claims.iat > now() + 60 {
        return refuse(
            400,
            "invalid_grant",
            "assertion lifetime over an hour or iat ahead".into(),
        );
    }
    if !claims.scope.split(' ').any(|scope| scope == FCM_SCOPE) {
        return refuse(
            400,
            "invalid_scope",
            format!("scope {} lacks firebase.messaging", claims.scope),
        );
    }
    debug_assert_eq!(claims.iss, super::CLIENT_EMAIL);
    let access_token = format!("ya29.fake-{}", hex::encode(rand::random::<[u8; 16]>()));
    let mut inner = state.inner();
    let lifetime = inner.token_lifetime.unwrap_or(Duration::from_secs(3600));
    inner
        .access_tokens
        .insert(access_token.clone(), Instant::now() + lifetime);
    inner.token_fetches += 1;
    let body = json!({
        "access_token": access_token,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
    });
    Reply {
        body: body.to_string(),
        ..Reply::status(200)
    }
    .header("content-type", "application/json")
    .into_response()
}

/// `POST /v1/projects/{project}/messages:send`.
pub(super) async fn send(
    Extract(state): Extract<Arc<State>>,
    Path(project): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: u16, reason: String| {
        let body = error_body(status, None, &reason, None);
        state.reject(Some(Platform::Fcm), status, reason, body)
    };
    let bearer = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let issued = bearer.and_then(|token| state.inner().access_tokens.get(token).copied());
    match issued {
        Some(expires) if Instant::now() < expires => {}
        Some(_) => return refuse(401, "the access token has expired".into()),
        None => return refuse(401, "the bearer is not a token this server issued".into()),
    }
    if project != super::PROJECT_ID {
        return refuse(
            403,
            format!("the service account has no access to project {project}"),
        );
    }
    let message = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut root)) => match root.remove("message") {
            Some(Value::Object(message)) => message,
            _ => return refuse(400, "no message object".into()),
        },
        _ => return refuse(400, "the body is not a JSON object".into()),
    };
    if let Err(reason) = check_message(&message) {
        return refuse(400, reason);
    }
    let token = message
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = format!(
        "projects/{project}/messages/{}",
        hex::encode(rand::random::<[u8; 8]>())
    );
    let recorded = Recorded {
        platform: Platform::Fcm,
        key: token,
        headers: header_map(&headers),
        payload: json!({ "message": message }),
        status: 0,
        http2: version == Version::HTTP_2,
        received_at: std::time::Instant::now(),
    };
    let success = Reply {
        body: json!({ "name": name }).to_string(),
        ..Reply::status(200)
    };
    state.accept(recorded, success)
}

/// What FCM's API refuses in a message: no token, non-string data values, reserved keys,
/// over 4096 bytes, an unknown priority, a malformed ttl.
fn check_message(message: &serde_json::Map<String, Value>) -> Result<(), String> {
    match message.get("token").and_then(Value::as_str) {
        Some(token) if !token.is_empty() => {}
        _ => return Err("Recipient of the message is not set.".into()),
    }
    let mut size = 0;
    if let Some(data) = message.get("data") {
        let data = data.as_object().ok_or("message.data is not a map")?;
        for (key, value) in data {
            let value = value
                .as_str()
                .ok_or_else(|| format!("Invalid value at 'message.data' ({key}): not a string"))?;
            if RESERVED_DATA_KEYS.contains(&key.as_str())
                || key.starts_with("google.")
                || key.starts_with("gcm.")
            {
                return Err(format!("Invalid data payload key: {key}"));
            }
            size += key.len() + value.len();
        }
    }
    if let Some(notification) = message.get("notification") {
        for field in ["title", "body"] {
            size += notification
                .get(field)
                .and_then(Value::as_str)
                .map_or(0, str::len);
        }
    }
    if size > 4096 {
        return Err(format!("Message is too big: {size} bytes"));
    }
    let Some(android) = message.get("android") else {
        return Ok(());
    };
    if let Some(priority) = android.get("priority")
        && !matches!(priority.as_str(), Some("HIGH" | "NORMAL"))
    {
        return Err(format!(
            "Invalid value at 'message.android.priority': {priority}"
        ));
    }
    if let Some(ttl) = android.get("ttl") {
        let valid = ttl
            .as_str()
            .and_then(|ttl| ttl.strip_suffix('s'))
            .is_some_and(|seconds| {
                !seconds.is_empty() && seconds.parse::<f64>().is_ok_and(|s| s >= 0.0)
            });
        if !valid {
            return Err(format!("Invalid value at 'message.android.ttl': {ttl}"));
        }
    }
    if let Some(count) = android.pointer("/notification/notification_count")
        && !count.is_u64()
    {
        return Err(format!("Invalid value at 'notification_count': {count}"));
    }
    Ok(())
}
