//! UserService's journeys: profiles, search and privacy here; contacts, contact requests and
//! blocks in `people/contacts.rs`. Inputs arrive validated (`api`); this layer decides who may
//! see and do what, and keeps the rate limits.

mod contacts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use echo_authn::PhoneNumber;
use echo_cache::{Limits, Rule};
use echo_ids::UserId;
use echo_runtime::Page;

pub use contacts::RequestView;

use crate::error::UserError;
use crate::rules;
use crate::store::{Privacy, PrivacyChange, Profile, ProfileChange, SearchPosition, UserStore};
use crate::visibility::{PublicView, public_view};

/// How long GetMe waits for a just-registered user's profile to arrive from the registration
/// event before answering with the provisional one.
const REGISTRATION_WAIT: Duration = Duration::from_secs(2);
const REGISTRATION_POLL: Duration = Duration::from_millis(20);

/// The user service's rules over its store.
pub struct People {
    pub(crate) store: Arc<UserStore>,
    pub(crate) limits: Limits,
}

impl People {
    /// The caller's own profile. Never "not found" for a signed-in caller: right after
    /// registration, before the registration event is applied, it waits briefly for it, then
    /// answers with a provisional profile (id only) that fills in moments later.
    pub async fn me(&self, caller: UserId) -> Result<Profile, UserError> {
        let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
        loop {
            match self.store.profile(caller).await? {
                Some(profile) if profile.deleted_at.is_some() => {
                    return Err(UserError::AccountDeleted);
                }
                Some(profile) if profile.registered => return Ok(profile),
                found if tokio::time::Instant::now() >= deadline => {
                    return Ok(found.unwrap_or_else(|| provisional(caller)));
                }
                _ => tokio::time::sleep(REGISTRATION_POLL).await,
            }
        }
    }

    /// Another user (or the caller) as the caller may see them.
    pub async fn user(&self, viewer: UserId, user_id: UserId) -> Result<PublicView, UserError> {
        let profile = self
            .store
            .profile(user_id)
            .await?
            .ok_or(UserError::UserNotFound)?;
        let mut views = self.views(viewer, vec![profile]).await?;
        Ok(views.pop().expect("one profile, one view"))
    }

    /// The users among `user_ids` that exist, as the caller may see them.
    pub async fn users(
        &self,
        viewer: UserId,
        user_ids: &[UserId],
    ) -> Result<Vec<PublicView>, UserError> {
        let profiles = self.store.profiles(user_ids).await?;
        self.views(viewer, profiles).await
    }

    /// Applies `change` to the caller's profile; `paths` are the mask paths, for the event.
    pub async fn update_profile(
        &self,
        caller: UserId,
        change: ProfileChange,
        paths: Vec<String>,
    ) -> Result<Profile, UserError> {
        if let Some(Some(username)) = &change.username {
            let current = self.store.profile(caller).await?;
            let current = current.as_ref().and_then(|p| p.username.as_deref());
            if current != Some(username.as_str()) {
                self.limit(rules::USERNAME_CHANGE, caller).await?;
            }
        }
        let event = move |profile: &Profile| crate::events::profile_updated(profile, &paths);
        self.store
            .update_profile(caller, &change, Utc::now(), &event)
            .await
    }

    /// Discoverable users matching `query` (normalised), best first.
    pub async fn search(
        &self,
        viewer: UserId,
        query: &str,
        page: &Page<SearchPosition>,
    ) -> Result<(Vec<PublicView>, String), UserError> {
        if page
            .after
            .as_ref()
            .is_some_and(|after| after.query != query)
        {
            return Err(UserError::invalid(
                "page_token",
                "belongs to another query; start again without a token",
            ));
        }
        self.limit(rules::SEARCH, viewer).await?;
        let hits = self
            .store
            .search(viewer, query, page.after.as_ref(), page.fetch_limit())
            .await?;
        let (hits, token) = page.finish(hits, |hit| SearchPosition {
            query: query.to_owned(),
            rank: hit.rank,
            display_name_key: crate::store::key(&hit.profile.display_name),
            user_id: hit.profile.user_id,
        });
        let profiles = hits.into_iter().map(|hit| hit.profile).collect();
        Ok((self.views(viewer, profiles).await?, token))
    }

    /// The user holding `phone`, if they let the caller find them. Unknown, hidden and
    /// blocking users are all the same "not found", so numbers cannot be probed.
    pub async fn lookup_phone(
        &self,
        viewer: UserId,
        phone: &PhoneNumber,
    ) -> Result<PublicView, UserError> {
        self.limit(rules::PHONE_LOOKUP, viewer).await?;
        let profile = self
            .store
            .profile_by_phone(phone.as_str())
            .await?
            .ok_or(UserError::UserNotFound)?;
        let relation = self.relation(viewer, profile.user_id).await?;
        let own = profile.user_id == viewer;
        if !own && !crate::visibility::may_see(profile.privacy.find_by_phone, &relation) {
            return Err(UserError::UserNotFound);
        }
        Ok(public_view(&profile, &relation, own))
    }

    /// The caller's privacy settings (defaults until changed).
    pub async fn privacy(&self, caller: UserId) -> Result<Privacy, UserError> {
        let profile = self.store.profile(caller).await?;
        Ok(profile.map(|p| p.privacy).unwrap_or_default())
    }

    /// Changes the caller's privacy settings.
    pub async fn update_privacy(
        &self,
        caller: UserId,
        change: PrivacyChange,
    ) -> Result<Privacy, UserError> {
        let profile = self
            .store
            .update_privacy(caller, &change, Utc::now())
            .await?;
        Ok(profile.privacy)
    }

    /// The views of `profiles` for `viewer`, in the same order.
    pub(crate) async fn views(
        &self,
        viewer: UserId,
        profiles: Vec<Profile>,
    ) -> Result<Vec<PublicView>, UserError> {
        let ids: Vec<UserId> = profiles.iter().map(|p| p.user_id).collect();
        let relations = self.store.relations(viewer, &ids).await?;
        Ok(profiles
            .iter()
            .map(|profile| {
                let relation = relations.get(&profile.user_id).cloned().unwrap_or_default();
                public_view(profile, &relation, profile.user_id == viewer)
            })
            .collect())
    }

    /// The views of the users `ids` for `viewer`, by id (unknown ids missing).
    pub(crate) async fn views_by_id(
        &self,
        viewer: UserId,
        ids: &[UserId],
    ) -> Result<HashMap<UserId, PublicView>, UserError> {
        let profiles = self.store.profiles(ids).await?;
        let views = self.views(viewer, profiles).await?;
        Ok(views.into_iter().map(|v| (v.user_id, v)).collect())
    }

    async fn relation(
        &self,
        viewer: UserId,
        other: UserId,
    ) -> Result<crate::store::Relation, UserError> {
        let mut relations = self.store.relations(viewer, &[other]).await?;
        Ok(relations.remove(&other).unwrap_or_default())
    }

    async fn limit(&self, rule: Rule, user: UserId) -> Result<(), UserError> {
        self.limits
            .take(&[(rule, &user.to_string())])
            .await
            .map_err(UserError::RateLimited)
    }
}

/// The profile of a signed-in user whose registration has not been applied yet.
fn provisional(user_id: UserId) -> Profile {
    let now = Utc::now();
    Profile {
        user_id,
        display_name: String::new(),
        username: None,
        about: String::new(),
        avatar: None,
        phone_number: None,
        privacy: Privacy::default(),
        registered: false,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}
