//! A fake push service for tests: FCM with its OAuth token endpoint, APNs (HTTP/2 only),
//! Web Push and a webhook receiver, all on one TLS listener on 127.0.0.1 whose certificate
//! is signed by a CA the providers are told to trust ([`FakePushServer::http_config`]).
//!
//! It **checks each request as the real service would** (spec §B6): the RS256 assertion, its
//! scope and audience, and that the FCM bearer is a token it issued; the APNs JWT (ES256,
//! `kid`, `iss`, `iat` under an hour), headers and the 4 KB limit; the VAPID JWT (`aud` = the
//! endpoint's origin, `exp` within 24 h, signed by `k`, `k` = the key the browser subscribed
//! with) and that the body decrypts with the subscription's private key; the webhook HMAC.
//! A `GET` of a Web Push endpoint is UnifiedPush discovery: it answers
//! `{"unifiedpush":{"version":1}}` unless the test said otherwise
//! ([`FakePushServer::answer_discovery`]), and is kept in [`FakePushServer::discoveries`].
//! A refused request answers what the real service answers and is kept in
//! [`FakePushServer::rejections`]; an accepted one is recorded, decoded, in
//! [`FakePushServer::requests`], and answered with the next scripted [`Reply`] for its token,
//! or success.
//!
//! One piece: the fake's shared state and its test-facing handle. `start` makes each platform's
//! keys, the `*_config` methods hand the providers the private halves, `State` keeps the public
//! halves the handlers check with, and every push request a handler takes or refuses goes through
//! `State::accept` or `State::reject` into what `requests` and `rejections` read; the per-platform
//! checks already live beside it (`fcm`, `apns`, `webpush`, `webhook`, `tls`). Split further, a key
//! or a scripted reply could be set on one side and never seen on the other.

mod apns;
mod fcm;
mod tls;
mod webhook;
mod webpush;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::DecodingKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::DecodePrivateKey;
use secrecy::SecretString;
use serde_json::json;

use crate::webpush::ece::random_secret_key;
use crate::{ApnsConfig, FcmConfig, HttpConfig, Platform, WebPushConfig, WebhookConfig};

/// The test service account's RSA key (2048 bits, generated for these tests only: generating
/// one per run costs seconds in an unoptimised build).
const SERVICE_ACCOUNT_PEM: &str = include_str!("test_service_account.pem");
const PROJECT_ID: &str = "echo-fake";
const CLIENT_EMAIL: &str = "push@echo-fake.iam.gserviceaccount.com";
const APNS_TEAM_ID: &str = "ECHOTEAM01";
const APNS_KEY_ID: &str = "ECHOKEY001";
const APNS_TOPIC: &str = "app.echo.ios";
const VAPID_SUBJECT: &str = "mailto:push@echo.test";

/// A scripted answer to the next accepted request for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Response body (JSON for FCM and APNs errors).
    pub body: String,
}

