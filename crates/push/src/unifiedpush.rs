//! UnifiedPush: a distributor app on the device (ntfy, NextPush, …) gives the app a Web Push
//! endpoint, and the application server sends to it exactly as to a browser's (RFC 8030/8291/
//! 8292, the same VAPID key). What UnifiedPush adds is **discovery**: before an endpoint is
//! registered, the server `GET`s it and expects `{"unifiedpush":{"version":1}}`. The check is
//! what keeps a client from making us POST to any URL it names (spec §B4's SSRF check): an
//! endpoint that does not answer as a UnifiedPush server is refused at registration.
//!
//! [`UnifiedPushProvider`] sends through the Web Push provider it is given (one VAPID sender,
//! one JWT cache, the same answers classified the same way) and does discovery with a client
//! of its own: the same TLS roots, https only, no redirects followed (a 3xx is a refusal),
//! a 5 s timeout, and at most [`MAX_ANSWER_BYTES`] of the answer read.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use serde::Deserialize;

use crate::webpush::Subscription;
use crate::{ConfigError, HttpConfig, Outcome, Platform, Push, PushProvider, Target, http};

/// How long discovery waits for the endpoint (the caller of RegisterPushToken waits too).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a discovery answer read; the expected one is 28 bytes.
pub const MAX_ANSWER_BYTES: usize = 1024;
/// The UnifiedPush server version Echo speaks.
const VERSION: u64 = 1;

/// Sends UnifiedPush messages (as Web Push) and checks endpoints at registration.
pub struct UnifiedPushProvider {
    web_push: Arc<dyn PushProvider>,
    client: reqwest::Client,
    /// Endpoints must lead to public addresses (production).
    public_only: bool,
}

impl std::fmt::Debug for UnifiedPushProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedPushProvider")
            .finish_non_exhaustive()
    }
}

impl UnifiedPushProvider {
    /// UnifiedPush over `web_push` (the configured Web Push provider, whose VAPID key signs
    /// UnifiedPush messages too); discovery trusts `http`'s extra roots, with its own timeout.
    pub fn new(web_push: Arc<dyn PushProvider>, http: &HttpConfig) -> Result<Self, ConfigError> {
        let discovery = HttpConfig {
            timeout: DISCOVERY_TIMEOUT,
            ..http.clone()
        };
        Ok(UnifiedPushProvider {
            web_push,
            client: http::client(&discovery, false)?,
            public_only: http.public_only,
        })
    }

    /// UnifiedPush discovery: `GET endpoint` must answer 2xx with
    /// `{"unifiedpush":{"version":1}}`. `Err` is the reason as a sentence (`endpoint is not a
    /// UnifiedPush server: …`). Transport failures say only their kind: the detail (which
    /// could describe hosts the caller cannot see) goes to the debug log.
    #[tracing::instrument(skip_all)]
    pub async fn discover(&self, endpoint: &str) -> Result<(), String> {
        let refuse = |why: &str| format!("endpoint is not a UnifiedPush server: {why}");
        if let Some(Outcome::Drop { reason }) = http::refuse_internal(self.public_only, endpoint) {
            return Err(format!("endpoint refused: {reason}"));
        }
        let mut response = self
            .client
            .get(endpoint)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| refuse(&unreachable(&error)))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(refuse(&format!(
                "GET answered {}: redirects are not followed",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(refuse(&format!("GET answered {}", status.as_u16())));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(refuse(&format!(
                "its answer is over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| refuse(&unreachable(&error)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(refuse(&format!(
                    "its answer is over {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(Deserialize)]
        struct Answer {
            unifiedpush: Server,
        }
        #[derive(Deserialize)]
        struct Server {
            version: u64,
        }
        match serde_json::from_slice::<Answer>(&body) {
            Ok(answer) if answer.unifiedpush.version == VERSION => Ok(()),
            Ok(answer) => Err(refuse(&format!(
                "it speaks UnifiedPush version {}, not {VERSION}",
                answer.unifiedpush.version
            ))),
            Err(_) => Err(refuse(
                "GET did not answer {\"unifiedpush\":{\"version\":1}}",
            )),
        }
    }
}

/// What a failed discovery request says about the endpoint, coarsely.
fn unreachable(error: &reqwest::Error) -> String {
    tracing::debug!(%error, "unifiedpush discovery failed in transport");
    if http::refused_internal(error) {
        http::InternalAddress.to_string()
    } else if error.is_timeout() {
        format!("GET got no answer within {} s", DISCOVERY_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "it could not be reached".into()
    } else {
        "GET failed".into()
    }
}

#[async_trait::async_trait]
impl PushProvider for UnifiedPushProvider {
    fn platform(&self) -> Platform {
        Platform::UnifiedPush
    }

    async fn send(&self, push: &Push, target: &Target) -> Outcome {
        self.web_push.send(push, target).await
    }

    async fn check_registration(&self, target: &Target) -> Result<(), String> {
        let subscription = Subscription::parse(&target.token)?;
        self.discover(&subscription.endpoint).await
    }
}
