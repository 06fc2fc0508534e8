//! Sessions and the token pairs they are issued.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use echo_ids::{DeviceId, SessionId, UserId};
use echo_proto::echo::events::v1::SessionEndReason;

use super::{Accounts, Client, Issued, after, now};
use crate::domain::refresh::RefreshTokens;
use crate::error::AuthError;
use crate::store::{Account, Device, RefreshRecord, Session};

/// How soon announcing revocations again is retried after it failed.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(1);

/// The signed-in caller of an RPC, as the journeys know them: the access token's user and
/// session (the api types them from `echo_authn::Caller`, whose ids stay plain UUIDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedIn {
    /// The account (`sub`).
    pub user_id: UserId,
    /// The session (`sid`), what logout and revocation end.
    pub session_id: SessionId,
}

impl Accounts {
    pub(super) fn new_session(
        &self,
        account: &Account,
        device: Device,
        client: &Client,
        at: DateTime<Utc>,
    ) -> (Session, String, RefreshRecord) {
        let session = Session {
            session_id: SessionId::new_v7(),
            user_id: account.user_id,
            device_id: DeviceId::new_v7(),
            device,
            created_at: at,
            last_active_at: at,
            last_ip: client.ip.clone(),
            revoked_at: None,
        };
        let token = self.refresh.generate();
        let record = RefreshRecord {
            token_hash: RefreshTokens::hash(&token),
            session_id: session.session_id,
            issued_at: at,
            expires_at: after(at, self.policy.refresh_ttl),
            rotated_at: None,
        };
        (session, token, record)
    }

    pub(super) async fn open_session(
        &self,
        account: &Account,
        device: Device,
        client: &Client,
    ) -> Result<Issued, AuthError> {
        if self.store.count_active_sessions(account.user_id).await? >= self.policy.max_devices {
            return Err(AuthError::TooManyDevices);
        }
        let at = now();
        let (session, token, record) = self.new_session(account, device, client, at);
        self.store.open_session(&session, &record).await?;
        self.issue(&session, token, at)
    }

    pub(super) fn issue(
        &self,
        session: &Session,
        refresh_token: String,
        at: DateTime<Utc>,
    ) -> Result<Issued, AuthError> {
        let (access_token, access_expires_at) = self.issuer.issue_at(
            session.user_id.into(),
            session.session_id.into(),
            session.device_id.into(),
            SystemTime::from(at),
            self.policy.access_ttl,
            RefreshTokens::access_token_id(&refresh_token),
        )?;
        Ok(Issued {
            user_id: session.user_id,
            session_id: session.session_id,
            device_id: session.device_id,
            access_token,
            access_expires_at,
            refresh_expires_at: after(at, self.policy.refresh_ttl),
            refresh_token,
        })
    }

    /// Revoke in the database and everywhere in memory (within a second, via the cache).
    pub(super) async fn revoke(
        &self,
        user: UserId,
        only: Option<SessionId>,
        except: Option<SessionId>,
        reason: SessionEndReason,
    ) -> Result<Vec<SessionId>, AuthError> {
        let ended = self
            .store
            .revoke_sessions(user, only, except, reason)
            .await?;
        for session in &ended {
            self.revocations
                .revoke(*session, self.policy.access_ttl)
                .await?;
        }
        Ok(ended)
    }

    /// Announces again every revocation an access token may still be alive for (sessions
    /// revoked within the access-token lifetime), each for what is left of that lifetime:
    /// recorded in the cache for processes that start later, and published. The database
    /// is the durable record; the cache's copy is gone after a restart of Redis, and without
    /// this a process that never heard of a logout would let its tokens through again.
    pub(crate) async fn announce_revocations_again(&self) -> Result<usize, AuthError> {
        let now = Utc::now();
        let lifetime =
            chrono::Duration::from_std(self.policy.access_ttl).unwrap_or(chrono::Duration::MAX);
        let revoked = self
            .store
            .revoked_since(now.checked_sub_signed(lifetime).unwrap_or(now))
            .await?;
        for (session, revoked_at) in &revoked {
            // A token is good through the second of its expiry: one more second.
            let left = (*revoked_at + lifetime - now).to_std().unwrap_or_default();
            self.revocations
                .revoke(*session, left + Duration::from_secs(1))
                .await?;
        }
        Ok(revoked.len())
    }

    /// Spawns the task that announces revocations again (see
    /// [`Accounts::announce_revocations_again`]) now and after every return of the cache's
    /// feed, retrying while that fails. It ends once these accounts are dropped (the service
    /// stopped) and the feed is gone.
    pub(crate) fn announce_revocations_after_cache_returns(self: &Arc<Self>) {
        let accounts: Weak<Self> = Arc::downgrade(self);
        let mut returns = self.revocations.feed_returns();
        tokio::spawn(async move {
            loop {
                let Some(live) = accounts.upgrade() else {
                    return;
                };
                let announced = live.announce_revocations_again().await;
                drop(live);
                let wait = match announced {
                    Ok(count) => {
                        if count > 0 {
                            tracing::info!(count, "revocations announced again");
                        }
                        None
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot announce revocations again yet; retrying");
                        Some(ANNOUNCE_RETRY)
                    }
                };
                let returned = async {
                    match wait {
                        Some(retry) => tokio::select! {
                            () = tokio::time::sleep(retry) => true,
                            changed = returns.changed() => changed.is_ok(),
                        },
                        None => returns.changed().await.is_ok(),
                    }
                };
                if !returned.await {
                    return;
                }
            }
        });
    }
}