impl Reply {
    /// A bare status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// 429 with `Retry-After: <seconds>`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Reply::status(429).header("Retry-After", &retry_after_secs.to_string())
    }

    /// `status` with a JSON body (`Content-Type: application/json`).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Reply {
            body: body.to_string(),
            ..Self::status(status)
        }
        .header("content-type", "application/json")
    }

    /// UnifiedPush's discovery answer, `{"unifiedpush":{"version":1}}`.
    pub fn unifiedpush() -> Self {
        Self::json(200, &json!({ "unifiedpush": { "version": 1 } }))
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// An FCM v1 error: a `google.rpc.Status` with an `FcmError` detail.
    pub fn fcm_error(status: u16, error_code: &str, message: &str) -> Self {
        Reply {
            body: fcm::error_body(status, Some(error_code), message, None),
            ..Self::status(status)
        }
    }

    /// FCM 404 UNREGISTERED: the app instance is gone.
    pub fn fcm_unregistered() -> Self {
        Self::fcm_error(404, "UNREGISTERED", "Requested entity was not found.")
    }

    /// FCM 403 SENDER_ID_MISMATCH: the token belongs to another project.
    pub fn fcm_sender_id_mismatch() -> Self {
        Self::fcm_error(403, "SENDER_ID_MISMATCH", "SenderId mismatch")
    }

    /// FCM 400 INVALID_ARGUMENT naming the token (a `BadRequest` violation on
    /// `message.token`).
    pub fn fcm_invalid_token() -> Self {
        let message = "The registration token is not a valid FCM registration token";
        let body = fcm::error_body(
            400,
            Some("INVALID_ARGUMENT"),
            message,
            Some("message.token"),
        );
        Reply {
            body,
            ..Self::status(400)
        }
    }

    /// FCM 400 INVALID_ARGUMENT about the payload: our bug, never the token's.
    pub fn fcm_invalid_payload() -> Self {
        let message = "Invalid value at 'message.data[0].value' (TYPE_STRING), 1";
        let body = fcm::error_body(
            400,
            Some("INVALID_ARGUMENT"),
            message,
            Some("message.data[0].value"),
        );
        Reply {
            body,
            ..Self::status(400)
        }
    }

    /// An APNs error `{"reason": …}`.
    pub fn apns(status: u16, reason: &str) -> Self {
        Reply {
            body: json!({ "reason": reason }).to_string(),
            ..Self::status(status)
        }
    }

    /// APNs 410 `{"reason":"Unregistered","timestamp":<ms>}`: the token has been invalid since
    /// `at`.
    pub fn apns_unregistered(at: DateTime<Utc>) -> Self {
        let body = json!({ "reason": "Unregistered", "timestamp": at.timestamp_millis() });
        Reply {
            body: body.to_string(),
            ..Self::status(410)
        }
    }

    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::IM_A_TEAPOT),
            self.body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// One request the fake accepted, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Which service it reached.
    pub platform: Platform,
    /// The token it was for: FCM registration token, APNs device token, Web Push
    /// subscription id, webhook name.
    pub key: String,
    /// Request headers, lowercase names.
    pub headers: BTreeMap<String, String>,
    /// The payload: the FCM or APNs JSON, the decrypted Web Push JSON, the webhook JSON.
    pub payload: serde_json::Value,
    /// The status it was answered with (a scripted one, or success).
    pub status: u16,
    /// Whether it came over HTTP/2.
    pub http2: bool,
    /// When the fake accepted it (benchmarks measure up to here).
    pub received_at: Instant,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A request the fake refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Which service refused it (`None`: the OAuth token endpoint).
    pub platform: Option<Platform>,
    /// The status answered.
    pub status: u16,
    /// The check that failed.
    pub reason: String,
}

/// A Web Push subscription the fake can decrypt for.
#[derive(Debug, Clone)]
pub struct FakeSubscription {
    /// Its id: the last segment of the endpoint, the key for [`FakePushServer::script`].
    pub id: String,
    /// The token to register: the PushSubscription JSON.
    pub token: String,
}

struct SubscriptionKeys {
    private: p256::SecretKey,
    auth: [u8; 16],
}

/// What the handlers share.
pub(crate) struct State {
    base_url: String,
    service_account: DecodingKey,
    apns_key: DecodingKey,
    vapid_public: Vec<u8>,
    webhook_secret: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    access_tokens: HashMap<String, Instant>,
    token_lifetime: Option<Duration>,
    token_fetches: usize,
    subscriptions: HashMap<String, SubscriptionKeys>,
    scripts: HashMap<String, VecDeque<Reply>>,
    discovery_replies: HashMap<String, Reply>,
    discoveries: Vec<String>,
    requests: Vec<Recorded>,
    rejections: Vec<Rejection>,
}

