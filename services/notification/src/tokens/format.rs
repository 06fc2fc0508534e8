//! What a push token looks like on each platform (spec §B1), as pure functions with a table
//! test: parse, don't validate (STYLE 3). A token that passes is returned in the form it is
//! stored and delivered in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use echo_proto::echo::notification::v1 as pb;
use echo_push::address::internal_host;
use serde::{Deserialize, Serialize};

/// The most bytes a token may have (the proto's limit), checked before anything else.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// APNs device tokens: lowercase hex of this many characters.
const APNS_HEX: std::ops::RangeInclusive<usize> = 64..=200;
/// Web Push endpoints: at most this many bytes.
const MAX_ENDPOINT_BYTES: usize = 1000;
/// `keys.p256dh`: an uncompressed P-256 point.
const P256DH_BYTES: usize = 65;
/// `keys.auth`: the subscription's authentication secret.
const AUTH_BYTES: usize = 16;

/// Where a push token delivers (the proto's `PushPlatform`, UNSPECIFIED refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Firebase Cloud Messaging.
    Fcm,
    /// Apple Push Notification service.
    Apns,
    /// Web Push (RFC 8030).
    WebPush,
    /// An HTTPS endpoint of the user's.
    Webhook,
    /// UnifiedPush: a Web Push subscription from a distributor app, whose endpoint must answer
    /// UnifiedPush's discovery at registration.
    UnifiedPush,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 5] = [
        Platform::Fcm,
        Platform::Apns,
        Platform::WebPush,
        Platform::Webhook,
        Platform::UnifiedPush,
    ];

    /// The platform a request names; None for UNSPECIFIED and unknown numbers.
    pub fn from_proto(value: i32) -> Option<Platform> {
        match pb::PushPlatform::try_from(value).ok()? {
            pb::PushPlatform::Unspecified => None,
            pb::PushPlatform::Fcm => Some(Platform::Fcm),
            pb::PushPlatform::Apns => Some(Platform::Apns),
            pb::PushPlatform::Webpush => Some(Platform::WebPush),
            pb::PushPlatform::Webhook => Some(Platform::Webhook),
            pb::PushPlatform::Unifiedpush => Some(Platform::UnifiedPush),
        }
    }

    /// The proto value.
    pub fn proto(self) -> pb::PushPlatform {
        match self {
            Platform::Fcm => pb::PushPlatform::Fcm,
            Platform::Apns => pb::PushPlatform::Apns,
            Platform::WebPush => pb::PushPlatform::Webpush,
            Platform::Webhook => pb::PushPlatform::Webhook,
            Platform::UnifiedPush => pb::PushPlatform::Unifiedpush,
        }
    }

    /// `push_tokens.platform`: the proto's number.
    pub fn code(self) -> i16 {
        self.proto() as i16
    }

    /// The platform stored as `code`.
    pub fn from_code(code: i16) -> Option<Platform> {
        Platform::from_proto(i32::from(code))
    }

    /// The name errors and configuration use (`FCM`, `APNS`, `WEBPUSH`, `WEBHOOK`,
    /// `UNIFIEDPUSH`).
    pub fn name(self) -> &'static str {
        match self {
            Platform::Fcm => "FCM",
            Platform::Apns => "APNS",
            Platform::WebPush => "WEBPUSH",
            Platform::Webhook => "WEBHOOK",
            Platform::UnifiedPush => "UNIFIEDPUSH",
        }
    }
}

/// A browser's `PushSubscription` as JSON; other members (`expirationTime`) are ignored.
#[derive(Debug, Deserialize, Serialize)]
struct Subscription {
    endpoint: String,
    keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, Serialize)]
struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

