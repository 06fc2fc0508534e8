//! The settings' statements, each one SQL text for both backends (see `crate::store`). No row
//! means the defaults; an update is one upsert, so concurrent updates of different fields
//! never undo each other.

use std::collections::HashMap;

use chrono_tz::Tz;
use echo_ids::UserId;
use echo_store::{placeholders, with_db};
use uuid::Uuid;

use super::{QuietHours, Settings, SettingsChange};
use crate::error::NotificationError;
use crate::store::NotificationStore;

/// A `notification_settings` row as both backends decode it.
#[derive(sqlx::FromRow)]
struct SettingsRow {
    show_previews: bool,
    quiet_enabled: bool,
    quiet_start_minute: i16,
    quiet_end_minute: i16,
    quiet_time_zone: String,
}

impl SettingsRow {
    fn settings(self) -> Settings {
        Settings {
            show_previews: self.show_previews,
            quiet_hours: QuietHours {
                enabled: self.quiet_enabled,
                start_minute: u16::try_from(self.quiet_start_minute).unwrap_or(0),
                end_minute: u16::try_from(self.quiet_end_minute).unwrap_or(0),
                // A name a later tz database dropped reads as none (quiet hours then stay off).
                time_zone: self.quiet_time_zone.parse::<Tz>().ok(),
            },
        }
    }
}

/// A [`SettingsRow`] with its user (the batch read).
#[derive(sqlx::FromRow)]
struct UserSettingsRow {
    user_id: Uuid,
    #[sqlx(flatten)]
    row: SettingsRow,
}

/// The columns a [`SettingsRow`] reads.
macro_rules! settings_columns {
    () => {
        "show_previews, quiet_enabled, quiet_start_minute, quiet_end_minute, quiet_time_zone"
    };
}

impl NotificationStore {
    /// `user`'s settings (the defaults when they never changed any).
    pub async fn settings(&self, user: UserId) -> Result<Settings, NotificationError> {
        const SQL: &str = concat!(
            "SELECT ",
            settings_columns!(),
            " FROM notification_settings WHERE user_id = $1"
        );
        let row: Option<SettingsRow> = with_db!(&self.db, read, |c| {
            sqlx::query_as(SQL)
                .bind(Uuid::from(user))
                .fetch_optional(c)
                .await?
        });
        Ok(row.map(SettingsRow::settings).unwrap_or_default())
    }

    /// The settings of each of `users` (the defaults for those who never changed any), in one
    /// statement: the dispatcher reads a claimed batch's this way.
    pub async fn settings_of(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Settings>, NotificationError> {
        let mut settings: HashMap<UserId, Settings> =
            users.iter().map(|u| (*u, Settings::default())).collect();
        if users.is_empty() {
            return Ok(settings);
        }
        let sql = format!(
            "SELECT user_id, {} FROM notification_settings WHERE user_id IN ({})",
            settings_columns!(),
            placeholders(1, users.len())
        );
        let rows: Vec<UserSettingsRow> = with_db!(&self.db, read, sql, |c| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for user in users {
                query = query.bind(Uuid::from(*user));
            }
            query.fetch_all(c).await?
        });
        for row in rows {
            settings.insert(row.user_id.into(), row.row.settings());
        }
        Ok(settings)
    }

    /// Applies `change` to `user`'s settings; returns them after.
    #[tracing::instrument(skip(self))]
    pub async fn update_settings(
        &self,
        user: UserId,
        change: &SettingsChange,
    ) -> Result<Settings, NotificationError> {
        // A first update inserts the defaults with the change applied; later ones set only the
        // changed columns ($7, $8 say which).
        const SQL: &str = concat!(
            "INSERT INTO notification_settings (user_id, ",
            settings_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id) DO UPDATE SET \
               show_previews = CASE WHEN $7 THEN excluded.show_previews \
                 ELSE notification_settings.show_previews END, \
               quiet_enabled = CASE WHEN $8 THEN excluded.quiet_enabled \
                 ELSE notification_settings.quiet_enabled END, \
               quiet_start_minute = CASE WHEN $8 THEN excluded.quiet_start_minute \
                 ELSE notification_settings.quiet_start_minute END, \
               quiet_end_minute = CASE WHEN $8 THEN excluded.quiet_end_minute \
                 ELSE notification_settings.quiet_end_minute END, \
               quiet_time_zone = CASE WHEN $8 THEN excluded.quiet_time_zone \
                 ELSE notification_settings.quiet_time_zone END \
             RETURNING ",
            settings_columns!()
        );
        let first = change.apply(Settings::default());
        let quiet = first.quiet_hours;
        let zone = quiet.time_zone.map(|z| z.name()).unwrap_or_default();
        let row: SettingsRow = with_db!(&self.db, write, |c| {
            sqlx::query_as(SQL)
                .bind(Uuid::from(user))
                .bind(first.show_previews)
                .bind(quiet.enabled)
                .bind(i16::try_from(quiet.start_minute).unwrap_or(0))
                .bind(i16::try_from(quiet.end_minute).unwrap_or(0))
                .bind(zone)
                .bind(change.show_previews.is_some())
                .bind(change.quiet_hours.is_some())
                .fetch_one(c)
                .await?
        });
        Ok(row.settings())
    }
}
