//! Typing indicators: ephemeral, never stored, lapsing by themselves (DESIGN §7).

use chrono::{DateTime, Utc};
use echo_ids::ConversationId;

use crate::conversations::Conversations;
use crate::error::MessageError;
use crate::rules;
use crate::store::Actor;

impl Conversations {
    /// Set (or clear) `actor`'s typing indicator in `conversation`: only members who may post,
    /// at most [`rules::TYPING`] calls per user (RATE_LIMITED beyond), and at most one
    /// `typing = true` forwarded per device and conversation per 2 s (the rest are absorbed:
    /// the indicator forwarded last is still live). Returns when it lapses (`None` when
    /// cleared).
    pub async fn set_typing(
        &self,
        actor: Actor,
        conversation: ConversationId,
        typing: bool,
    ) -> Result<Option<DateTime<Utc>>, MessageError> {
        self.store.postable(actor, conversation).await?;
        let user = actor.user_id.to_string();
        self.limits
            .take(&[(rules::TYPING, &user)])
            .await
            .map_err(MessageError::RateLimited)?;
        let ttl = chrono::Duration::from_std(self.live.settings().typing_ttl)
            .unwrap_or(chrono::Duration::seconds(6));
        let expires_at = typing.then(|| Utc::now() + ttl);
        if typing {
            let key = format!("{}:{conversation}", actor.device_id);
            if self
                .limits
                .take(&[(rules::TYPING_FORWARD, &key)])
                .await
                .is_err()
            {
                return Ok(expires_at);
            }
        }
        self.live
            .publisher()
            .typing(conversation, actor.user_id, expires_at)
            .await;
        Ok(expires_at)
    }
}
