//! Notification settings: defaults without a row, masked updates, one user's change leaves
//! others alone.

use echo_ids::UserId;
use echo_notification::settings::{self, QuietHours, Settings, SettingsChange};
use echo_proto::echo::notification::v1 as pb;
use prost_types::FieldMask;

use crate::common::Env;

pub async fn defaults_without_a_row(env: &Env) {
    let user = UserId::new_v7();
    assert_eq!(env.store.settings(user).await.unwrap(), Settings::default());
    let reply = settings::get(&env.store, user).await.unwrap();
    assert_eq!(
        reply.settings,
        Some(pb::NotificationSettings {
            show_previews: true,
            quiet_hours: Some(pb::QuietHours {
                enabled: false,
                start_minute: 0,
                end_minute: 0,
                time_zone: String::new(),
            }),
        })
    );
    assert_eq!(
        env.rows("notification_settings").await,
        0,
        "reads write nothing"
    );
}

fn berlin_nights() -> QuietHours {
    QuietHours {
        enabled: true,
        start_minute: 22 * 60,
        end_minute: 7 * 60,
        time_zone: Some(chrono_tz::Europe::Berlin),
    }
}

pub async fn updates_change_only_the_masked_fields(env: &Env) {
    let user = UserId::new_v7();
    // the first update: defaults plus the change
    let previews_off = SettingsChange {
        show_previews: Some(false),
        quiet_hours: None,
    };
    let after = env
        .store
        .update_settings(user, &previews_off)
        .await
        .unwrap();
    assert_eq!(
        after,
        Settings {
            show_previews: false,
            quiet_hours: QuietHours::default()
        }
    );
    // then quiet hours alone: previews stay off
    let quiet = SettingsChange {
        show_previews: None,
        quiet_hours: Some(berlin_nights()),
    };
    let after = env.store.update_settings(user, &quiet).await.unwrap();
    let expected = Settings {
        show_previews: false,
        quiet_hours: berlin_nights(),
    };
    assert_eq!(after, expected);
    assert_eq!(env.store.settings(user).await.unwrap(), expected);
    // through the RPC mapping: turning quiet hours off keeps the window it was given
    let request = pb::UpdateNotificationSettingsRequest {
        settings: Some(pb::NotificationSettings {
            show_previews: true,
            quiet_hours: Some(pb::QuietHours {
                enabled: false,
                start_minute: 22 * 60,
                end_minute: 7 * 60,
                time_zone: "Europe/Berlin".into(),
            }),
        }),
        update_mask: Some(FieldMask {
            paths: vec!["quiet_hours".into()],
        }),
    };
    let reply = settings::update(&env.store, user, request).await.unwrap();
    let shown = reply.settings.unwrap();
    assert!(!shown.show_previews, "not in the mask");
    let quiet = shown.quiet_hours.unwrap();
    assert!(!quiet.enabled);
    assert_eq!((quiet.start_minute, quiet.end_minute), (1320, 420));
    assert_eq!(quiet.time_zone, "Europe/Berlin");
    assert_eq!(env.rows("notification_settings").await, 1);
}

pub async fn settings_are_per_user(env: &Env) {
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    let change = SettingsChange {
        show_previews: Some(false),
        quiet_hours: Some(berlin_nights()),
    };
    env.store.update_settings(ada, &change).await.unwrap();
    assert_eq!(env.store.settings(bob).await.unwrap(), Settings::default());
    let bobs = SettingsChange {
        show_previews: Some(true),
        quiet_hours: None,
    };
    env.store.update_settings(bob, &bobs).await.unwrap();
    assert_eq!(
        env.store.settings(ada).await.unwrap(),
        change.apply(Settings::default())
    );
}
