//! The NotificationService handlers: take the caller from the request extensions, hand the
//! request to its feature (`tokens`, `inbox`, `badge`, `settings`, each of which parses,
//! decides and stores), map the result. No rules live here.

use chrono::{DateTime, Utc};
use echo_authn::Caller;
use echo_proto::echo::notification::v1 as pb;
use echo_proto::echo::notification::v1::notification_service_server::NotificationService;
use echo_runtime::Failure;
use tonic::{Request, Response, Status};

use crate::error::NotificationError;
use crate::store::NotificationStore;
use crate::tokens::Tokens;
use crate::{badge, inbox, settings};

/// The NotificationService handlers.
#[derive(Clone)]
pub struct NotificationApi {
    tokens: Tokens,
    store: NotificationStore,
}

impl NotificationApi {
    /// Handlers over the push-token rules and notification's store.
    pub fn new(tokens: Tokens, store: NotificationStore) -> Self {
        Self { tokens, store }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    Caller::of(request).map_err(|e| Failure::from(e).into())
}

fn reply<T>(result: Result<T, NotificationError>) -> Reply<T> {
    result.map(Response::new).map_err(Status::from)
}

/// A time as the proto carries it.
pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn register_push_token(
        &self,
        request: Request<pb::RegisterPushTokenRequest>,
    ) -> Reply<pb::RegisterPushTokenResponse> {
        let caller = caller(&request)?;
        reply(self.tokens.register(caller, request.into_inner()).await)
    }

    async fn unregister_push_token(
        &self,
        request: Request<pb::UnregisterPushTokenRequest>,
    ) -> Reply<pb::UnregisterPushTokenResponse> {
        let caller = caller(&request)?;
        reply(self.tokens.unregister(caller, request.into_inner()).await)
    }

    async fn list_push_tokens(
        &self,
        request: Request<pb::ListPushTokensRequest>,
    ) -> Reply<pb::ListPushTokensResponse> {
        let caller = caller(&request)?;
        reply(self.tokens.list(caller, request.into_inner()).await)
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Reply<pb::ListInboxResponse> {
        let user = caller(&request)?.user_id;
        reply(inbox::list(&self.store, user, request.into_inner()).await)
    }

    async fn mark_inbox_read(
        &self,
        request: Request<pb::MarkInboxReadRequest>,
    ) -> Reply<pb::MarkInboxReadResponse> {
        let user = caller(&request)?.user_id;
        reply(inbox::mark_read(&self.store, user, request.into_inner()).await)
    }

    async fn get_badge_count(
        &self,
        request: Request<pb::GetBadgeCountRequest>,
    ) -> Reply<pb::GetBadgeCountResponse> {
        let user = caller(&request)?.user_id;
        reply(badge::get(&self.store, user).await)
    }

    async fn get_notification_settings(
        &self,
        request: Request<pb::GetNotificationSettingsRequest>,
    ) -> Reply<pb::GetNotificationSettingsResponse> {
        let user = caller(&request)?.user_id;
        reply(settings::get(&self.store, user).await)
    }

    async fn update_notification_settings(
        &self,
        request: Request<pb::UpdateNotificationSettingsRequest>,
    ) -> Reply<pb::UpdateNotificationSettingsResponse> {
        let user = caller(&request)?.user_id;
        reply(settings::update(&self.store, user, request.into_inner()).await)
    }
}
