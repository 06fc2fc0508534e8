//! What auth's events change here, applied inside the consumer's transaction (so a
//! redelivered event is applied once): a registration completes the profile, a deletion
//! erases the user.

use chrono::{DateTime, Utc};
use echo_ids::UserId;
use echo_store::{Tx, with_tx};

use super::changes;
use super::codec::{At, Id};
use super::contacts::contact_rows;
use super::search::replace_search_terms;
use super::{Registration, UserStore, key, search_terms};
use crate::error::UserError;

impl UserStore {
    /// Creates the registered user's profile, or completes the one their own calls created
    /// first: sets the phone number, `registered` and `created_at`, and the display name unless
    /// the user already chose one. A deleted profile stays deleted. Rebuilds search terms.
    pub async fn record_registration(
        &self,
        tx: &mut Tx,
        registration: &Registration,
    ) -> Result<(), UserError> {
        // The WHERE makes a tombstone match nothing (no row returned), so it stays deleted.
        let completed: Option<(String, Option<String>)> = with_tx!(&mut *tx, |c| {
            sqlx::query_as(
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
                   updated_at = CASE WHEN profiles.updated_at > excluded.updated_at \
                     THEN profiles.updated_at ELSE excluded.updated_at END \
                 WHERE profiles.deleted_at IS NULL \
                 RETURNING display_name, username",
            )
            .bind(Id(registration.user_id.into()))
            .bind(&registration.display_name)
            .bind(key(&registration.display_name))
            .bind(&registration.phone_number)
            .bind(At(registration.registered_at))
            .fetch_optional(c)
            .await?
        });
        if let Some((display_name, username)) = completed {
            let terms = search_terms(&display_name, username.as_deref());
            replace_search_terms(tx, registration.user_id, terms).await?;
        }
        Ok(())
    }

    /// Erases a deleted user: the profile becomes a tombstone (display name, username, about,
    /// avatar and phone cleared, `deleted_at` set; a tombstone is created if there was no
    /// profile yet), and their search terms, contacts (theirs, and entries of them in others'
    /// lists), contact requests (both directions) and blocks (both directions) are removed.
    /// Appends, in `tx`, one `ContactRemoved` per contact entry that existed (the user's own,
    /// and each entry of them in another's list); a redelivered deletion finds none.
    pub async fn erase_user(
        &self,
        tx: &mut Tx,
        user_id: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), UserError> {
        // A redelivered deletion changes nothing: the times stay those of the first.
        with_tx!(&mut *tx, |c| {
            sqlx::query(
                "INSERT INTO profiles (user_id, display_name, display_name_key, created_at, \
                 updated_at, deleted_at) VALUES ($1, '', '', $2, $2, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET \
                   display_name = '', display_name_key = '', username = NULL, username_key = NULL, \
                   about = '', avatar_url = NULL, avatar_mime_type = NULL, avatar_size = NULL, \
                   avatar_width = NULL, avatar_height = NULL, phone_number = NULL, \
                   updated_at = COALESCE(profiles.deleted_at, excluded.updated_at), \
                   deleted_at = COALESCE(profiles.deleted_at, excluded.deleted_at)",
            )
            .bind(Id(user_id.into()))
            .bind(At(at))
            .execute(c)
            .await?;
        });
        let removed: Vec<(Id, Id)> = with_tx!(&mut *tx, |c| {
            sqlx::query_as(
                "DELETE FROM contacts WHERE owner_id = $1 OR contact_id = $1 \
                 RETURNING owner_id, contact_id",
            )
            .bind(Id(user_id.into()))
            .fetch_all(c)
            .await?
        });
        for statement in [
            "DELETE FROM profile_search_terms WHERE user_id = $1",
            "DELETE FROM contact_requests WHERE sender_id = $1 OR recipient_id = $1",
            "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
        ] {
            with_tx!(&mut *tx, |c| {
                sqlx::query(statement)
                    .bind(Id(user_id.into()))
                    .execute(c)
                    .await?;
            });
        }
        changes::append(tx, &changes::contacts_removed(contact_rows(removed))).await
    }
}
