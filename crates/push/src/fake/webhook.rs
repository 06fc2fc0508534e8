//! The fake webhook receiver: `POST /hook/<name>`, checking `Echo-Signature` as a receiver
//! should (HMAC over `<t>.<body>`, constant-time, `t` within five minutes).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Version};
use axum::response::Response;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{Recorded, Reply, State, header_map, now};
use crate::Platform;

/// `POST /hook/{name}`.
pub(super) async fn receive(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: u16, reason: String| {
        state.reject(Some(Platform::Webhook), status, reason.clone(), reason)
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Err(reason) = check_signature(&state.webhook_secret, header("echo-signature"), &body) {
        return refuse(401, reason);
    }
    if header("echo-delivery-id").is_none() {
        return refuse(400, "no Echo-Delivery-Id".into());
    }
    if !header("content-type").is_some_and(|value| value.starts_with("application/json")) {
        return refuse(415, "content-type is not application/json".into());
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return refuse(400, "body is not JSON".into());
    };
    let recorded = Recorded {
        platform: Platform::Webhook,
        key: name,
        headers: header_map(&headers),
        payload,
        status: 0,
        http2: version == Version::HTTP_2,
        received_at: std::time::Instant::now(),
    };
    state.accept(recorded, Reply::status(204))
}

fn check_signature(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), String> {
    let header = header.ok_or("no Echo-Signature")?;
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(format!("malformed Echo-Signature {header}"));
    };
    if (now() - timestamp).abs() > 300 {
        return Err(format!(
            "Echo-Signature t={timestamp} is more than five minutes off"
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| "Echo-Signature does not verify".to_owned())
}
