//! What notification reads from other services, through their internal contracts (spec §0.2):
//! who is ONLINE and in which manual status (PresenceInternalService.GetDeliveryState), and
//! what a message says (MessageInternalService.GetNotificationPreviews). Bus events carry no
//! content, so the text of a push is read when the push is prepared: a message deleted by
//! then is never shown.
//!
//! Calls go over gRPC with a service token, also in the whole mesh (to its own internal
//! port), so the one path tested is the one deployed.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_authn::ServiceTokens;
use echo_ids::{ConversationId, DeviceId, MessageId, UserId};
use echo_proto::echo::message::v1 as msg;
use echo_proto::echo::presence::v1 as presence;
use msg::message_internal_service_client::MessageInternalServiceClient;
use presence::presence_internal_service_client::PresenceInternalServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How long one internal call may take before the caller treats it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The most ids one GetDeliveryState / GetNotificationPreviews call takes.
pub const MAX_IDS_PER_CALL: usize = 100;

/// A user's delivery state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Devices that are ONLINE now (AWAY and idle devices are not: they never suppress).
    pub online_devices: Vec<DeviceId>,
    /// Do not disturb: pushes go silent.
    pub dnd: bool,
}

/// A message as a push shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preview {
    /// The message exists: its text (≤120 characters) and whom it replies to.
    Available {
        /// The conversation.
        conversation_id: ConversationId,
        /// The sender.
        sender: UserId,
        /// The start of its text, or a label for what it carries.
        text: String,
        /// The sender of the message it replies to.
        reply_to_sender: Option<UserId>,
    },
    /// Deleted for everyone, or never existed: nothing to show, nothing to push.
    Gone,
}

/// The reads the pipeline needs from other services. An error means "not now": callers
/// degrade (no preview in the inbox, push as if offline) or retry, never lose the push.
#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// Delivery state of each of `users` (absent users: offline, no DND).
    async fn delivery(&self, users: &[UserId]) -> Result<HashMap<UserId, Delivery>, tonic::Status>;

    /// Previews of `messages` (at most [`MAX_IDS_PER_CALL`]).
    async fn previews(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, Preview>, tonic::Status>;
}

type Authed = InterceptedService<Channel, ServiceTokens>;

/// [`Upstream`] over gRPC to the internal ports.
pub struct GrpcUpstream {
    message: MessageInternalServiceClient<Authed>,
    presence: Option<PresenceInternalServiceClient<Authed>>,
}

fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

impl GrpcUpstream {
    /// Clients of MessageService's internal port at `message_url` and, when given,
    /// PresenceService's at `presence_url` (without it every user counts as offline), calling
    /// as the notification service with `tokens`. Connects lazily.
    pub fn new(
        message_url: &str,
        presence_url: Option<&str>,
        tokens: ServiceTokens,
    ) -> Result<Self, tonic::transport::Error> {
        let message =
            MessageInternalServiceClient::with_interceptor(channel(message_url)?, tokens.clone());
        let presence = match presence_url {
            Some(url) => Some(PresenceInternalServiceClient::with_interceptor(
                channel(url)?,
                tokens,
            )),
            None => None,
        };
        Ok(Self { message, presence })
    }
}

/// An id of the kind the caller names from a response's field; None when it is not one.
fn parse<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.parse().ok()
}

#[async_trait]
impl Upstream for GrpcUpstream {
    async fn delivery(&self, users: &[UserId]) -> Result<HashMap<UserId, Delivery>, tonic::Status> {
        let Some(client) = &self.presence else {
            return Ok(HashMap::new());
        };
        let mut states = HashMap::with_capacity(users.len());
        for chunk in users.chunks(MAX_IDS_PER_CALL) {
            let request = presence::GetDeliveryStateRequest {
                user_ids: chunk.iter().map(UserId::to_string).collect(),
            };
            let response = client.clone().get_delivery_state(request).await?;
            for state in response.into_inner().states {
                let Some(user) = parse(&state.user_id) else {
                    continue;
                };
                let dnd = state.manual_status == presence::PresenceStatus::Dnd as i32
                    && clears_later(state.clears_at.as_ref());
                let online_devices = state
                    .online_device_ids
                    .iter()
                    .filter_map(|d| parse(d))
                    .collect();
                states.insert(
                    user,
                    Delivery {
                        online_devices,
                        dnd,
                    },
                );
            }
        }
        Ok(states)
    }

    async fn previews(
        &self,
        messages: &[MessageId],
    ) -> Result<HashMap<MessageId, Preview>, tonic::Status> {
        let mut previews = HashMap::with_capacity(messages.len());
        for chunk in messages.chunks(MAX_IDS_PER_CALL) {
            let request = msg::GetNotificationPreviewsRequest {
                message_ids: chunk.iter().map(MessageId::to_string).collect(),
            };
            let response = self
                .message
                .clone()
                .get_notification_previews(request)
                .await?;
            for preview in response.into_inner().previews {
                let Some(id) = parse(&preview.message_id) else {
                    continue;
                };
                let available = preview.state == msg::NotificationPreviewState::Available as i32;
                let value = match (
                    available,
                    parse(&preview.conversation_id),
                    parse(&preview.sender_user_id),
                ) {
                    (true, Some(conversation_id), Some(sender)) => Preview::Available {
                        conversation_id,
                        sender,
                        text: preview.preview,
                        reply_to_sender: parse(&preview.reply_to_sender_user_id),
                    },
                    _ => Preview::Gone,
                };
                previews.insert(id, value);
            }
        }
        Ok(previews)
    }
}

/// A manual status with no `clears_at`, or one in the future, is in force.
fn clears_later(clears_at: Option<&prost_types::Timestamp>) -> bool {
    let Some(at) = clears_at else { return true };
    let at = DateTime::<Utc>::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0));
    at.is_none_or(|at| at > Utc::now())
}
