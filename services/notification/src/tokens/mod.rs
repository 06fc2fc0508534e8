//! Push tokens: RegisterPushToken, UnregisterPushToken and ListPushTokens (spec §B1).
//!
//! A device has at most one token per platform, replaced in place when it registers again
//! (the registration keeps its `push_token_id` and `created_at`, and its pending pushes, which
//! are for the same device). A `(platform, app_id, token)` registered by another device or
//! user is moved: that registration and its pending pushes end in the same transaction, and
//! the caller's registration carries the token. `format` says what a token looks like on each
//! platform; `store` holds the transaction scripts.
//!
//! Some platforms ask the destination before a token is stored: a UnifiedPush endpoint must
//! answer the distributor's discovery `GET` (spec §B4), which the platform's provider does
//! ([`PushProvider::check_registration`]). Any other answer, or none, is INVALID_ARGUMENT on
//! `token`, an unreachable endpoint included: the endpoint is the client's, and a refusal the
//! client can read ("could not be reached") serves it better than UNAVAILABLE, which would
//! blame this server and invite retries of a registration that cannot succeed as it is.

mod format;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_authn::Caller;
use echo_cache::{Limits, Rule};
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::notification::v1 as pb;
use echo_push::{PushProvider, Target};
use echo_runtime::{Check, PageSize};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use format::{MAX_TOKEN_BYTES, Platform, https_url, parse_token, suffix, token_size};

use crate::error::{NotificationError, checked};
use crate::store::NotificationStore;

/// Most push tokens one user may hold, over all their devices.
pub const MAX_TOKENS_PER_USER: usize = 50;
/// Registrations per device: 20 an hour (a token rotates a few times a year; a loop does not).
const REGISTER: Rule = Rule::per(
    "notification.push_token.register",
    20,
    Duration::from_secs(3600),
);
/// Longest `app_id`, in characters.
const MAX_APP_ID_CHARS: usize = 255;
/// ListPushTokens pages.
const LIST_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// A registration as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushToken {
    /// Id of the registration (UUIDv7).
    pub id: Uuid,
    /// Whose it is.
    pub user_id: UserId,
    /// The device that registered it.
    pub device_id: DeviceId,
    /// Delivery platform.
    pub platform: Platform,
    /// App identifier; empty if none.
    pub app_id: String,
    /// The token in its stored form (see [`parse_token`]).
    pub token: String,
    /// APNs sandbox environment.
    pub sandbox: bool,
    /// First registered.
    pub created_at: DateTime<Utc>,
    /// Last registered again or replaced.
    pub updated_at: DateTime<Utc>,
    /// Last successful delivery, if any.
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// A checked registration request from one device.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The caller.
    pub user_id: UserId,
    /// The calling device (`did`).
    pub device_id: DeviceId,
    /// The calling session (`sid`).
    pub session_id: SessionId,
    /// Delivery platform.
    pub platform: Platform,
    /// App identifier; empty if none.
    pub app_id: String,
    /// The token in its stored form.
    pub token: String,
    /// APNs sandbox environment (false for every other platform).
    pub sandbox: bool,
}

/// Where a ListPushTokens page resumes: below this id.
#[derive(Debug, Serialize, Deserialize)]
struct TokenPosition {
    before_push_token_id: Uuid,
}

/// The push-token RPCs over notification's store.
#[derive(Clone)]
pub struct Tokens {
    store: NotificationStore,
    limits: Limits,
    configured: HashSet<Platform>,
    /// The providers that check a registration before it is stored (see the module doc).
    providers: HashMap<Platform, Arc<dyn PushProvider>>,
    production: bool,
}

impl Tokens {
    /// Token handlers accepting registrations for `configured` platforms without asking any
    /// destination (tests of the rules and the store); `production` refuses URLs that point
    /// inside the network.
    pub fn new(
        store: NotificationStore,
        limits: Limits,
        configured: HashSet<Platform>,
        production: bool,
    ) -> Self {
        Self {
            store,
            limits,
            configured,
            providers: HashMap::new(),
            production,
        }
    }

    /// Token handlers accepting registrations for the platforms `providers` has, each checked
    /// by its provider before it is stored (UnifiedPush's discovery).
    pub fn with_providers(
        store: NotificationStore,
        limits: Limits,
        providers: HashMap<Platform, Arc<dyn PushProvider>>,
        production: bool,
    ) -> Self {
        Self {
            store,
            limits,
            configured: providers.keys().copied().collect(),
            providers,
            production,
        }
    }