/// `token` checked for `platform`, in its stored form: as given, except a Web Push (or
/// UnifiedPush: the same JSON) subscription, which is re-serialised compactly with only `endpoint` and `keys` (so the same subscription
/// sent with other spacing or extra members is the same token). `production` refuses URLs that
/// point at private, loopback or link-local addresses. The error says what is wrong, for the
/// `token` field violation.
pub fn parse_token(platform: Platform, token: &str, production: bool) -> Result<String, String> {
    token_size(token)?;
    match platform {
        Platform::Apns => apns(token).map(|()| token.to_owned()),
        Platform::Fcm => fcm(token).map(|()| token.to_owned()),
        Platform::WebPush | Platform::UnifiedPush => web_push(token, production),
        Platform::Webhook => https_url(token, production).map(|()| token.to_owned()),
    }
}

/// The checks every platform shares, before any per-character work: present, and at most
/// [`MAX_TOKEN_BYTES`].
pub fn token_size(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("is required".into());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!("must be at most {MAX_TOKEN_BYTES} bytes"));
    }
    Ok(())
}

fn apns(token: &str) -> Result<(), String> {
    let hex = token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex || !APNS_HEX.contains(&token.len()) {
        return Err(format!(
            "an APNs device token is {} to {} lowercase hex characters",
            APNS_HEX.start(),
            APNS_HEX.end()
        ));
    }
    Ok(())
}

fn fcm(token: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-');
    if !token.bytes().all(allowed) {
        return Err("an FCM registration token has only letters, digits, '_', ':' and '-'".into());
    }
    Ok(())
}

fn web_push(token: &str, production: bool) -> Result<String, String> {
    let subscription: Subscription = serde_json::from_str(token).map_err(|_| {
        "a Web Push or UnifiedPush token is the PushSubscription as JSON: \
         {\"endpoint\", \"keys\": {\"p256dh\", \"auth\"}}"
            .to_owned()
    })?;
    if subscription.endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(format!(
            "endpoint must be at most {MAX_ENDPOINT_BYTES} bytes"
        ));
    }
    https_url(&subscription.endpoint, production).map_err(|why| format!("endpoint {why}"))?;
    let keys = &subscription.keys;
    let point = base64url(&keys.p256dh);
    if point.as_ref().map(Vec::len) != Some(P256DH_BYTES) || point.is_some_and(|p| p[0] != 4) {
        return Err(format!(
            "keys.p256dh must be base64url of an uncompressed P-256 point ({P256DH_BYTES} bytes)"
        ));
    }
    if base64url(&keys.auth).map(|secret| secret.len()) != Some(AUTH_BYTES) {
        return Err(format!("keys.auth must be base64url of {AUTH_BYTES} bytes"));
    }
    Ok(serde_json::to_string(&subscription).expect("a subscription serialises"))
}

/// Base64url `text` decoded (padding optional), if it decodes.
fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// An `https://` URL with a host and no user info; in production, not naming a private,
/// loopback, link-local or otherwise internal address (an outgoing request must not reach
/// the inside of our network). Names are only checked here: what a name resolves to must be
/// checked again when connecting (the dispatcher's job).
pub fn https_url(text: &str, production: bool) -> Result<(), String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| "must be an https:// URL".to_owned())?;
    let https = uri
        .scheme_str()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"));
    let Some(authority) = uri.authority().filter(|_| https) else {
        return Err("must be an https:// URL".into());
    };
    if authority.as_str().contains('@') {
        return Err("must not contain user info (user:password@)".into());
    }
    let host = authority.host();
    if host.is_empty() {
        return Err("must name a host".into());
    }
    if production && internal_host(host) {
        return Err("must not point at a private, loopback or link-local address".into());
    }
    Ok(())
}

/// What to show of a stored token (`PushToken.token_suffix`): its last 8 characters; for a
/// Web Push or UnifiedPush subscription, of its endpoint (the end of the JSON would be its
/// keys).
pub fn suffix(platform: Platform, token: &str) -> String {
    let shown = match platform {
        Platform::WebPush | Platform::UnifiedPush => serde_json::from_str::<Subscription>(token)
            .map(|s| s.endpoint)
            .unwrap_or_default(),
        _ => token.to_owned(),
    };
    let skip = shown.chars().count().saturating_sub(8);
    shown.chars().skip(skip).collect()
}

#[cfg(test)]
mod tests;
