//! Contact requests, one script per operation for both backends. States are stored as their
//! codes (1 pending, 2 accepted, 3 declined, 4 cancelled); "open" is pending or declined, as
//! in the `contact_requests_open` index.

use chrono::{DateTime, Utc};
use echo_ids::{ContactRequestId, UserId};
use echo_store::{Tx, sql_limit, with_db, with_tx};

use super::changes;
use super::codec::{At, Id, PairLock, for_update, lock_pair, refuse};
use super::contacts::add_each_other;
use super::{ContactRequest, Direction, RequestState, UserStore};
use crate::error::UserError;

/// The contact request columns, as [`RequestRow`] reads them.
macro_rules! request_columns {
    () => {
        "contact_request_id, sender_id, recipient_id, message, state, created_at, updated_at"
    };
}

/// A `contact_requests` row as stored.
#[derive(sqlx::FromRow)]
struct RequestRow {
    contact_request_id: Id,
    sender_id: Id,
    recipient_id: Id,
    message: String,
    state: i16,
    created_at: At,
    updated_at: At,
}

impl TryFrom<RequestRow> for ContactRequest {
    type Error = sqlx::Error;

    fn try_from(row: RequestRow) -> Result<Self, sqlx::Error> {
        let state = RequestState::from_code(row.state.into()).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown request state {}", row.state).into())
        })?;
        Ok(ContactRequest {
            id: row.contact_request_id.0.into(),
            sender_id: row.sender_id.0.into(),
            recipient_id: row.recipient_id.0.into(),
            message: row.message,
            state,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

fn decode(row: Option<RequestRow>) -> Result<Option<ContactRequest>, sqlx::Error> {
    row.map(ContactRequest::try_from).transpose()
}

impl UserStore {
    /// Sends a request from `sender` to `recipient`, in one transaction:
    /// - `UserNotFound` when `recipient` has no live profile; `Blocked` when either blocked
    ///   the other; `AlreadyContacts` when each has the other in their contacts;
    /// - when `recipient` has an open (pending or declined) request to `sender`, both users
    ///   wanted it: that request becomes ACCEPTED, each is added to the other's contacts (an
    ///   existing entry keeps its alias; one `ContactAdded` per entry added), and it is
    ///   returned;
    /// - when `sender` already has an open request to `recipient`, it is returned unchanged;
    /// - otherwise a new PENDING request with `id` and `message` is stored and returned.
    pub async fn send_contact_request(
        &self,
        id: ContactRequestId,
        sender: UserId,
        recipient: UserId,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<ContactRequest, UserError> {
        let mut tx = self.db.begin().await?;
        // Held to the end: a request crossing this one waits, then finds it and accepts it.
        let live = lock_pair(&mut tx, sender, recipient, PairLock::Update).await?;
        if !live.contains(&recipient) {
            return refuse(tx, UserError::UserNotFound).await;
        }
        let (blocked, contacts): (bool, i64) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
                                                      OR (blocker_id = $2 AND blocked_id = $1)), \
                        (SELECT count(*) FROM contacts WHERE (owner_id = $1 AND contact_id = $2) \
                                                          OR (owner_id = $2 AND contact_id = $1))",
            )
            .bind(Id(sender.into()))
            .bind(Id(recipient.into()))
            .fetch_one(c)
            .await?
        });
        if blocked {
            return refuse(tx, UserError::Blocked).await;
        }
        if contacts == 2 {
            return refuse(tx, UserError::AlreadyContacts).await;
        }
        if let Some(reverse) = open_request(&mut tx, recipient, sender).await? {
            let (accepted, added) = accept_open(&mut tx, reverse.id, at).await?;
            let events = changes::contacts_added(added);
            changes::commit(&self.outbox, tx, &events).await?;
            return Ok(accepted);
        }
        if let Some(existing) = open_request(&mut tx, sender, recipient).await? {
            tx.rollback().await?;
            return Ok(existing);
        }
        let row: RequestRow = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "INSERT INTO contact_requests (",
                request_columns!(),
                ") VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ",
                request_columns!()
            ))
            .bind(Id(id.into()))
            .bind(Id(sender.into()))
            .bind(Id(recipient.into()))
            .bind(message)
            .bind(At(at))
            .fetch_one(c)
            .await?
        });
        let sent = ContactRequest::try_from(row)?;
        tx.commit().await?;
        Ok(sent)
    }

    /// The request `id`, whoever it involves.
    pub async fn contact_request(
        &self,
        id: ContactRequestId,
    ) -> Result<Option<ContactRequest>, UserError> {
        let row: Option<RequestRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                request_columns!(),
                " FROM contact_requests WHERE contact_request_id = $1"
            ))
            .bind(Id(id.into()))
            .fetch_optional(c)
            .await?
        });
        Ok(decode(row)?)
    }

    /// Accepts request `id` if it is addressed to `recipient` and PENDING (then each user is
    /// added to the other's contacts, existing entries kept, with one `ContactAdded` per entry
    /// added in the same transaction) or already ACCEPTED (unchanged, no event). None
    /// otherwise.
    pub async fn accept_contact_request(
        &self,
        recipient: UserId,
        id: ContactRequestId,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactRequest>, UserError> {
        let mut tx = self.db.begin().await?;
        let parties: Option<(Id, Id)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT sender_id, recipient_id FROM contact_requests \
                 WHERE contact_request_id = $1",
            )
            .bind(Id(id.into()))
            .fetch_optional(c)
            .await?
        });
        let parties = parties.map(|(Id(from), Id(to))| (UserId::from(from), UserId::from(to)));
        let Some((sender, addressee)) = parties.filter(|&(_, to)| to == recipient) else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The pair's lock first, as everywhere, then the request's state under it.
        lock_pair(&mut tx, sender, addressee, PairLock::Update).await?;
        let select = for_update(
            &tx,
            concat!(
                "SELECT ",
                request_columns!(),
                " FROM contact_requests WHERE contact_request_id = $1"
            ),
        );
        let row: Option<RequestRow> = with_tx!(&mut tx, |c| {
            sqlx::query_as(select)
                .bind(Id(id.into()))
                .fetch_optional(c)
                .await?
        });
        let (outcome, added) = match decode(row)? {
            Some(pending) if pending.state == RequestState::Pending => {
                let (accepted, added) = accept_open(&mut tx, pending.id, at).await?;
                (Some(accepted), added)
            }
            Some(accepted) if accepted.state == RequestState::Accepted => {
                (Some(accepted), Vec::new())
            }
            _ => (None, Vec::new()),
        };
        let events = changes::contacts_added(added);
        changes::commit(&self.outbox, tx, &events).await?;
        Ok(outcome)
    }

    /// Declines request `id` if it is addressed to `recipient` and PENDING; false otherwise.
    pub async fn decline_contact_request(
        &self,
        recipient: UserId,
        id: ContactRequestId,
        at: DateTime<Utc>,
    ) -> Result<bool, UserError> {
        // One conditional statement: of racing calls, the one that waits for the row lock
        // re-checks the state and matches nothing.
        let declined = with_db!(&self.db, write, |c| {
            sqlx::query(
                "UPDATE contact_requests SET state = 3, updated_at = $3 \
                 WHERE contact_request_id = $1 AND recipient_id = $2 AND state = 1",
            )
            .bind(Id(id.into()))
            .bind(Id(recipient.into()))
            .bind(At(at))
            .execute(c)
            .await?
            .rows_affected()
        });
        Ok(declined > 0)
    }

    /// Cancels request `id` if `sender` sent it and it is PENDING or DECLINED; false
    /// otherwise.
    pub async fn cancel_contact_request(
        &self,
        sender: UserId,
        id: ContactRequestId,
        at: DateTime<Utc>,
    ) -> Result<bool, UserError> {
        let cancelled = with_db!(&self.db, write, |c| {
            sqlx::query(
                "UPDATE contact_requests SET state = 4, updated_at = $3 \
                 WHERE contact_request_id = $1 AND sender_id = $2 AND state IN (1, 3)",
            )
            .bind(Id(id.into()))
            .bind(Id(sender.into()))
            .bind(At(at))
            .execute(c)
            .await?
            .rows_affected()
        });
        Ok(cancelled > 0)
    }

    /// `user`'s requests in `direction` (see [`Direction`]), newest first (id descending),
    /// with ids below `before` when given; at most `limit`.
    pub async fn list_contact_requests(
        &self,
        user: UserId,
        direction: Direction,
        before: Option<ContactRequestId>,
        limit: usize,
    ) -> Result<Vec<ContactRequest>, UserError> {
        let sql = match direction {
            Direction::Incoming => concat!(
                "SELECT ",
                request_columns!(),
                " FROM contact_requests WHERE recipient_id = $1 AND state = 1 \
                  AND ($2 IS NULL OR contact_request_id < $2) \
                  ORDER BY contact_request_id DESC LIMIT $3"
            ),
            Direction::Outgoing => concat!(
                "SELECT ",
                request_columns!(),
                " FROM contact_requests WHERE sender_id = $1 AND state IN (1, 3) \
                  AND ($2 IS NULL OR contact_request_id < $2) \
                  ORDER BY contact_request_id DESC LIMIT $3"
            ),
        };
        let rows: Vec<RequestRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(sql)
                .bind(Id(user.into()))
                .bind(before.map(|id| Id(id.into())))
                .bind(sql_limit(limit))
                .fetch_all(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(ContactRequest::try_from)
            .collect::<Result<_, _>>()?)
    }
}

