//! Profiles, one script per operation for both backends: how a row reads, the reads, and the
//! changes by their owner (auth's events are `accounts`, finding people is `search`).

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_ids::UserId;
use echo_store::{Tx, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::changes;
use super::codec::{At, Id, for_update, refuse};
use super::contacts::IDS_PER_STATEMENT;
use super::search::replace_search_terms;
use super::{
    Avatar, Privacy, PrivacyChange, Profile, ProfileChange, ProfileEvent, UserStore, Visibility,
    key, search_terms,
};
use crate::error::UserError;

/// The profile columns, as [`ProfileRow`] reads them.
macro_rules! profile_columns {
    () => {
        "user_id, display_name, username, about, avatar_url, avatar_mime_type, avatar_size, \
         avatar_width, avatar_height, phone_number, last_seen, profile_photo, about_visibility, \
         find_by_phone, registered, created_at, updated_at, deleted_at"
    };
}

/// A `profiles` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct ProfileRow {
    user_id: Id,
    display_name: String,
    username: Option<String>,
    about: String,
    avatar_url: Option<String>,
    avatar_mime_type: Option<String>,
    avatar_size: Option<i64>,
    avatar_width: Option<i32>,
    avatar_height: Option<i32>,
    phone_number: Option<String>,
    last_seen: i16,
    profile_photo: i16,
    about_visibility: i16,
    find_by_phone: i16,
    registered: bool,
    created_at: At,
    updated_at: At,
    deleted_at: Option<At>,
}

impl From<ProfileRow> for Profile {
    fn from(row: ProfileRow) -> Self {
        let visibility = |code: i16| Visibility::from_code(code.into());
        Profile {
            user_id: row.user_id.0.into(),
            display_name: row.display_name,
            username: row.username,
            about: row.about,
            avatar: row.avatar_url.map(|url| Avatar {
                url,
                mime_type: row.avatar_mime_type.unwrap_or_default(),
                size_bytes: row.avatar_size.unwrap_or(0),
                width: row.avatar_width.unwrap_or(0),
                height: row.avatar_height.unwrap_or(0),
            }),
            phone_number: row.phone_number,
            privacy: Privacy {
                last_seen: visibility(row.last_seen),
                profile_photo: visibility(row.profile_photo),
                about: visibility(row.about_visibility),
                find_by_phone: visibility(row.find_by_phone),
            },
            registered: row.registered,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
            deleted_at: row.deleted_at.map(|At(at)| at),
        }
    }
}

