//! Roles: the rules matrix (OWNER, ADMIN, MEMBER x remove, role, add), leaving and the last
//! owner, and ownership transfer (two events, in order).

use echo_message::error::MessageError;
use echo_message::store::{ConversationUpdate, Kind, Role};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use pb::user_event::Kind as UserKind;

use super::{event_at, team, user_events_of};
use crate::common::*;

async fn role_rules_matrix(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 4, 2).await;
    let (a1, a2, m1, m2) = (others[0], others[1], others[2], others[3]);
    let outsider = env.user().await;
    let seq = env.conversation(id).await.last_seq;
    // Remove: MEMBERs no one, ADMINs only MEMBERs, nobody themselves.
    for (actor, target) in [
        (m1, m2.user_id),
        (m1, a1.user_id),
        (m1, outsider),
        (a1, a2.user_id),
        (a1, owner.user_id),
        (owner, owner.user_id),
        (a1, a1.user_id),
    ] {
        assert_refused!(
            env.store.remove_member(actor, id, target, now()).await,
            MessageError::NotAllowed
        );
    }
    // Roles: the OWNER only, never their own.
    for actor in [a1, m1] {
        assert_refused!(
            env.store
                .set_role(actor, id, m2.user_id, Role::Admin, now())
                .await,
            MessageError::NotAllowed
        );
    }
    assert_refused!(
        env.store
            .set_role(owner, id, owner.user_id, Role::Member, now())
            .await,
        MessageError::NotAllowed
    );
    assert_refused!(
        env.store
            .set_role(owner, id, outsider, Role::Admin, now())
            .await,
        MessageError::UserNotFound(None)
    );
    // Adding: admins only by default.
    assert_refused!(
        env.store.add_members(m1, id, &[outsider], now()).await,
        MessageError::NotAllowed
    );
    assert_eq!(
        env.conversation(id).await.last_seq,
        seq,
        "refusals take no seq"
    );
    // What is allowed.
    assert_eq!(
        env.store
            .remove_member(a1, id, outsider, now())
            .await
            .unwrap(),
        0
    );
    let removed = env
        .store
        .remove_member(a1, id, m2.user_id, now())
        .await
        .unwrap();
    assert_eq!(removed, seq + 1);
    assert_eq!(
        env.store
            .remove_member(owner, id, a2.user_id, now())
            .await
            .unwrap(),
        seq + 2
    );
    let promoted = env
        .store
        .set_role(owner, id, m1.user_id, Role::Admin, now())
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::Admin);
    let event = event_at(env, id, seq + 3).await;
    let Event::MemberRoleChanged(change) = kind(&event) else {
        panic!("{event:?}")
    };
    assert_eq!(
        (change.user_id.clone(), change.previous_role, change.role),
        (
            m1.user_id.to_string(),
            Role::Member.code().into(),
            Role::Admin.code().into()
        )
    );
    // The same role again: no seq, no event.
    let same = env
        .store
        .set_role(owner, id, m1.user_id, Role::Admin, now())
        .await
        .unwrap();
    assert_eq!(same.role, Role::Admin);
    assert_eq!(env.conversation(id).await.last_seq, seq + 3);
    let demoted = env
        .store
        .set_role(owner, id, m1.user_id, Role::Member, now())
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::Member);
    let added = env
        .store
        .add_members(a1, id, &[outsider], now())
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    // Opening adding to everyone lets MEMBERs add.
    let open = ConversationUpdate {
        only_admins_add_members: Some(false),
        ..ConversationUpdate::default()
    };
    env.store
        .update_conversation(owner, id, &open, now())
        .await
        .unwrap();
    let late = env.user().await;
    let by_member = env.store.add_members(m1, id, &[late], now()).await.unwrap();
    assert_eq!(by_member[0].added_by, Some(m1.user_id));
    // Still no removing or roles for MEMBERs, whatever the settings.
    assert_refused!(
        env.store.remove_member(m1, id, late, now()).await,
        MessageError::NotAllowed
    );
    // And nothing of the kind in a direct conversation.
    let direct = env.direct(owner, late).await;
    assert_refused!(
        env.store.remove_member(owner, direct.id, late, now()).await,
        MessageError::NotAllowed
    );
    assert_refused!(
        env.store
            .set_role(owner, direct.id, late, Role::Admin, now())
            .await,
        MessageError::NotAllowed
    );
}

