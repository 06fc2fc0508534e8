//! Contact requests. States are stored as their codes (1 pending, 2 accepted, 3 declined,
//! 4 cancelled); "open" is pending or declined, as in the `contact_requests_open` index.

use chrono::{DateTime, Utc};
use echo_bus::Outbox;
use echo_store::Tx;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::contacts::add_each_other;
use super::{lock_pair, refuse, sql_limit};
use crate::store::changes::{self, ContactRow};
use crate::store::{ContactRequest, Direction, RequestState, StoreError};

/// See [`crate::store::UserStore::send_contact_request`].
pub(super) async fn send(
    pool: &PgPool,
    outbox: &Outbox,
    id: Uuid,
    sender: Uuid,
    recipient: Uuid,
    message: &str,
    at: DateTime<Utc>,
) -> Result<ContactRequest, StoreError> {
    let mut tx = pool.begin().await?;
    // Held to the end: a request crossing this one waits, then finds it and accepts it.
    let live = lock_pair(&mut tx, sender, recipient).await?;
    if !live.contains(&recipient) {
        return refuse(tx, StoreError::UserNotFound).await;
    }
    let (blocked, contacts): (bool, i64) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
                                              OR (blocker_id = $2 AND blocked_id = $1)), \
                (SELECT count(*) FROM contacts WHERE (owner_id = $1 AND contact_id = $2) \
                                                  OR (owner_id = $2 AND contact_id = $1))",
    )
    .bind(sender)
    .bind(recipient)
    .fetch_one(&mut *tx)
    .await?;
    if blocked {
        return refuse(tx, StoreError::Blocked).await;
    }
    if contacts == 2 {
        return refuse(tx, StoreError::AlreadyContacts).await;
    }
    if let Some(reverse) = open_request(&mut tx, recipient, sender).await? {
        let (accepted, added) = accept_open(&mut tx, reverse.id, at).await?;
        let events = changes::contacts_added(added);
        changes::commit(outbox, Tx::Postgres(tx), &events).await?;
        return Ok(accepted);
    }
    if let Some(existing) = open_request(&mut tx, sender, recipient).await? {
        tx.rollback().await?;
        return Ok(existing);
    }
    let row = sqlx::query(concat!(
        "INSERT INTO contact_requests (",
        request_columns!(),
        ") VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ",
        request_columns!()
    ))
    .bind(id)
    .bind(sender)
    .bind(recipient)
    .bind(message)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    let sent = request(&row)?;
    tx.commit().await?;
    Ok(sent)
}

/// See [`crate::store::UserStore::accept_contact_request`].
pub(super) async fn accept(
    pool: &PgPool,
    outbox: &Outbox,
    recipient: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<ContactRequest>, StoreError> {
    let mut tx = pool.begin().await?;
    let parties: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT sender_id, recipient_id FROM contact_requests WHERE contact_request_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((sender, addressee)) = parties.filter(|(_, addressee)| *addressee == recipient) else {
        tx.rollback().await?;
        return Ok(None);
    };
    // The pair's lock first, as everywhere, then the request's state under it.
    lock_pair(&mut tx, sender, addressee).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        request_columns!(),
        " FROM contact_requests WHERE contact_request_id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let found = row.as_ref().map(request).transpose()?;
    let (outcome, added) = match found {
        Some(pending) if pending.state == RequestState::Pending => {
            let (accepted, added) = accept_open(&mut tx, pending.id, at).await?;
            (Some(accepted), added)
        }
        Some(accepted) if accepted.state == RequestState::Accepted => (Some(accepted), Vec::new()),
        _ => (None, Vec::new()),
    };
    let events = changes::contacts_added(added);
    changes::commit(outbox, Tx::Postgres(tx), &events).await?;
    Ok(outcome)
}

/// See [`crate::store::UserStore::list_contact_requests`].
pub(super) async fn list(
    pool: &PgPool,
    user: Uuid,
    direction: Direction,
    before: Option<Uuid>,
    limit: usize,
) -> Result<Vec<ContactRequest>, StoreError> {
    let query = match direction {
        Direction::Incoming => sqlx::query(concat!(
            "SELECT ",
            request_columns!(),
            " FROM contact_requests WHERE recipient_id = $1 AND state = 1 \
              AND ($2::uuid IS NULL OR contact_request_id < $2) \
              ORDER BY contact_request_id DESC LIMIT $3"
        )),
        Direction::Outgoing => sqlx::query(concat!(
            "SELECT ",
            request_columns!(),
            " FROM contact_requests WHERE sender_id = $1 AND state IN (1, 3) \
              AND ($2::uuid IS NULL OR contact_request_id < $2) \
              ORDER BY contact_request_id DESC LIMIT $3"
        )),
    };
    let rows = query
        .bind(user)
        .bind(before)
        .bind(sql_limit(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(request).collect::<Result<_, _>>()?)
}

/// The open request from `sender` to `recipient`, locked.
async fn open_request(
    conn: &mut PgConnection,
    sender: Uuid,
    recipient: Uuid,
) -> Result<Option<ContactRequest>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        request_columns!(),
        " FROM contact_requests WHERE sender_id = $1 AND recipient_id = $2 AND state IN (1, 3) \
          FOR UPDATE"
    ))
    .bind(sender)
    .bind(recipient)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(request).transpose()
}

/// Marks the open request `id` accepted and makes its two users each other's contacts;
/// returns it and the contact entries added.
async fn accept_open(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(ContactRequest, Vec<ContactRow>), sqlx::Error> {
    let row = sqlx::query(concat!(
        "UPDATE contact_requests SET state = 2, updated_at = $2 \
         WHERE contact_request_id = $1 RETURNING ",
        request_columns!()
    ))
    .bind(id)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let accepted = request(&row)?;
    let added = add_each_other(conn, accepted.sender_id, accepted.recipient_id, at).await?;
    Ok((accepted, added))
}

pub(super) fn request(row: &PgRow) -> Result<ContactRequest, sqlx::Error> {
    let code: i16 = row.try_get("state")?;
    let state = RequestState::from_code(code.into())
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown request state {code}").into()))?;
    Ok(ContactRequest {
        id: row.try_get("contact_request_id")?,
        sender_id: row.try_get("sender_id")?,
        recipient_id: row.try_get("recipient_id")?,
        message: row.try_get("message")?,
        state,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
