//! `push_jobs`, the dispatch queue the delivery pipeline fills and drains (spec §B3; not built
//! yet). Only what the RPCs need lives here now: the hook that drops a removed or moved token's
//! pending jobs, so a handed-over phone never shows the previous owner's previews.

use echo_store::{Tx, with_tx};
use uuid::Uuid;

/// `push_jobs.state` of a job waiting to be sent. The dispatcher defines the other states; a
/// job already being sent is its business (it rechecks the token before sending).
pub const PENDING: i16 = 1;

/// Deletes `token`'s pending jobs in the caller's transaction (the token was unregistered,
/// replaced by another device's registration, or is about to be deleted). Returns how many.
pub async fn cancel_pending(tx: &mut Tx, token: Uuid) -> Result<u64, sqlx::Error> {
    const SQL: &str = "DELETE FROM push_jobs WHERE push_token_id = $1 AND state = $2";
    with_tx!(tx, |c| {
        let done = sqlx::query(SQL)
            .bind(token)
            .bind(PENDING)
            .execute(c)
            .await?;
        Ok(done.rows_affected())
    })
}