async fn leave_and_last_owner(env: &Env) {
    let (id, owner, others) = team(env, Kind::Channel, 2, 0).await;
    let (m1, m2) = (others[0], others[1]);
    assert_refused!(
        env.store.leave(owner, id, now()).await,
        MessageError::LastOwner
    );
    let seq = env.store.leave(m1, id, now()).await.unwrap();
    assert_eq!(seq, env.conversation(id).await.last_seq);
    let event = event_at(env, id, seq).await;
    assert!(matches!(kind(&event), Event::MemberLeft(m) if m.user_id == m1.user_id.to_string()));
    let mine = user_events_of(env, m1.user_id).await;
    let last = mine.last().unwrap();
    let Some(UserKind::ConversationLeft(gone)) = &last.kind else {
        panic!("{mine:?}")
    };
    assert_eq!(
        (gone.left_at_seq, gone.reason),
        (seq, pb::LeaveReason::Left as i32)
    );
    assert_eq!(last.actor_device_id, m1.device_id.to_string());
    assert_refused!(
        env.store.leave(m1, id, now()).await,
        MessageError::ConversationNotFound
    );
    // Hand over, then the former owner (now ADMIN) may leave; the last member too.
    env.store
        .set_role(owner, id, m2.user_id, Role::Owner, now())
        .await
        .unwrap();
    env.store.leave(owner, id, now()).await.unwrap();
    let conversation = env.conversation(id).await;
    assert_eq!(conversation.member_count, 1);
    let last_seq = env.store.leave(m2, id, now()).await.unwrap();
    let conversation = env.conversation(id).await;
    assert_eq!(
        (conversation.member_count, conversation.last_seq),
        (0, last_seq)
    );
    // Direct conversations are archived, not left.
    let peer = env.user().await;
    let direct = env.direct(owner, peer).await;
    assert_refused!(
        env.store.leave(owner, direct.id, now()).await,
        MessageError::NotAllowed
    );
}

async fn ownership_transfer_events(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 2, 0).await;
    let heir = others[0];
    let seq = env.conversation(id).await.last_seq;
    let after = env
        .store
        .set_role(owner, id, heir.user_id, Role::Owner, now())
        .await
        .unwrap();
    assert_eq!(after.role, Role::Owner);
    let changes: Vec<(i64, String, i32, i32)> = env
        .events_of(id)
        .await
        .iter()
        .filter_map(|e| match kind(e) {
            Event::MemberRoleChanged(c) => {
                Some((e.seq, c.user_id.clone(), c.previous_role, c.role))
            }
            _ => None,
        })
        .collect();
    let (owner_code, admin_code, member_code) = (1, 2, 3);
    assert_eq!(
        changes,
        [
            (seq + 1, heir.user_id.to_string(), member_code, owner_code),
            (seq + 2, owner.user_id.to_string(), owner_code, admin_code),
        ]
    );
    assert_eq!(env.member(id, owner.user_id).await.role, Role::Admin);
    // The former owner has no say over roles any more; the new one does.
    assert_refused!(
        env.store
            .set_role(owner, id, others[1].user_id, Role::Admin, now())
            .await,
        MessageError::NotAllowed
    );
    env.store
        .set_role(heir, id, owner.user_id, Role::Member, now())
        .await
        .unwrap();
    assert_refused!(
        env.store.leave(heir, id, now()).await,
        MessageError::LastOwner
    );
}

conformance!(
    role_rules_matrix,
    leave_and_last_owner,
    ownership_transfer_events,
);
