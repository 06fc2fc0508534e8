//! The inbox's statements, each one SQL text for both backends (see `crate::store`).

use echo_ids::UserId;
use echo_store::{Tx, sql_limit, value_rows, with_db, with_tx};
use uuid::Uuid;

use super::{EntryKind, InboxEntry, MarkTarget, Marked};
use crate::error::NotificationError;
use crate::store::{NotificationStore, from_millis, millis};

/// The columns an [`EntryRow`] reads.
macro_rules! entry_columns {
    () => {
        "inbox_entry_id, user_id, kind, conversation_id, message_id, seq, sender_user_id, \
         sender_display_name, conversation_title, preview, created_at_ms, read"
    };
}

/// An `inbox_entries` row as both backends decode it.
#[derive(sqlx::FromRow)]
struct EntryRow {
    inbox_entry_id: Uuid,
    user_id: Uuid,
    kind: i16,
    conversation_id: Uuid,
    message_id: Uuid,
    seq: i64,
    sender_user_id: Uuid,
    sender_display_name: String,
    conversation_title: String,
    preview: String,
    created_at_ms: i64,
    read: bool,
}

impl EntryRow {
    fn entry(self) -> Result<InboxEntry, sqlx::Error> {
        let kind = EntryKind::from_code(self.kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown inbox entry kind {}", self.kind).into())
        })?;
        Ok(InboxEntry {
            id: self.inbox_entry_id,
            user_id: self.user_id.into(),
            kind,
            conversation_id: self.conversation_id.into(),
            message_id: self.message_id.into(),
            seq: self.seq,
            sender_user_id: self.sender_user_id.into(),
            sender_display_name: self.sender_display_name,
            conversation_title: self.conversation_title,
            preview: self.preview,
            created_at: from_millis(self.created_at_ms),
            read: self.read,
        })
    }
}

const UNREAD: &str = "SELECT count(*) FROM inbox_entries WHERE user_id = $1 AND NOT read";

