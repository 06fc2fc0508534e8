//! NotificationService end to end through the generated gRPC client, on both backends: the
//! RPCs that stand without the delivery pipeline (settings, the inbox and badge reads, token
//! management's refusals) and their bad fields.

use echo_proto::echo::notification::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use tonic::Code;

mod common;

use common::{assert_reason, violated_fields};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn settings_inbox_badge_and_tokens_answer_through_grpc() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let mut client = mesh.notification_as(&ada);

        let defaults = client
            .get_notification_settings(pb::GetNotificationSettingsRequest {})
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        assert!(
            defaults.show_previews,
            "{backend:?}: previews on by default"
        );
        let quiet = pb::QuietHours {
            enabled: true,
            start_minute: 22 * 60,
            end_minute: 7 * 60,
            time_zone: "Europe/Berlin".into(),
        };
        let updated = client
            .update_notification_settings(pb::UpdateNotificationSettingsRequest {
                settings: Some(pb::NotificationSettings {
                    show_previews: false,
                    quiet_hours: Some(quiet.clone()),
                }),
                update_mask: mask(&["show_previews", "quiet_hours"]),
            })
            .await
            .unwrap()
            .into_inner()
            .settings
            .unwrap();
        assert!(!updated.show_previews);
        assert_eq!(updated.quiet_hours, Some(quiet));

        let bad_zone = client
            .update_notification_settings(pb::UpdateNotificationSettingsRequest {
                settings: Some(pb::NotificationSettings {
                    show_previews: true,
                    quiet_hours: Some(pb::QuietHours {
                        enabled: true,
                        start_minute: 1440,
                        end_minute: 0,
                        time_zone: "Mars/Olympus".into(),
                    }),
                }),
                update_mask: mask(&["quiet_hours", "nope"]),
            })
            .await
            .unwrap_err();
        assert_eq!(bad_zone.code(), Code::InvalidArgument);
        assert!(!violated_fields(&bad_zone).is_empty(), "{bad_zone:?}");

        let inbox = client
            .list_inbox(pb::ListInboxRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(inbox.entries.is_empty());
        let marked = client
            .mark_inbox_read(pb::MarkInboxReadRequest {
                target: Some(pb::mark_inbox_read_request::Target::All(true)),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((marked.marked_count, marked.unread_inbox_entries), (0, 0));
        let neither = client
            .mark_inbox_read(pb::MarkInboxReadRequest { target: None })
            .await
            .unwrap_err();
        assert_eq!(neither.code(), Code::InvalidArgument);
        let unknown = client
            .mark_inbox_read(pb::MarkInboxReadRequest {
                target: Some(pb::mark_inbox_read_request::Target::UpToInboxEntryId(
                    uuid::Uuid::now_v7().to_string(),
                )),
            })
            .await
            .unwrap_err();
        assert_reason(&unknown, Code::NotFound, "INBOX_ENTRY_NOT_FOUND");

        let badge = client
            .get_badge_count(pb::GetBadgeCountRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(badge.badge_count, 0);

        // No push platform is configured in this build: a clear refusal, nothing stored.
        let token = "a".repeat(64);
        let refused = client
            .register_push_token(pb::RegisterPushTokenRequest {
                platform: pb::PushPlatform::Apns as i32,
                token,
                app_id: "chat.echo.app".into(),
                sandbox: false,
            })
            .await
            .unwrap_err();
        assert_reason(
            &refused,
            Code::FailedPrecondition,
            "PUSH_PLATFORM_UNAVAILABLE",
        );
        let bad = client
            .register_push_token(pb::RegisterPushTokenRequest {
                platform: pb::PushPlatform::Unspecified as i32,
                token: String::new(),
                app_id: String::new(),
                sandbox: false,
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(
            violated_fields(&bad).contains(&"platform".to_owned()),
            "{bad:?}"
        );
        let listed = client
            .list_push_tokens(pb::ListPushTokensRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(listed.push_tokens.is_empty());
        client
            .unregister_push_token(pb::UnregisterPushTokenRequest {
                push_token_id: uuid::Uuid::now_v7().to_string(),
            })
            .await
            .expect("unknown ids unregister quietly");
        mesh.shutdown().await;
    }
}
