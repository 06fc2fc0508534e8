//! Notification settings: GetNotificationSettings and UpdateNotificationSettings (spec §B1),
//! and [`in_quiet_hours`], which the delivery pipeline asks per push.

mod quiet;
pub mod store;

use chrono_tz::Tz;
use echo_ids::UserId;
use echo_proto::echo::notification::v1 as pb;
use echo_runtime::Check;

pub use quiet::{MINUTES_PER_DAY, QuietHours, in_quiet_hours};

use crate::error::{NotificationError, checked};
use crate::store::NotificationStore;

/// The FieldMask paths UpdateNotificationSettings accepts.
const PATHS: [&str; 2] = ["show_previews", "quiet_hours"];
/// Most paths one update mask may name (there are two; repeats are folded).
const MAX_MASK_PATHS: usize = 8;
/// Longest time zone name, in bytes (IANA names are ASCII).
const MAX_ZONE: usize = 64;

/// A user's notification settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Pushes and inbox entries carry a preview of the message.
    pub show_previews: bool,
    /// When pushes are silent.
    pub quiet_hours: QuietHours,
}

impl Default for Settings {
    /// Previews on, quiet hours off: what a user who never changed anything has.
    fn default() -> Self {
        Settings {
            show_previews: true,
            quiet_hours: QuietHours::default(),
        }
    }
}

/// The fields an update sets; None leaves a field as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// New `show_previews`.
    pub show_previews: Option<bool>,
    /// New quiet hours, replaced whole.
    pub quiet_hours: Option<QuietHours>,
}

impl SettingsChange {
    /// `settings` with this change applied.
    pub fn apply(&self, settings: Settings) -> Settings {
        Settings {
            show_previews: self.show_previews.unwrap_or(settings.show_previews),
            quiet_hours: self.quiet_hours.unwrap_or(settings.quiet_hours),
        }
    }
}

/// GetNotificationSettings.
#[tracing::instrument(skip(store))]
pub async fn get(
    store: &NotificationStore,
    user: UserId,
) -> Result<pb::GetNotificationSettingsResponse, NotificationError> {
    let settings = store.settings(user).await?;
    Ok(pb::GetNotificationSettingsResponse {
        settings: Some(settings_pb(&settings)),
    })
}

/// UpdateNotificationSettings.
#[tracing::instrument(skip(store, request))]
pub async fn update(
    store: &NotificationStore,
    user: UserId,
    request: pb::UpdateNotificationSettingsRequest,
) -> Result<pb::UpdateNotificationSettingsResponse, NotificationError> {
    let change = change(request)?;
    let settings = store.update_settings(user, &change).await?;
    Ok(pb::UpdateNotificationSettingsResponse {
        settings: Some(settings_pb(&settings)),
    })
}

/// The change `request` asks for: only the fields its mask names are read (an absent
/// `settings` or `quiet_hours` reads as its defaults, as FieldMask updates do).
pub fn change(
    request: pb::UpdateNotificationSettingsRequest,
) -> Result<SettingsChange, NotificationError> {
    let mut check = Check::new();
    // A mask names each path once; a long list is refused whole, not path by path.
    let paths = match request.update_mask {
        Some(mask) if mask.paths.len() > MAX_MASK_PATHS => {
            check.push(
                "update_mask",
                format!("must name at most {MAX_MASK_PATHS} paths"),
            );
            Vec::new()
        }
        mask => check.mask(mask, &PATHS),
    };
    let mut settings = request.settings.unwrap_or_default();
    let mut change = SettingsChange::default();
    for path in paths {
        match path.as_str() {
            "show_previews" => change.show_previews = Some(settings.show_previews),
            _ => {
                change.quiet_hours =
                    quiet_hours(&mut check, settings.quiet_hours.take().unwrap_or_default())
            }
        }
    }
    checked(check)?;
    Ok(change)
}

/// Quiet hours as given, each bad field named: minutes 0–1439, a known IANA zone of at most
/// 64 characters, required when enabled.
fn quiet_hours(check: &mut Check, given: pb::QuietHours) -> Option<QuietHours> {
    const FIELD: &str = "settings.quiet_hours";
    let mut minute = |name: &str, value: i32| {
        let minute = u16::try_from(value).ok().filter(|m| *m < MINUTES_PER_DAY);
        if minute.is_none() {
            check.push(
                format!("{FIELD}.{name}"),
                "must be minutes after midnight, 0 to 1439",
            );
        }
        minute
    };
    let start_minute = minute("start_minute", given.start_minute);
    let end_minute = minute("end_minute", given.end_minute);
    let zone_field = format!("{FIELD}.time_zone");
    let time_zone = match given.time_zone.as_str() {
        "" if given.enabled => {
            check.push(zone_field, "is required when quiet hours are enabled");
            None
        }
        "" => None,
        name if name.len() > MAX_ZONE => {
            check.push(zone_field, format!("must be at most {MAX_ZONE} characters"));
            None
        }
        name => {
            let zone = name.parse::<Tz>().ok();
            if zone.is_none() {
                check.push(
                    zone_field,
                    "must be an IANA time zone name, e.g. Europe/Berlin",
                );
            }
            zone
        }
    };
    Some(QuietHours {
        enabled: given.enabled,
        start_minute: start_minute?,
        end_minute: end_minute?,
        time_zone,
    })
}

fn settings_pb(settings: &Settings) -> pb::NotificationSettings {
    let quiet = &settings.quiet_hours;
    pb::NotificationSettings {
        show_previews: settings.show_previews,
        quiet_hours: Some(pb::QuietHours {
            enabled: quiet.enabled,
            start_minute: i32::from(quiet.start_minute),
            end_minute: i32::from(quiet.end_minute),
            time_zone: quiet
                .time_zone
                .map(|z| z.name().to_owned())
                .unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests;