impl NotificationStore {
    /// `user`'s entries newest first (by id, a UUIDv7), only unread ones when `unread_only`,
    /// below `before` when given; at most `limit`.
    pub async fn list_inbox(
        &self,
        user: UserId,
        unread_only: bool,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, NotificationError> {
        const SQL: &str = concat!(
            "SELECT ",
            entry_columns!(),
            " FROM inbox_entries WHERE user_id = $1 AND inbox_entry_id < $2 \
               AND (NOT read OR NOT $3) \
             ORDER BY inbox_entry_id DESC LIMIT $4"
        );
        let before = before.unwrap_or(Uuid::max());
        let rows: Vec<EntryRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(SQL)
                .bind(Uuid::from(user))
                .bind(before)
                .bind(unread_only)
                .bind(sql_limit(limit))
                .fetch_all(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(EntryRow::entry)
            .collect::<Result<_, _>>()?)
    }

    /// Marks `user`'s entries read: `target` and every older entry, or all of them. An
    /// `UpTo` entry that is unknown or another user's is `InboxEntryNotFound`.
    #[tracing::instrument(skip(self))]
    pub async fn mark_read(
        &self,
        user: UserId,
        target: MarkTarget,
    ) -> Result<Marked, NotificationError> {
        const OWNED: &str =
            "SELECT count(*) FROM inbox_entries WHERE inbox_entry_id = $1 AND user_id = $2";
        // `all` is an `UpTo` the largest id.
        const MARK: &str = "UPDATE inbox_entries SET read = TRUE \
             WHERE user_id = $1 AND NOT read AND inbox_entry_id <= $2";
        let up_to = match target {
            MarkTarget::UpTo(id) => id,
            MarkTarget::All => Uuid::max(),
        };
        let mut tx = self.db.begin().await?;
        let marked = with_tx!(&mut tx, |c| {
            if let MarkTarget::UpTo(id) = target {
                let owned: i64 = sqlx::query_scalar(OWNED)
                    .bind(id)
                    .bind(Uuid::from(user))
                    .fetch_one(&mut *c)
                    .await?;
                if owned == 0 {
                    return Err(NotificationError::InboxEntryNotFound);
                }
            }
            let done = sqlx::query(MARK)
                .bind(Uuid::from(user))
                .bind(up_to)
                .execute(&mut *c)
                .await?;
            let unread_left: i64 = sqlx::query_scalar(UNREAD)
                .bind(Uuid::from(user))
                .fetch_one(&mut *c)
                .await?;
            Marked {
                marked: done.rows_affected(),
                unread_left,
            }
        });
        tx.commit().await?;
        Ok(marked)
    }

    /// `user`'s unread entries.
    pub async fn unread_inbox(&self, user: UserId) -> Result<i64, NotificationError> {
        Ok(with_db!(&self.db, read, |c| {
            sqlx::query_scalar(UNREAD)
                .bind(Uuid::from(user))
                .fetch_one(c)
                .await?
        }))
    }
}

/// Rows per INSERT of entries: 12 values each, well under SQLite's 32,766 bound values.
const ENTRIES_PER_INSERT: usize = 1_000;

/// Writes `entries` in the caller's transaction (the pipeline's write: a message's entries,
/// a multi-row INSERT per thousand recipients); returns the users whose entry is new. A user
/// who already has an entry for that message keeps it (a redelivered event changes nothing).
pub async fn write_entries(
    tx: &mut Tx,
    entries: &[InboxEntry],
) -> Result<Vec<UserId>, sqlx::Error> {
    let mut written = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(ENTRIES_PER_INSERT) {
        let sql = format!(
            "INSERT INTO inbox_entries ({}) VALUES {} \
             ON CONFLICT (user_id, message_id) DO NOTHING RETURNING user_id",
            entry_columns!(),
            value_rows(1, chunk.len(), 12)
        );
        let users: Vec<Uuid> = with_tx!(tx, sql, |c| {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()));
            for entry in chunk {
                query = query
                    .bind(entry.id)
                    .bind(Uuid::from(entry.user_id))
                    .bind(entry.kind.code())
                    .bind(Uuid::from(entry.conversation_id))
                    .bind(Uuid::from(entry.message_id))
                    .bind(entry.seq)
                    .bind(Uuid::from(entry.sender_user_id))
                    .bind(&entry.sender_display_name)
                    .bind(&entry.conversation_title)
                    .bind(&entry.preview)
                    .bind(millis(entry.created_at))
                    .bind(entry.read);
            }
            query.fetch_all(c).await?
        });
        written.extend(users.into_iter().map(UserId::from));
    }
    Ok(written)
}

/// Entries are kept this long.
pub const KEEP_DAYS: i64 = 90;
/// And at most this many per user (the newest).
pub const KEEP_PER_USER: i64 = 1_000;

/// Deletes entries created before `before`, and each user's entries past their newest
/// `keep_per_user`. Returns how many went.
pub async fn trim(
    db: &echo_store::Database,
    before: chrono::DateTime<chrono::Utc>,
    keep_per_user: i64,
) -> Result<u64, sqlx::Error> {
    const OLD: &str = "DELETE FROM inbox_entries WHERE created_at_ms < $1";
    // Window functions: PostgreSQL, and SQLite since 3.25.
    const OVER: &str = "DELETE FROM inbox_entries WHERE inbox_entry_id IN (\
         SELECT inbox_entry_id FROM (SELECT inbox_entry_id, ROW_NUMBER() OVER \
           (PARTITION BY user_id ORDER BY inbox_entry_id DESC) AS n FROM inbox_entries) ranked \
         WHERE n > $1)";
    with_db!(db, write, |c| {
        let old = sqlx::query(OLD).bind(millis(before)).execute(c).await?;
        let over = sqlx::query(OVER).bind(keep_per_user).execute(c).await?;
        Ok(old.rows_affected() + over.rows_affected())
    })
}
