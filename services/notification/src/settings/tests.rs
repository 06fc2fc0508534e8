//! UpdateNotificationSettings requests: the mask decides what is read, and every bad field is
//! named.

use echo_runtime::Failure;
use prost_types::FieldMask;

use super::*;

fn request(
    paths: &[&str],
    settings: Option<pb::NotificationSettings>,
) -> pb::UpdateNotificationSettingsRequest {
    pb::UpdateNotificationSettingsRequest {
        settings,
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

fn quiet(enabled: bool, start: i32, end: i32, zone: &str) -> Option<pb::NotificationSettings> {
    Some(pb::NotificationSettings {
        show_previews: false,
        quiet_hours: Some(pb::QuietHours {
            enabled,
            start_minute: start,
            end_minute: end,
            time_zone: zone.to_owned(),
        }),
    })
}

/// The fields of the violations `request` is refused with.
fn violations(request: pb::UpdateNotificationSettingsRequest) -> Vec<String> {
    match change(request) {
        Err(NotificationError::Invalid(Failure::InvalidArgument(violations))) => {
            violations.into_iter().map(|v| v.field).collect()
        }
        other => panic!("expected violations, got {other:?}"),
    }
}

#[test]
fn only_masked_fields_change() {
    let change = change(request(
        &["show_previews"],
        quiet(true, 5000, -1, "Nowhere"),
    ))
    .unwrap();
    assert_eq!(
        change,
        SettingsChange {
            show_previews: Some(false),
            quiet_hours: None
        }
    );
    let change = change_of(
        &["quiet_hours"],
        quiet(true, 22 * 60, 7 * 60, "Europe/Berlin"),
    );
    assert_eq!(change.show_previews, None);
    assert_eq!(
        change.quiet_hours,
        Some(QuietHours {
            enabled: true,
            start_minute: 1320,
            end_minute: 420,
            time_zone: Some(chrono_tz::Europe::Berlin),
        })
    );
}

fn change_of(paths: &[&str], settings: Option<pb::NotificationSettings>) -> SettingsChange {
    change(request(paths, settings)).unwrap()
}

#[test]
fn absent_messages_read_as_their_defaults() {
    let change = change_of(&["show_previews", "quiet_hours"], None);
    assert_eq!(change.show_previews, Some(false));
    assert_eq!(change.quiet_hours, Some(QuietHours::default()));
}

#[test]
fn the_mask_is_required_and_known() {
    let missing = pb::UpdateNotificationSettingsRequest {
        settings: quiet(false, 0, 0, ""),
        update_mask: None,
    };
    assert_eq!(violations(missing), ["update_mask"]);
    assert_eq!(violations(request(&[], None)), ["update_mask"]);
    assert_eq!(
        violations(request(
            &["show_previews", "quiet_hours.start_minute", "nope"],
            None
        )),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    // repeats fold, but a flood of paths is refused as one violation
    let repeated = change_of(&["show_previews", "show_previews"], None);
    assert_eq!(repeated.show_previews, Some(false));
    let flood = vec!["nope"; 100_000];
    assert_eq!(violations(request(&flood, None)), ["update_mask"]);
}

#[test]
fn quiet_hours_fields_are_checked_each() {
    let all_bad = quiet(true, 1440, -1, "");
    assert_eq!(
        violations(request(&["quiet_hours"], all_bad)),
        [
            "settings.quiet_hours.start_minute",
            "settings.quiet_hours.end_minute",
            "settings.quiet_hours.time_zone"
        ]
    );
    let unknown_zone = quiet(false, 0, 1439, "Mars/Olympus");
    assert_eq!(
        violations(request(&["quiet_hours"], unknown_zone)),
        ["settings.quiet_hours.time_zone"]
    );
    let long_zone = quiet(true, 0, 0, &"A".repeat(65));
    assert_eq!(
        violations(request(&["quiet_hours"], long_zone)),
        ["settings.quiet_hours.time_zone"]
    );
    // disabled quiet hours need no zone, and keep the window given
    let off = change_of(&["quiet_hours"], quiet(false, 1439, 0, ""));
    assert_eq!(
        off.quiet_hours,
        Some(QuietHours {
            enabled: false,
            start_minute: 1439,
            end_minute: 0,
            time_zone: None
        })
    );
}

#[test]
fn a_change_applies_over_the_current_settings() {
    let current = Settings {
        show_previews: false,
        quiet_hours: QuietHours {
            enabled: true,
            start_minute: 1,
            end_minute: 2,
            time_zone: Some(chrono_tz::UTC),
        },
    };
    let previews = SettingsChange {
        show_previews: Some(true),
        quiet_hours: None,
    };
    assert_eq!(
        previews.apply(current),
        Settings {
            show_previews: true,
            ..current
        }
    );
    assert_eq!(SettingsChange::default().apply(current), current);
}