impl State {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses a request: answer as the real service, remember why.
    pub(crate) fn reject(
        &self,
        platform: Option<Platform>,
        status: u16,
        reason: impl Into<String>,
        body: String,
    ) -> Response {
        let reason = reason.into();
        tracing::debug!(?platform, status, %reason, "fake push refused a request");
        self.inner().rejections.push(Rejection {
            platform,
            status,
            reason,
        });
        Reply {
            body,
            ..Reply::status(status)
        }
        .into_response()
    }

    /// Records an accepted request and answers with its token's next scripted reply, or
    /// `success`.
    pub(crate) fn accept(&self, mut recorded: Recorded, success: Reply) -> Response {
        let mut inner = self.inner();
        let scripted = inner
            .scripts
            .get_mut(&recorded.key)
            .and_then(VecDeque::pop_front);
        let reply = scripted.unwrap_or(success);
        recorded.status = reply.status;
        recorded.received_at = Instant::now();
        inner.requests.push(recorded);
        reply.into_response()
    }
}

/// Request headers as a lowercase map, for [`Recorded`].
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp()
}

/// The fake push service. Dropping it stops the server.
pub struct FakePushServer {
    addr: SocketAddr,
    state: Arc<State>,
    ca_pem: String,
    apns_key_pem: String,
    vapid_key: String,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakePushServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePushServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePushServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakePushServer {
    /// Starts the fake on `127.0.0.1:0` with fresh keys (the service account's is fixed).
    pub async fn start() -> Self {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake push");
        let addr = listener.local_addr().expect("fake push address");
        let base_url = format!("https://{addr}");
        let account = rsa::RsaPrivateKey::from_pkcs8_pem(SERVICE_ACCOUNT_PEM).expect("test key");
        let account_public = rsa::RsaPublicKey::from(&account)
            .to_pkcs1_der()
            .expect("der");
        let apns_secret = random_secret_key();
        let apns_point = apns_secret.public_key().to_encoded_point(false);
        let vapid_secret = random_secret_key();
        let vapid_public = vapid_secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let webhook_secret = hex::encode(rand::random::<[u8; 32]>());
        let state = Arc::new(State {
            base_url,
            service_account: DecodingKey::from_rsa_der(account_public.as_bytes()),
            apns_key: DecodingKey::from_ec_der(apns_point.as_bytes()),
            vapid_public,
            webhook_secret,
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route("/token", post(fcm::token))
            .route("/v1/projects/{project}/messages:send", post(fcm::send))
            .route("/3/device/{token}", post(apns::send))
            .route("/push/{id}", post(webpush::send).get(webpush::discover))
            .route("/hook/{name}", post(webhook::receive))
            .with_state(state.clone());
        let (tls, ca_pem) = tls::server_config();
        let server = tokio::spawn(tls::serve(listener, tls, router));
        FakePushServer {
            addr,
            state,
            ca_pem,
            apns_key_pem: apns_secret
                .to_pkcs8_pem(LineEnding::LF)
                .expect("pem")
                .to_string(),
            vapid_key: URL_SAFE_NO_PAD.encode(vapid_secret.to_bytes()),
            server,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The CA certificate (PEM) that signed the fake's TLS certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// HTTP settings that trust the fake's CA.
    pub fn http_config(&self) -> HttpConfig {
        HttpConfig {
            extra_root_pems: vec![self.ca_pem.clone()],
            ..HttpConfig::default()
        }
    }

    /// An FCM config for the fake's project, service account and token endpoint.
    pub fn fcm_config(&self) -> FcmConfig {
        FcmConfig {
            project_id: PROJECT_ID.into(),
            client_email: CLIENT_EMAIL.into(),
            private_key_id: Some("fake-key-1".into()),
            private_key_pem: SecretString::from(SERVICE_ACCOUNT_PEM),
            token_uri: format!("{}/token", self.base_url()),
            base_url: self.base_url().into(),
            max_requests_per_minute: crate::FCM_DEFAULT_MAX_PER_MINUTE,
            http: self.http_config(),
        }
    }

    /// An APNs config with the fake's team, key and topic; production and sandbox both here.
    pub fn apns_config(&self) -> ApnsConfig {
        ApnsConfig {
            team_id: APNS_TEAM_ID.into(),
            key_id: APNS_KEY_ID.into(),
            private_key_pem: SecretString::from(self.apns_key_pem.clone()),
            topic: APNS_TOPIC.into(),
            production_url: self.base_url().into(),
            sandbox_url: self.base_url().into(),
            http: self.http_config(),
        }
    }

    /// A Web Push config with the VAPID key the fake's subscriptions were made for.
    pub fn webpush_config(&self) -> WebPushConfig {
        WebPushConfig {
            vapid_private_key: SecretString::from(self.vapid_key.clone()),
            subject: VAPID_SUBJECT.into(),
            http: self.http_config(),
        }
    }

    /// A webhook config with the secret the fake's receiver checks.
    pub fn webhook_config(&self) -> WebhookConfig {
        let mut config = WebhookConfig::new(SecretString::from(self.state.webhook_secret.clone()));
        config.http.extra_root_pems = vec![self.ca_pem.clone()];
        config
    }

    /// A new browser subscription (its private key and auth secret stay in the fake, which
    /// decrypts what is sent to it).
    pub fn subscribe(&self) -> FakeSubscription {
        let private = random_secret_key();
        let auth: [u8; 16] = rand::random();
        let id = hex::encode(rand::random::<[u8; 12]>());
        let token = json!({
            "endpoint": format!("{}/push/{id}", self.base_url()),
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(private.public_key().to_encoded_point(false).as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(auth),
            },
        })
        .to_string();
        self.state
            .inner()
            .subscriptions
            .insert(id.clone(), SubscriptionKeys { private, auth });
        FakeSubscription { id, token }
    }

    /// What a `GET` of subscription `id`'s endpoint answers from now on, instead of UnifiedPush's
    /// discovery answer: a push service that is not a UnifiedPush server (a browser's answers
    /// 404 or 405, a misconfigured one `{}`).
    pub fn answer_discovery(&self, id: &str, reply: Reply) {
        self.state
            .inner()
            .discovery_replies
            .insert(id.to_owned(), reply);
    }

    /// The subscription ids whose endpoints were `GET` (UnifiedPush discovery), in order.
    pub fn discoveries(&self) -> Vec<String> {
        self.state.inner().discoveries.clone()
    }

    /// The receiver URL for a webhook called `name`.
    pub fn webhook_url(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base_url())
    }

    /// Queues answers for the next accepted requests for `key` (FCM token, APNs device token,
    /// subscription id, webhook name); once they are used up, requests succeed again.
    pub fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .inner()
            .scripts
            .entry(key.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every accepted request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.inner().requests.clone()
    }

    /// The accepted requests after the first `from`, in order: a watcher that keeps its place
    /// copies only what is new (a bench polling 100,000 requests would otherwise copy them
    /// all on every look, on the cores it measures).
    pub fn requests_since(&self, from: usize) -> Vec<Recorded> {
        let inner = self.state.inner();
        inner.requests.get(from..).unwrap_or_default().to_vec()
    }

    /// Every refused request so far, in order.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.state.inner().rejections.clone()
    }

    /// How many access tokens the OAuth endpoint has issued.
    pub fn oauth_tokens_issued(&self) -> usize {
        self.state.inner().token_fetches
    }

    /// The `expires_in` of access tokens issued from now on (default one hour).
    pub fn set_oauth_token_lifetime(&self, lifetime: Duration) {
        self.state.inner().token_lifetime = Some(lifetime);
    }

    /// Revokes every access token issued so far: FCM answers 401 to them.
    pub fn revoke_oauth_tokens(&self) {
        self.state.inner().access_tokens.clear();
    }
}
