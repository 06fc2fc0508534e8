//! Profiles: registration and erasure (inside the consumer's transaction), changes by their
//! owner, and search.

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_store::Tx;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{profile, refuse, sql_limit};
use crate::store::changes::{self, ContactRow};
use crate::store::{
    PrivacyChange, Profile, ProfileChange, ProfileEvent, Registration, SearchHit, SearchPosition,
    StoreError, key, prefix_end, rank, search_terms,
};

/// See [`crate::store::UserStore::record_registration`].
pub(super) async fn record_registration(
    conn: &mut PgConnection,
    registration: &Registration,
) -> Result<(), StoreError> {
    // The WHERE makes a tombstone match nothing (no row returned), so it stays deleted.
    let completed: Option<(String, Option<String>)> = sqlx::query_as(
        "INSERT INTO profiles (user_id, display_name, display_name_key, phone_number, \
         registered, created_at, updated_at) VALUES ($1, $2, $3, $4, TRUE, $5, $5) \
         ON CONFLICT (user_id) DO UPDATE SET \
           phone_number = excluded.phone_number, \
           registered = TRUE, \
           created_at = excluded.created_at, \
           display_name = CASE WHEN profiles.display_name = '' \
             THEN excluded.display_name ELSE profiles.display_name END, \
           display_name_key = CASE WHEN profiles.display_name = '' \
             THEN excluded.display_name_key ELSE profiles.display_name_key END, \
           updated_at = GREATEST(profiles.updated_at, excluded.updated_at) \
         WHERE profiles.deleted_at IS NULL \
         RETURNING display_name, username",
    )
    .bind(registration.user_id)
    .bind(&registration.display_name)
    .bind(key(&registration.display_name))
    .bind(&registration.phone_number)
    .bind(registration.registered_at)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((display_name, username)) = completed {
        let terms = search_terms(&display_name, username.as_deref());
        replace_search_terms(conn, registration.user_id, terms).await?;
    }
    Ok(())
}

