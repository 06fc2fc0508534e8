//! The fake APNs: `POST /3/device/<token>` over HTTP/2 only, checked as Apple documents it.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Version};
use axum::response::Response;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Recorded, Reply, State, header_map, now};
use crate::Platform;

#[derive(Deserialize)]
struct Claims {
    iat: i64,
}

/// `POST /3/device/{token}`.
pub(super) async fn send(
    Extract(state): Extract<Arc<State>>,
    Path(token): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: u16, reason: &str, detail: String| {
        let body = json!({ "reason": reason }).to_string();
        state.reject(
            Some(Platform::Apns),
            status,
            format!("{reason}: {detail}"),
            body,
        )
    };
    if version != Version::HTTP_2 {
        return refuse(
            400,
            "BadRequest",
            format!("APNs speaks HTTP/2 only, got {version:?}"),
        );
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let Some(jwt) = header("authorization").and_then(|value| value.strip_prefix("bearer ")) else {
        return refuse(
            403,
            "MissingProviderToken",
            "no bearer provider token".into(),
        );
    };
    if let Err((reason, detail)) = check_provider_token(&state, jwt) {
        return refuse(403, reason, detail);
    }
    if token.len() < 64 || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return refuse(
            400,
            "BadDeviceToken",
            "the device token is not 64-200 hex digits".into(),
        );
    }
    match header("apns-topic") {
        None => return refuse(400, "MissingTopic", "no apns-topic".into()),
        Some(topic) if topic != super::APNS_TOPIC => {
            return refuse(
                400,
                "TopicDisallowed",
                format!("the key may not push to {topic}"),
            );
        }
        Some(_) => {}
    }
    let push_type = header("apns-push-type");
    let background = match push_type {
        Some("alert") => false,
        Some("background") => true,
        _ => {
            return refuse(
                400,
                "InvalidPushType",
                format!("apns-push-type {push_type:?}"),
            );
        }
    };
    match header("apns-priority") {
        None | Some("5") => {}
        Some("10") if !background => {}
        other => return refuse(400, "BadPriority", format!("apns-priority {other:?}")),
    }
    if let Some(expiration) = header("apns-expiration")
        && expiration.parse::<i64>().is_err()
    {
        return refuse(
            400,
            "BadExpirationDate",
            format!("apns-expiration {expiration}"),
        );
    }
    if header("apns-collapse-id").is_some_and(|id| id.len() > 64) {
        return refuse(
            400,
            "BadCollapseId",
            "apns-collapse-id over 64 bytes".into(),
        );
    }
    if let Some(id) = header("apns-id")
        && uuid::Uuid::try_parse(id).map_or(true, |uuid| {
            uuid.hyphenated().to_string() != id.to_ascii_lowercase()
        })
    {
        return refuse(
            400,
            "BadMessageId",
            format!("apns-id {id} is not a canonical uuid"),
        );
    }
    if body.len() > 4096 {
        return refuse(413, "PayloadTooLarge", format!("{} bytes", body.len()));
    }
    let payload = match serde_json::from_slice::<Value>(&body) {
        Ok(payload) if payload.get("aps").is_some_and(Value::is_object) => payload,
        Ok(_) => return refuse(400, "PayloadEmpty", "no aps dictionary".into()),
        Err(error) => return refuse(400, "BadRequest", format!("body is not JSON: {error}")),
    };
    let apns_id = header("apns-id").map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let recorded = Recorded {
        platform: Platform::Apns,
        key: token,
        headers: header_map(&headers),
        payload,
        status: 0,
        http2: true,
        received_at: std::time::Instant::now(),
    };
    state.accept(recorded, Reply::status(200).header("apns-id", &apns_id))
}

/// Apple's checks of a provider token: ES256 signed by the key `kid` names, `iss` = the team,
/// `iat` within the last hour.
fn check_provider_token(state: &State, jwt: &str) -> Result<(), (&'static str, String)> {
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|error| ("InvalidProviderToken", format!("header: {error}")))?;
    if header.alg != Algorithm::ES256 {
        return Err(("InvalidProviderToken", format!("alg {:?}", header.alg)));
    }
    if header.kid.as_deref() != Some(super::APNS_KEY_ID) {
        return Err((
            "InvalidProviderToken",
            format!("unknown kid {:?}", header.kid),
        ));
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.required_spec_claims = HashSet::from(["iss".to_owned()]);
    validation.set_issuer(&[super::APNS_TEAM_ID]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &state.apns_key, &validation)
        .map_err(|error| ("InvalidProviderToken", format!("{error}")))?
        .claims;
    if now() - claims.iat >= 3600 {
        return Err((
            "ExpiredProviderToken",
            format!("iat {} is over an hour old", claims.iat),
        ));
    }
    if claims.iat > now() + 60 {
        return Err((
            "InvalidProviderToken",
            format!("iat {} is in the future", claims.iat),
        ));
    }
    Ok(())
}
