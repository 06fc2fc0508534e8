//! Finding people: the search terms a profile is found by, and the ranked, keyset-paged
//! search over them.

use echo_ids::UserId;
use echo_store::{Tx, sql_limit, with_db, with_tx};
use sqlx::AssertSqlSafe;

use super::codec::Id;
use super::profiles::ProfileRow;
use super::{Profile, SearchHit, SearchPosition, UserStore, prefix_end, rank};
use crate::error::UserError;

/// A search hit as read: the profile and its rank.
#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    profile: ProfileRow,
    hit_rank: i16,
}

impl UserStore {
    /// Live profiles with a search term starting with `prefix` (already lowercased, no `@`)
    /// that `viewer` may discover: not the viewer, not deleted, having a username or being in
    /// the viewer's contacts, and not having blocked the viewer. Ordered by (rank,
    /// display_name_key, user_id), after `after` when given; at most `limit`.
    pub async fn search(
        &self,
        viewer: UserId,
        prefix: &str,
        after: Option<&SearchPosition>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, UserError> {
        // Ranked in a subquery so the keyset compares the rank like any other column.
        let rows: Vec<HitRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(
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
                 WHERE $7 IS NULL OR (hit_rank, display_name_key, user_id) > ($7, $8, $9) \
                 ORDER BY hit_rank, display_name_key, user_id LIMIT $10",
            )
            .bind(Id(viewer.into()))
            .bind(prefix)
            .bind(prefix_end(prefix))
            .bind(rank::EXACT_USERNAME)
            .bind(rank::CONTACT)
            .bind(rank::OTHER)
            .bind(after.map(|a| a.rank))
            .bind(after.map(|a| a.display_name_key.as_str()))
            .bind(after.map(|a| Id(a.user_id.into())))
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| SearchHit {
                profile: Profile::from(row.profile),
                rank: row.hit_rank,
            })
            .collect())
    }
}

/// Replaces `user_id`'s search terms by `terms` (a handful: one multi-row INSERT).
pub(super) async fn replace_search_terms(
    tx: &mut Tx,
    user_id: UserId,
    terms: Vec<String>,
) -> Result<(), sqlx::Error> {
    with_tx!(&mut *tx, |c| {
        sqlx::query("DELETE FROM profile_search_terms WHERE user_id = $1")
            .bind(Id(user_id.into()))
            .execute(c)
            .await?;
    });
    if terms.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..terms.len())
        .map(|n| format!("(${}, $1)", n + 2))
        .collect();
    let sql = format!(
        "INSERT INTO profile_search_terms (term, user_id) VALUES {}",
        rows.join(", ")
    );
    with_tx!(tx, |c| {
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(Id(user_id.into()));
        for term in &terms {
            query = query.bind(term);
        }
        query.execute(c).await?;
    });
    Ok(())
}