/// See [`crate::store::UserStore::erase_user`]; returns the contact entries it removed.
pub(super) async fn erase_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<ContactRow>, StoreError> {
    // A redelivered deletion changes nothing: the times stay those of the first.
    sqlx::query(
        "INSERT INTO profiles (user_id, display_name, display_name_key, created_at, updated_at, \
         deleted_at) VALUES ($1, '', '', $2, $2, $2) \
         ON CONFLICT (user_id) DO UPDATE SET \
           display_name = '', display_name_key = '', username = NULL, username_key = NULL, \
           about = '', avatar_url = NULL, avatar_mime_type = NULL, avatar_size = NULL, \
           avatar_width = NULL, avatar_height = NULL, phone_number = NULL, \
           updated_at = COALESCE(profiles.deleted_at, excluded.updated_at), \
           deleted_at = COALESCE(profiles.deleted_at, excluded.deleted_at)",
    )
    .bind(user_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let removed: Vec<ContactRow> = sqlx::query_as(
        "DELETE FROM contacts WHERE owner_id = $1 OR contact_id = $1 \
         RETURNING owner_id, contact_id",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    for statement in [
        "DELETE FROM profile_search_terms WHERE user_id = $1",
        "DELETE FROM contact_requests WHERE sender_id = $1 OR recipient_id = $1",
        "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
    ] {
        sqlx::query(statement)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(removed)
}

/// See [`crate::store::UserStore::update_profile`].
pub(super) async fn update_profile(
    pool: &PgPool,
    outbox: &Outbox,
    user_id: Uuid,
    change: &ProfileChange,
    at: DateTime<Utc>,
    event: ProfileEvent<'_>,
) -> Result<Profile, StoreError> {
    let mut tx = pool.begin().await?;
    create_if_absent(&mut tx, user_id, at).await?;
    let username = change.username.as_ref().map(Option::as_deref);
    let avatar = change.avatar.as_ref().map(Option::as_ref);
    let new_avatar = avatar.flatten();
    // `$4`/`$8` say whether the username/avatar change at all: their new value may be NULL.
    let updated = sqlx::query(concat!(
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
    .bind(user_id)
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
    .bind(at)
    .fetch_optional(&mut *tx)
    .await;
    let row = match updated {
        Err(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::UniqueViolation
                && e.constraint() == Some("profiles_username_key") =>
        {
            // The failed statement aborted the transaction: the insert above goes too.
            return refuse(tx, StoreError::UsernameTaken).await;
        }
        other => other?,
    };
    let Some(row) = row else {
        return refuse(tx, StoreError::UserNotFound).await;
    };
    let after = profile(&row)?;
    if change.display_name.is_some() || change.username.is_some() {
        let terms = search_terms(&after.display_name, after.username.as_deref());
        replace_search_terms(&mut tx, user_id, terms).await?;
    }
    let mut tx = Tx::Postgres(tx);
    Outbox::append(&mut tx, &event(&after)).await?;
    outbox.commit(tx).await?;
    Ok(after)
}

/// See [`crate::store::UserStore::update_privacy`].
pub(super) async fn update_privacy(
    pool: &PgPool,
    outbox: &Outbox,
    user_id: Uuid,
    change: &PrivacyChange,
    at: DateTime<Utc>,
) -> Result<Profile, StoreError> {
    let mut tx = pool.begin().await?;
    create_if_absent(&mut tx, user_id, at).await?;
    // Locked, so of two racing changes the later compares against the earlier's result.
    let before = sqlx::query(concat!(
        "SELECT ",
        profile_columns!(),
        " FROM profiles WHERE user_id = $1 FOR UPDATE"
    ))
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    let before = profile(&before)?.privacy;
    let row = sqlx::query(concat!(
        "UPDATE profiles SET \
           last_seen = COALESCE($2, last_seen), \
           profile_photo = COALESCE($3, profile_photo), \
           about_visibility = COALESCE($4, about_visibility), \
           find_by_phone = COALESCE($5, find_by_phone), \
           updated_at = $6 \
         WHERE user_id = $1 AND deleted_at IS NULL RETURNING ",
        profile_columns!()
    ))
    .bind(user_id)
    .bind(change.last_seen.map(|v| v.code()))
    .bind(change.profile_photo.map(|v| v.code()))
    .bind(change.about.map(|v| v.code()))
    .bind(change.find_by_phone.map(|v| v.code()))
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return refuse(tx, StoreError::UserNotFound).await;
    };
    let after = profile(&row)?;
    let events = changes::privacy_events(before, &after);
    changes::commit(outbox, Tx::Postgres(tx), &events).await?;
    Ok(after)
}

/// See [`crate::store::UserStore::search`].
pub(super) async fn search(
    pool: &PgPool,
    viewer: Uuid,
    prefix: &str,
    after: Option<&SearchPosition>,
    limit: usize,
) -> Result<Vec<SearchHit>, StoreError> {
    // Ranked in a subquery so the keyset compares the rank like any other column.
    let rows = sqlx::query(
        "SELECT * FROM ( \
           SELECT p.*, CASE WHEN p.username_key = $2 THEN $4 \
                            WHEN c.contact_id IS NOT NULL THEN $5 ELSE $6 END AS hit_rank \
           FROM profiles p \
           LEFT JOIN contacts c ON c.owner_id = $1 AND c.contact_id = p.user_id \
           WHERE p.user_id IN (SELECT t.user_id FROM profile_search_terms t \
                               WHERE t.term >= $2 AND t.term < $3) \
             AND p.user_id <> $1 AND p.deleted_at IS NULL \
             AND (p.username_key IS NOT NULL OR c.contact_id IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM blocks b \
                             WHERE b.blocker_id = p.user_id AND b.blocked_id = $1) \
         ) AS hits \
         WHERE $7::smallint IS NULL OR (hit_rank, display_name_key, user_id) > ($7, $8, $9) \
         ORDER BY hit_rank, display_name_key, user_id LIMIT $10",
    )
    .bind(viewer)
    .bind(prefix)
    .bind(prefix_end(prefix))
    .bind(rank::EXACT_USERNAME)
    .bind(rank::CONTACT)
    .bind(rank::OTHER)
    .bind(after.map(|a| a.rank))
    .bind(after.map(|a| a.display_name_key.as_str()))
    .bind(after.map(|a| a.user_id))
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    let hit = |row: &sqlx::postgres::PgRow| -> Result<SearchHit, sqlx::Error> {
        Ok(SearchHit {
            profile: profile(row)?,
            rank: row.try_get("hit_rank")?,
        })
    };
    Ok(rows.iter().map(hit).collect::<Result<_, _>>()?)
}

/// Creates `user_id`'s profile, unregistered and unnamed, if there is none: its owner's own
/// calls may come before the registration event.
async fn create_if_absent(
    conn: &mut PgConnection,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO profiles (user_id, display_name, display_name_key, created_at, updated_at) \
         VALUES ($1, '', '', $2, $2) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn replace_search_terms(
    conn: &mut PgConnection,
    user_id: Uuid,
    terms: Vec<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM profile_search_terms WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO profile_search_terms (term, user_id) SELECT unnest($2::text[]), $1")
        .bind(user_id)
        .bind(terms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
