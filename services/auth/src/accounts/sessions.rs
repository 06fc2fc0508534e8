//! Sessions and the token pairs they are issued.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use echo_proto::echo::events::v1::SessionEndReason;
use uuid::Uuid;

use super::{Accounts, Client, Issued, after, now};
use crate::domain::refresh::RefreshTokens;
use crate::error::AuthError;
use crate::store::{Account, Device, RefreshRecord, Session};

impl Accounts {
    pub(super) fn new_session(
        &self,
        account: &Account,
        device: Device,
        client: &Client,
        at: DateTime<Utc>,
    ) -> (Session, String, RefreshRecord) {
        let session = Session {
            session_id: Uuid::now_v7(),
            user_id: account.user_id,
            device_id: Uuid::now_v7(),
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
            session.user_id,
            session.session_id,
            session.device_id,
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
        user: Uuid,
        only: Option<Uuid>,
        except: Option<Uuid>,
        reason: SessionEndReason,
    ) -> Result<Vec<Uuid>, AuthError> {
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
}