    /// RegisterPushToken: check → platform available → rate limit → ask the destination (for
    /// UnifiedPush) → store (cap, replace, move). The rate limit comes before the destination
    /// is asked, so a device cannot make this server GET more than 20 URLs an hour.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, device = %caller.device_id))]
    pub async fn register(
        &self,
        caller: Caller,
        request: pb::RegisterPushTokenRequest,
    ) -> Result<pb::RegisterPushTokenResponse, NotificationError> {
        let registration = registration(caller, &request, self.production)?;
        if !self.configured.contains(&registration.platform) {
            return Err(NotificationError::PlatformUnavailable(
                registration.platform,
            ));
        }
        let device = caller.device_id.to_string();
        self.limits
            .take(&[(REGISTER, &device)])
            .await
            .map_err(NotificationError::RateLimited)?;
        self.check_destination(&registration).await?;
        let token = self
            .store
            .register_token(&registration, Utc::now(), MAX_TOKENS_PER_USER)
            .await?;
        Ok(pb::RegisterPushTokenResponse {
            push_token: Some(token_pb(&token)),
        })
    }

    /// The platform's provider's registration check (a field violation on `token`), if the
    /// platform has one.
    async fn check_destination(
        &self,
        registration: &Registration,
    ) -> Result<(), NotificationError> {
        let Some(provider) = self.providers.get(&registration.platform) else {
            return Ok(());
        };
        let mut target = Target::new(registration.token.clone(), Utc::now());
        target.app_id = Some(registration.app_id.clone()).filter(|id| !id.is_empty());
        target.sandbox = registration.sandbox;
        if let Err(why) = provider.check_registration(&target).await {
            tracing::info!(
                platform = registration.platform.name(),
                %why,
                "push token refused by its destination"
            );
            let mut check = Check::new();
            check.push("token", why);
            checked(check)?;
        }
        Ok(())
    }

    /// UnregisterPushToken: removes the caller's own registration; unknown and foreign ids
    /// succeed and change nothing.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn unregister(
        &self,
        caller: Caller,
        request: pb::UnregisterPushTokenRequest,
    ) -> Result<pb::UnregisterPushTokenResponse, NotificationError> {
        let mut check = Check::new();
        let id = check.id("push_token_id", &request.push_token_id);
        checked(check)?;
        self.store
            .unregister_token(caller.user_id, id.expect("checked"))
            .await?;
        Ok(pb::UnregisterPushTokenResponse {})
    }

    /// ListPushTokens: the caller's registrations over all devices, newest first.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn list(
        &self,
        caller: Caller,
        request: pb::ListPushTokensRequest,
    ) -> Result<pb::ListPushTokensResponse, NotificationError> {
        let mut check = Check::new();
        let page = check.page::<TokenPosition>(request.page_size, &request.page_token, LIST_PAGE);
        checked(check)?;
        let before = page.after.as_ref().map(|p| p.before_push_token_id);
        let tokens = self
            .store
            .list_tokens(caller.user_id, before, page.fetch_limit())
            .await?;
        let (tokens, next_page_token) = page.finish(tokens, |t| TokenPosition {
            before_push_token_id: t.id,
        });
        Ok(pb::ListPushTokensResponse {
            push_tokens: tokens.iter().map(token_pb).collect(),
            next_page_token,
        })
    }
}

/// The registration `request` asks for, every bad field named.
pub fn registration(
    caller: Caller,
    request: &pb::RegisterPushTokenRequest,
    production: bool,
) -> Result<Registration, NotificationError> {
    let mut check = Check::new();
    let platform = Platform::from_proto(request.platform);
    if platform.is_none() {
        check.push(
            "platform",
            "must be FCM, APNS, WEBPUSH, WEBHOOK or UNIFIEDPUSH",
        );
    }
    // A huge app_id is refused on its byte length, before its characters are counted.
    let app_id = if request.app_id.len() > MAX_APP_ID_CHARS * 4 {
        check.push(
            "app_id",
            format!("must be at most {MAX_APP_ID_CHARS} characters"),
        );
        String::new()
    } else {
        check.text("app_id", &request.app_id, MAX_APP_ID_CHARS, false)
    };
    let token = match platform {
        Some(platform) => check.parse("token", parse_token(platform, &request.token, production)),
        None => check.parse("token", token_size(&request.token)).and(None),
    };
    checked(check)?;
    let platform = platform.expect("checked");
    Ok(Registration {
        user_id: caller.user_id,
        device_id: caller.device_id,
        session_id: caller.session_id,
        platform,
        app_id,
        token: token.expect("checked"),
        sandbox: request.sandbox && platform == Platform::Apns,
    })
}

fn token_pb(token: &PushToken) -> pb::PushToken {
    pb::PushToken {
        push_token_id: token.id.to_string(),
        device_id: token.device_id.to_string(),
        platform: token.platform.proto() as i32,
        token_suffix: suffix(token.platform, &token.token),
        app_id: token.app_id.clone(),
        sandbox: token.sandbox,
        created_at: Some(crate::api::timestamp(token.created_at)),
        updated_at: Some(crate::api::timestamp(token.updated_at)),
        last_delivered_at: token.last_delivered_at.map(crate::api::timestamp),
    }
}

#[cfg(test)]
mod tests;
