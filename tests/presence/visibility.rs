//! Who sees whose presence (spec §A3) end to end: the projections fed by the user and message
//! services' events, every relation under every `last_seen` setting, blocks both ways, and an
//! open watch flipping to `restricted` and back without being reopened.

use std::time::Duration;

use echo_proto::echo::message::v1::ConversationType;
use echo_proto::echo::user::v1::Visibility;
use echo_testkit::{Backend, SignedIn, TestMesh};

use crate::common::messages::{direct, group};
use crate::common::users::{add_contact, block, known_user, set_privacy};
use crate::helpers::*;

/// Poll until `viewer` sees `user` as `visible` (or restricted).
async fn sees(mesh: &TestMesh, viewer: &SignedIn, user: &SignedIn, visible: bool, who: &str) {
    let what = format!("{who} {}", if visible { "visible" } else { "restricted" });
    eventually(mesh, viewer, user, |p| p.restricted != visible, &what).await;
}

#[tokio::test]
async fn every_relation_under_every_setting() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let target = known_user(&mesh).await;
        let stranger = known_user(&mesh).await;
        let grouped = known_user(&mesh).await;
        let channelled = known_user(&mesh).await;
        let contact = known_user(&mesh).await;
        let partner = known_user(&mesh).await;
        group(&mesh, &target, ConversationType::Group, &[&grouped]).await;
        group(&mesh, &target, ConversationType::Channel, &[&channelled]).await;
        direct(&mesh, &partner, &target).await;
        add_contact(&mesh, &target, &contact, "c").await;
        let alive = keep_alive(&mesh, &target);
        // The unrelated see nothing whatever the setting; restricted reveals nothing.
        let observers = [
            ("stranger", &stranger, [false, false, false]),
            ("group co-member", &grouped, [true, false, false]),
            ("channel co-member", &channelled, [false, false, false]),
            ("contact", &contact, [true, true, false]),
            ("direct partner", &partner, [true, false, false]),
        ];
        let settings = [
            Visibility::Everyone,
            Visibility::Contacts,
            Visibility::Nobody,
        ];
        for (column, setting) in settings.into_iter().enumerate() {
            set_privacy(&mesh, &target, "last_seen", setting).await;
            // Every transition flips someone, so polling each observer until it shows what is
            // expected proves the setting applied (and nothing else is pending).
            for (who, observer, expected) in &observers {
                let what = format!("{backend:?}: {who} under {setting:?}");
                sees(&mesh, observer, &target, expected[column], &what).await;
                let presence = one(&mesh, observer, &target).await;
                if presence.restricted {
                    assert_eq!(
                        (presence.status, presence.last_seen),
                        (0, None),
                        "restricted carries nothing"
                    );
                } else {
                    assert_eq!(status(&presence), S::Online, "{what}");
                }
            }
        }
        assert!(!one(&mesh, &target, &target).await.restricted, "self");

        // Blocks, either way, hide presence from a contact.
        set_privacy(&mesh, &target, "last_seen", Visibility::Contacts).await;
        sees(&mesh, &contact, &target, true, "contact").await;
        block(&mesh, &target, &contact).await;
        sees(&mesh, &contact, &target, false, "blocked contact").await;
        unblock(&mesh, &target, &contact).await;
        sees(&mesh, &contact, &target, true, "unblocked contact").await;
        block(&mesh, &contact, &target).await;
        sees(&mesh, &contact, &target, false, "contact who blocked").await;
        alive.abort();
        mesh.shutdown().await;
    }
}

async fn unblock(mesh: &TestMesh, blocker: &SignedIn, blocked: &SignedIn) {
    mesh.user_as(blocker)
        .unblock_user(echo_proto::echo::user::v1::UnblockUserRequest {
            user_id: blocked.tokens.user_id.clone(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_open_watch_flips_to_restricted_and_back() {
    for backend in Backend::BOTH {
        let Some(mesh) = mesh(backend).await else {
            continue;
        };
        let (ada, bob) = pair(&mesh).await;
        heartbeat(&mesh, &bob, S::Online).await;
        let alive = keep_alive(&mesh, &bob);
        let mut stream = watch(&mesh, &ada, &[&bob]).await;
        let first = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status(&first), S::Online, "{backend:?}: the snapshot");

        set_privacy(&mesh, &bob, "last_seen", Visibility::Nobody).await;
        let hidden = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert!(
            hidden.restricted,
            "{backend:?}: flipped without reopening: {hidden:?}"
        );

        set_privacy(&mesh, &bob, "last_seen", Visibility::Contacts).await;
        let back = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(
            (back.restricted, status(&back)),
            (false, S::Online),
            "{backend:?}: and back"
        );

        block(&mesh, &ada, &bob).await;
        let blocked = next_presence(&mut stream, Duration::from_secs(5)).await;
        assert!(
            blocked.restricted,
            "{backend:?}: a block by the watcher flips it too"
        );
        alive.abort();
        mesh.shutdown().await;
    }
}