/// The open request from `sender` to `recipient` (locked on PostgreSQL, see [`for_update`]).
async fn open_request(
    tx: &mut Tx,
    sender: UserId,
    recipient: UserId,
) -> Result<Option<ContactRequest>, sqlx::Error> {
    let select = for_update(
        tx,
        concat!(
            "SELECT ",
            request_columns!(),
            " FROM contact_requests \
              WHERE sender_id = $1 AND recipient_id = $2 AND state IN (1, 3)"
        ),
    );
    let row: Option<RequestRow> = with_tx!(tx, |c| {
        sqlx::query_as(select)
            .bind(Id(sender.into()))
            .bind(Id(recipient.into()))
            .fetch_optional(c)
            .await?
    });
    decode(row)
}

/// Marks the open request `id` accepted and makes its two users each other's contacts;
/// returns it and the contact entries added.
async fn accept_open(
    tx: &mut Tx,
    id: ContactRequestId,
    at: DateTime<Utc>,
) -> Result<(ContactRequest, Vec<changes::ContactRow>), sqlx::Error> {
    let row: RequestRow = with_tx!(&mut *tx, |c| {
        sqlx::query_as(concat!(
            "UPDATE contact_requests SET state = 2, updated_at = $2 \
             WHERE contact_request_id = $1 RETURNING ",
            request_columns!()
        ))
        .bind(Id(id.into()))
        .bind(At(at))
        .fetch_one(c)
        .await?
    });
    let accepted = ContactRequest::try_from(row)?;
    let added = add_each_other(tx, accepted.sender_id, accepted.recipient_id, at).await?;
    Ok((accepted, added))
}
