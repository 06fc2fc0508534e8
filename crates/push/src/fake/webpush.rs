//! The fake Web Push service: `POST /push/<id>`, with VAPID (RFC 8292) checked and the body
//! decrypted (RFC 8291) with the subscription's private key; `GET /push/<id>`, UnifiedPush
//! discovery. The service is the same for UnifiedPush (the protocol is), so what it accepts is
//! recorded as Web Push either way.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Version};
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{Recorded, Reply, State, header_map, now};
use crate::Platform;
use crate::keys::decode_base64url;
use crate::webpush::ece;

#[derive(Deserialize)]
struct Claims {
    exp: i64,
    sub: String,
}

/// `POST /push/{id}`.
pub(super) async fn send(
    Extract(state): Extract<Arc<State>>,
    Path(id): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: u16, reason: String| {
        state.reject(Some(Platform::WebPush), status, reason.clone(), reason)
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Err((status, reason)) = check_vapid(&state, header("authorization")) {
        return refuse(status, reason);
    }
    let keys = {
        let inner = state.inner();
        inner
            .subscriptions
            .get(&id)
            .map(|keys| (keys.private.clone(), keys.auth))
    };
    let Some((private, auth)) = keys else {
        return refuse(404, format!("no subscription {id}"));
    };
    if header("ttl")
        .and_then(|ttl| ttl.parse::<u64>().ok())
        .is_none()
    {
        return refuse(400, "TTL missing or not a number".into());
    }
    if let Some(urgency) = header("urgency")
        && !matches!(urgency, "very-low" | "low" | "normal" | "high")
    {
        return refuse(400, format!("Urgency {urgency}"));
    }
    if let Some(topic) = header("topic")
        && (topic.len() > 32
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return refuse(
            400,
            format!("Topic {topic} is not up to 32 base64url characters"),
        );
    }
    if header("content-encoding") != Some("aes128gcm") {
        return refuse(415, "Content-Encoding is not aes128gcm".into());
    }
    if body.len() > 4096 {
        return refuse(413, format!("{} bytes over 4096", body.len()));
    }
    let plaintext = match ece::decrypt(&body, &private, &auth) {
        Ok(plaintext) => plaintext,
        Err(error) => return refuse(400, format!("body does not decrypt: {error}")),
    };
    let payload = serde_json::from_slice::<Value>(&plaintext)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&plaintext).into_owned()));
    let recorded = Recorded {
        platform: Platform::WebPush,
        key: id.clone(),
        headers: header_map(&headers),
        payload,
        status: 0,
        http2: version == Version::HTTP_2,
        received_at: std::time::Instant::now(),
    };
    let location = format!(
        "{}/message/{}",
        state.base_url,
        hex::encode(rand::random::<[u8; 8]>())
    );
    state.accept(recorded, Reply::status(201).header("location", &location))
}

/// `GET /push/{id}`: UnifiedPush discovery. The test's answer for this subscription if it set
/// one, else `{"unifiedpush":{"version":1}}` for a subscription the fake made, 404 for others.
pub(super) async fn discover(
    Extract(state): Extract<Arc<State>>,
    Path(id): Path<String>,
) -> Response {
    let reply = {
        let mut inner = state.inner();
        inner.discoveries.push(id.clone());
        match inner.discovery_replies.get(&id) {
            Some(reply) => reply.clone(),
            None if inner.subscriptions.contains_key(&id) => Reply::unifiedpush(),
            None => Reply::status(404),
        }
    };
    reply.into_response()
}

/// RFC 8292: `vapid t=<jwt>, k=<key>`; the JWT is ES256 by `k`, `aud` is this origin, `exp`
/// within 24 h, `sub` a mailto: or https: URI; `k` is the key the browser subscribed with.
fn check_vapid(state: &State, authorization: Option<&str>) -> Result<(), (u16, String)> {
    let params = authorization
        .and_then(|value| value.strip_prefix("vapid "))
        .ok_or((401, "no vapid authorization".to_owned()))?;
    let mut jwt = None;
    let mut key = None;
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", value)) => jwt = Some(value.trim()),
            Some(("k", value)) => key = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(jwt), Some(key)) = (jwt, key) else {
        return Err((401, "vapid needs t= and k=".into()));
    };
    let key = decode_base64url(key).ok_or((401, "k is not base64url".to_owned()))?;
    if p256::PublicKey::from_sec1_bytes(&key).is_err() || key.len() != 65 {
        return Err((401, "k is not an uncompressed p-256 point".into()));
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[&state.base_url]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_ec_der(&key), &validation)
        .map_err(|error| (401, format!("vapid jwt refused: {error}")))?
        .claims;
    if claims.exp > now() + 24 * 3600 {
        return Err((
            401,
            format!("vapid exp {} is more than 24 h away", claims.exp),
        ));
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https:")) {
        return Err((
            401,
            format!("vapid sub {} is not mailto: or https:", claims.sub),
        ));
    }
    if key != state.vapid_public {
        return Err((
            403,
            "k is not the key this subscription was made with".into(),
        ));
    }
    Ok(())
}