impl UserStore {
    /// The profile of `user_id` (tombstones included).
    pub async fn profile(&self, user_id: UserId) -> Result<Option<Profile>, UserError> {
        let row: Option<ProfileRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                profile_columns!(),
                " FROM profiles WHERE user_id = $1"
            ))
            .bind(Id(user_id.into()))
            .fetch_optional(c)
            .await?
        });
        Ok(row.map(Profile::from))
    }

    /// The profiles of those of `user_ids` that exist (tombstones included), in any order.
    pub async fn profiles(&self, user_ids: &[UserId]) -> Result<Vec<Profile>, UserError> {
        let mut profiles = Vec::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                concat!(
                    "SELECT ",
                    profile_columns!(),
                    " FROM profiles WHERE user_id IN ({})"
                ),
                echo_store::placeholders(1, chunk.len())
            );
            let rows: Vec<ProfileRow> = with_db!(&self.db, read, sql, |c| {
                let mut query = sqlx::query_as(AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(Id((*id).into()));
                }
                query.fetch_all(c).await?
            });
            profiles.extend(rows.into_iter().map(Profile::from));
        }
        Ok(profiles)
    }

    /// The live (not deleted) profile holding `phone_number`.
    pub async fn profile_by_phone(&self, phone_number: &str) -> Result<Option<Profile>, UserError> {
        let row: Option<ProfileRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                profile_columns!(),
                " FROM profiles WHERE phone_number = $1 AND deleted_at IS NULL"
            ))
            .bind(phone_number)
            .fetch_optional(c)
            .await?
        });
        Ok(row.map(Profile::from))
    }

    /// Applies `change` to `user_id`'s profile, creating it first (unregistered, display name
    /// '') if the registration has not arrived yet; rebuilds the search terms; appends
    /// `event(&profile_after)` to the outbox in the same transaction. Returns the profile after
    /// the change. `UsernameTaken` when another user holds the username case-insensitively
    /// (nothing changes). `UserNotFound` when the profile is a tombstone.
    pub async fn update_profile(
        &self,
        user_id: UserId,
        change: &ProfileChange,
        at: DateTime<Utc>,
        event: ProfileEvent<'_>,
    ) -> Result<Profile, UserError> {
        let mut tx = self.db.begin().await?;
        create_if_absent(&mut tx, user_id, at).await?;
        let username = change.username.as_ref().map(Option::as_deref);
        let avatar = change.avatar.as_ref().map(Option::as_ref);
        let new_avatar = avatar.flatten();
        // `$4`/`$8` say whether the username/avatar change at all: their new value may be NULL.
        let updated: Result<Option<ProfileRow>, sqlx::Error> = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "UPDATE profiles SET \
                   display_name = COALESCE($2, display_name), \
                   display_name_key = COALESCE($3, display_name_key), \
                   username = CASE WHEN $4 THEN $5 ELSE username END, \
                   username_key = CASE WHEN $4 THEN $6 ELSE username_key END, \
                   about = COALESCE($7, about), \
                   avatar_url = CASE WHEN $8 THEN $9 ELSE avatar_url END, \
                   avatar_mime_type = CASE WHEN $8 THEN $10 ELSE avatar_mime_type END, \
                   avatar_size = CASE WHEN $8 THEN $11 ELSE avatar_size END, \
                   avatar_width = CASE WHEN $8 THEN $12 ELSE avatar_width END, \
                   avatar_height = CASE WHEN $8 THEN $13 ELSE avatar_height END, \
                   updated_at = $14 \
                 WHERE user_id = $1 AND deleted_at IS NULL RETURNING ",
                profile_columns!()
            ))
            .bind(Id(user_id.into()))
            .bind(change.display_name.as_deref())
            .bind(change.display_name.as_deref().map(key))
            .bind(username.is_some())
            .bind(username.flatten())
            .bind(username.flatten().map(key))
            .bind(change.about.as_deref())
            .bind(avatar.is_some())
            .bind(new_avatar.map(|a| a.url.as_str()))
            .bind(new_avatar.map(|a| a.mime_type.as_str()))
            .bind(new_avatar.map(|a| a.size_bytes))
            .bind(new_avatar.map(|a| a.width))
            .bind(new_avatar.map(|a| a.height))
            .bind(At(at))
            .fetch_optional(c)
            .await
        });
        let row = match updated {
            // On PostgreSQL the failed statement aborted the transaction: the insert above
            // goes too.
            Err(sqlx::Error::Database(e)) if is_username_taken(e.as_ref()) => {
                return refuse(tx, UserError::UsernameTaken).await;
            }
            other => other?,
        };
        let Some(row) = row else {
            return refuse(tx, UserError::UserNotFound).await;
        };
        let after = Profile::from(row);
        if change.display_name.is_some() || change.username.is_some() {
            let terms = search_terms(&after.display_name, after.username.as_deref());
            replace_search_terms(&mut tx, user_id, terms).await?;
        }
        Outbox::append(&mut tx, &event(&after)).await?;
        self.outbox.commit(tx).await?;
        Ok(after)
    }

    /// Applies `change` to `user_id`'s privacy settings, creating the profile first like
    /// [`UserStore::update_profile`]. When a setting differs from before, appends
    /// `PrivacyChanged` (every setting after) in the same transaction; a change to what is
    /// already set appends nothing. Returns the profile after the change. `UserNotFound` for
    /// a tombstone.
    pub async fn update_privacy(
        &self,
        user_id: UserId,
        change: &PrivacyChange,
        at: DateTime<Utc>,
    ) -> Result<Profile, UserError> {
        let mut tx = self.db.begin().await?;
        create_if_absent(&mut tx, user_id, at).await?;
        // Locked, so of two racing changes the later compares against the earlier's result.
        let select = for_update(
            &tx,
            concat!(
                "SELECT ",
                profile_columns!(),
                " FROM profiles WHERE user_id = $1"
            ),
        );
        let before: ProfileRow = with_tx!(&mut tx, |c| {
            sqlx::query_as(select)
                .bind(Id(user_id.into()))
                .fetch_one(c)
                .await?
        });
        let before = Profile::from(before).privacy;
        let row: Option<ProfileRow> = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "UPDATE profiles SET \
                   last_seen = COALESCE($2, last_seen), \
                   profile_photo = COALESCE($3, profile_photo), \
                   about_visibility = COALESCE($4, about_visibility), \
                   find_by_phone = COALESCE($5, find_by_phone), \
                   updated_at = $6 \
                 WHERE user_id = $1 AND deleted_at IS NULL RETURNING ",
                profile_columns!()
            ))
            .bind(Id(user_id.into()))
            .bind(change.last_seen.map(|v| v.code()))
            .bind(change.profile_photo.map(|v| v.code()))
            .bind(change.about.map(|v| v.code()))
            .bind(change.find_by_phone.map(|v| v.code()))
            .bind(At(at))
            .fetch_optional(c)
            .await?
        });
        let Some(row) = row else {
            return refuse(tx, UserError::UserNotFound).await;
        };
        let after = Profile::from(row);
        let events = changes::privacy_events(before, &after);
        changes::commit(&self.outbox, tx, &events).await?;
        Ok(after)
    }
}

/// Whether `error` is the unique index on usernames refusing a second holder.
///
/// Dialect-specific in what it reads: PostgreSQL names the violated constraint, SQLite names
/// only the column (`profiles.username_key`) in its message.
fn is_username_taken(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.kind() == sqlx::error::ErrorKind::UniqueViolation
        && (error.constraint() == Some("profiles_username_key")
            || error.message().contains("profiles.username_key"))
}

/// Creates `user_id`'s profile, unregistered and unnamed, if there is none: its owner's own
/// calls may come before the registration event.
async fn create_if_absent(
    tx: &mut Tx,
    user_id: UserId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    with_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO profiles (user_id, display_name, display_name_key, created_at, \
             updated_at) VALUES ($1, '', '', $2, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(Id(user_id.into()))
        .bind(At(at))
        .execute(c)
        .await?;
    });
    Ok(())
}
