//! The moderation record, written once for both backends (STYLE 15): add a report (one per
//! reporter and message), list the queue by report id, resolve a report once, and erase resolved
//! reports past their retention.

use chrono::{DateTime, Utc};
use echo_ids::{MessageId, ReportId, UserId};
use echo_proto::echo::message::v1 as pb;
use echo_store::{sql_limit, with_db, with_tx};

use super::{Report, Resolution};
use crate::error::MessageError;
use crate::store::MessageStore;
use crate::store::codec::{At, Id, corrupt, decoded};

/// The `message_reports` columns, in [`ReportRow`]'s order.
macro_rules! report_columns {
    () => {
        "report_id, conversation_id, message_id, reporter_id, reason, note, snapshot, \
         created_at, resolved_at, resolution, resolved_by"
    };
}

/// A `message_reports` row as stored.
#[derive(sqlx::FromRow)]
struct ReportRow {
    report_id: Id,
    conversation_id: Id,
    message_id: Id,
    reporter_id: Id,
    reason: i16,
    note: String,
    snapshot: Vec<u8>,
    created_at: At,
    resolved_at: Option<At>,
    resolution: Option<String>,
    resolved_by: Option<String>,
}

impl TryFrom<ReportRow> for Report {
    type Error = sqlx::Error;

    fn try_from(row: ReportRow) -> Result<Self, sqlx::Error> {
        let reason = pb::ReportReason::try_from(i32::from(row.reason))
            .map_err(|e| corrupt("message_reports.reason", e))?;
        let snapshot = decoded::<pb::Message>("message_reports.snapshot", Some(row.snapshot))?
            .unwrap_or_default();
        let resolved = row.resolved_at.map(|at| Resolution {
            at: at.0,
            resolution: row.resolution.unwrap_or_default(),
            by: row.resolved_by.unwrap_or_default(),
        });
        Ok(Report {
            id: row.report_id.0.into(),
            conversation_id: row.conversation_id.0.into(),
            message_id: row.message_id.0.into(),
            reporter_id: row.reporter_id.0.into(),
            reason,
            note: row.note,
            snapshot,
            created_at: row.created_at.0,
            resolved,
        })
    }
}

impl MessageStore {
    /// Keeps `report` unless its reporter already reported its message; the id of the report
    /// kept (this one's, or the earlier one's).
    pub async fn add_report(&self, report: &Report) -> Result<ReportId, MessageError> {
        let snapshot = prost::Message::encode_to_vec(&report.snapshot);
        let reason = i16::try_from(i32::from(report.reason)).unwrap_or_default();
        let mut tx = self.db.begin().await?;
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO message_reports (report_id, conversation_id, message_id, \
                   reporter_id, reason, note, snapshot, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (message_id, reporter_id) DO NOTHING",
            )
            .bind(Id(report.id.into()))
            .bind(Id(report.conversation_id.into()))
            .bind(Id(report.message_id.into()))
            .bind(Id(report.reporter_id.into()))
            .bind(reason)
            .bind(&report.note)
            .bind(&snapshot)
            .bind(At(report.created_at))
            .execute(c)
            .await
            .map(|_| ())
        })?;
        let kept: Id = with_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "SELECT report_id FROM message_reports WHERE message_id = $1 AND reporter_id = $2",
            )
            .bind(Id(report.message_id.into()))
            .bind(Id(report.reporter_id.into()))
            .fetch_one(c)
            .await
        })?;
        tx.commit().await?;
        Ok(kept.0.into())
    }

    /// Up to `limit` reports after `after` by id (time order): open ones, or all with
    /// `include_resolved`.
    pub async fn reports(
        &self,
        after: Option<ReportId>,
        limit: usize,
        include_resolved: bool,
    ) -> Result<Vec<Report>, MessageError> {
        let rows: Vec<ReportRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                report_columns!(),
                " FROM message_reports \
                 WHERE ($1 IS NULL OR report_id > $1) AND ($2 OR resolved_at IS NULL) \
                 ORDER BY report_id LIMIT $3"
            ))
            .bind(after.map(|id| Id(id.into())))
            .bind(include_resolved)
            .bind(sql_limit(limit))
            .fetch_all(c)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(Report::try_from)
            .collect::<Result<_, _>>()?)
    }

    /// Resolves report `id` unless it is resolved already (the first resolution stays); the
    /// report as it is now, or None when there is no such report.
    pub async fn resolve_report(
        &self,
        id: ReportId,
        resolution: &Resolution,
    ) -> Result<Option<Report>, MessageError> {
        let mut tx = self.db.begin().await?;
        with_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE message_reports SET resolved_at = $2, resolution = $3, resolved_by = $4 \
                 WHERE report_id = $1 AND resolved_at IS NULL",
            )
            .bind(Id(id.into()))
            .bind(At(resolution.at))
            .bind(&resolution.resolution)
            .bind(&resolution.by)
            .execute(c)
            .await
            .map(|_| ())
        })?;
        let row: Option<ReportRow> = with_tx!(&mut tx, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                report_columns!(),
                " FROM message_reports WHERE report_id = $1"
            ))
            .bind(Id(id.into()))
            .fetch_optional(c)
            .await
        })?;
        tx.commit().await?;
        Ok(row.map(Report::try_from).transpose()?)
    }

    /// Erases resolved reports resolved before `before`; how many.
    pub async fn erase_resolved_reports(&self, before: DateTime<Utc>) -> Result<u64, MessageError> {
        let done = with_db!(&self.db, write, |c| {
            sqlx::query(
                "DELETE FROM message_reports WHERE resolved_at IS NOT NULL AND resolved_at < $1",
            )
            .bind(At(before))
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// The reports of `reporter` on `message` (at most one), for tests.
    pub async fn report_of(
        &self,
        message: MessageId,
        reporter: UserId,
    ) -> Result<Option<Report>, MessageError> {
        let row: Option<ReportRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                report_columns!(),
                " FROM message_reports WHERE message_id = $1 AND reporter_id = $2"
            ))
            .bind(Id(message.into()))
            .bind(Id(reporter.into()))
            .fetch_optional(c)
            .await
        })?;
        Ok(row.map(Report::try_from).transpose()?)
    }
}
