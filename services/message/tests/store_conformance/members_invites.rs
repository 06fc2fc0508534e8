//! Invites: who may create, revoke and list them, the active-invite cap, joining with a code
//! (events, use counts, every refusal), and concurrent joins against `max_uses`.
//! Over 400 lines as one piece: one feature (invites), its every rule and refusal.

use chrono::Duration;
use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::members::new_code;
use echo_message::store::{Actor, ConversationUpdate, Invite, Kind, NewInvite, Role};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use pb::user_event::Kind as UserKind;
use uuid::Uuid;

use super::{event_at, team, user_events_of};
use crate::common::*;

fn new_invite(conversation: ConversationId, max_uses: i32) -> NewInvite {
    NewInvite {
        id: Uuid::now_v7(),
        conversation_id: conversation,
        code: new_code(),
        expires_at: None,
        max_uses,
    }
}

async fn invite(env: &Env, actor: Actor, conversation: ConversationId, max_uses: i32) -> Invite {
    env.store
        .create_invite(actor, &new_invite(conversation, max_uses), now())
        .await
        .expect("create invite")
}

async fn invite_creation_rules_and_cap(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 2, 1).await;
    let (admin, member) = (others[0], others[1]);
    let seq = env.conversation(id).await.last_seq;
    let created = invite(env, admin, id, 5).await;
    assert_eq!(
        (created.created_by, created.max_uses, created.use_count),
        (admin.user_id, 5, 0)
    );
    assert_eq!(created.revoked_at, None);
    assert_eq!(
        env.conversation(id).await.last_seq,
        seq,
        "invites take no seq"
    );
    assert_refused!(
        env.store
            .create_invite(member, &new_invite(id, 0), now())
            .await,
        MessageError::NotAllowed
    );
    let stranger = device(env.user().await);
    assert_refused!(
        env.store
            .create_invite(stranger, &new_invite(id, 0), now())
            .await,
        MessageError::ConversationNotFound
    );
    let direct = env.direct(owner, stranger.user_id).await;
    assert_refused!(
        env.store
            .create_invite(owner, &new_invite(direct.id, 0), now())
            .await,
        MessageError::NotAllowed
    );
    // Anyone may invite once adding is open to everyone.
    let open = ConversationUpdate {
        only_admins_add_members: Some(false),
        ..ConversationUpdate::default()
    };
    env.store
        .update_conversation(owner, id, &open, now())
        .await
        .unwrap();
    let by_member = invite(env, member, id, 0).await;
    // At most 100 active: revoked, expired and used-up invites do not count.
    for _ in 2..100 {
        invite(env, owner, id, 0).await;
    }
    assert_refused!(
        env.store
            .create_invite(owner, &new_invite(id, 0), now())
            .await,
        MessageError::LimitExceeded("invites")
    );
    env.store
        .revoke_invite(owner, id, by_member.id, now())
        .await
        .unwrap();
    let mut expiring = new_invite(id, 0);
    expiring.expires_at = Some(now() + Duration::seconds(30));
    env.store
        .create_invite(owner, &expiring, now())
        .await
        .unwrap();
    assert_refused!(
        env.store
            .create_invite(owner, &new_invite(id, 0), now())
            .await,
        MessageError::LimitExceeded("invites")
    );
    let later = now() + Duration::minutes(1);
    env.store
        .create_invite(owner, &new_invite(id, 0), later)
        .await
        .unwrap();
}

async fn invite_revoke_and_list(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 3, 1).await;
    let (admin, m1, m2) = (others[0], others[1], others[2]);
    let open = ConversationUpdate {
        only_admins_add_members: Some(false),
        ..ConversationUpdate::default()
    };
    env.store
        .update_conversation(owner, id, &open, now())
        .await
        .unwrap();
    let first = invite(env, owner, id, 0).await;
    let mine = invite(env, m1, id, 0).await;
    let third = invite(env, admin, id, 0).await;
    // Its creator or an admin may revoke; another member may not.
    assert_refused!(
        env.store.revoke_invite(m2, id, mine.id, now()).await,
        MessageError::NotAllowed
    );
    let revoked = env
        .store
        .revoke_invite(m1, id, mine.id, now())
        .await
        .unwrap();
    let at = revoked.revoked_at.expect("revoked");
    let again = env
        .store
        .revoke_invite(admin, id, mine.id, now() + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(
        again.revoked_at,
        Some(at),
        "idempotent: the first time stays"
    );
    assert_refused!(
        env.store
            .revoke_invite(owner, id, Uuid::now_v7(), now())
            .await,
        MessageError::InviteInvalid
    );
    let (other, other_owner, _) = team(env, Kind::Group, 0, 0).await;
    let elsewhere = invite(env, other_owner, other, 0).await;
    assert_refused!(
        env.store
            .revoke_invite(owner, id, elsewhere.id, now())
            .await,
        MessageError::InviteInvalid
    );
    let stranger = device(env.user().await);
    assert_refused!(
        env.store.revoke_invite(stranger, id, first.id, now()).await,
        MessageError::ConversationNotFound
    );
    // Newest first; inactive only on request; keyset pages.
    let ids = |invites: &[Invite]| invites.iter().map(|i| i.id).collect::<Vec<_>>();
    let active = env.store.invites(id, false, None, 10, now()).await.unwrap();
    assert_eq!(ids(&active), [third.id, first.id]);
    let everything = env.store.invites(id, true, None, 10, now()).await.unwrap();
    assert_eq!(ids(&everything), [third.id, mine.id, first.id]);
    assert_eq!(everything[1].revoked_at, Some(at));
    let page = env.store.invites(id, true, None, 2, now()).await.unwrap();
    let rest = env
        .store
        .invites(id, true, Some(page[1].id), 2, now())
        .await
        .unwrap();
    assert_eq!(ids(&rest), [first.id]);
}

async fn join_by_invite_events_and_refusals(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 1).await;
    let admin = others[0];
    let code = invite(env, admin, id, 2).await;
    let joiner = device(env.user().await);
    let seq = env.conversation(id).await.last_seq + 1;
    let joined = env
        .store
        .join_by_invite(joiner, &code.code, now())
        .await
        .unwrap();
    assert_eq!(joined, (id, true));
    let event = event_at(env, id, seq).await;
    let Event::MemberJoined(join) = kind(&event) else {
        panic!("{event:?}")
    };
    assert_eq!(join.method, pb::JoinMethod::Invite as i32);
    assert_eq!(join.invite_id, code.id.to_string());
    let member = join.member.as_ref().unwrap();
    assert_eq!(member.added_by_user_id, admin.user_id.to_string());
    assert_eq!(
        (member.joined_at_seq, member.role),
        (seq, Role::Member.code().into())
    );
    assert_eq!(event.actor_user_id, joiner.user_id.to_string());
    let mine = user_events_of(env, joiner.user_id).await;
    let [own] = mine.as_slice() else {
        panic!("{mine:?}")
    };
    let Some(UserKind::ConversationJoined(welcome)) = &own.kind else {
        panic!("{own:?}")
    };
    assert_eq!(welcome.joined_at_seq, seq);
    assert_eq!(own.actor_device_id, joiner.device_id.to_string());
    assert_eq!(env.conversation(id).await.member_count, 3);
    // Already a member: nothing changes, the use is not counted.
    let again = env
        .store
        .join_by_invite(joiner, &code.code, now())
        .await
        .unwrap();
    assert_eq!(again, (id, false));
    assert_eq!(env.conversation(id).await.last_seq, seq);
    // The second use is the last.
    let second = device(env.user().await);
    env.store
        .join_by_invite(second, &code.code, now())
        .await
        .unwrap();
    let listed = env.store.invites(id, true, None, 10, now()).await.unwrap();
    assert_eq!(listed[0].use_count, 2);
    let third = device(env.user().await);
    assert_refused!(
        env.store.join_by_invite(third, &code.code, now()).await,
        MessageError::InviteInvalid
    );
    assert_refused!(
        env.store.join_by_invite(third, &new_code(), now()).await,
        MessageError::InviteInvalid
    );
    // Revoked, expired.
    let revoked = invite(env, owner, id, 0).await;
    env.store
        .revoke_invite(owner, id, revoked.id, now())
        .await
        .unwrap();
    assert_refused!(
        env.store.join_by_invite(third, &revoked.code, now()).await,
        MessageError::InviteInvalid
    );
    let mut expiring = new_invite(id, 0);
    let expiry = now() + Duration::minutes(10);
    expiring.expires_at = Some(expiry);
    let expiring = env
        .store
        .create_invite(owner, &expiring, now())
        .await
        .unwrap();
    assert_refused!(
        env.store
            .join_by_invite(third, &expiring.code, expiry + Duration::seconds(1))
            .await,
        MessageError::InviteExpired
    );
    // A full conversation.
    let open = invite(env, owner, id, 0).await;
    let cap = echo_message::store::member_cap(Kind::Group);
    env.exec(
        "UPDATE conversations SET member_count = $1 WHERE conversation_id = $2",
        &[Val::Int(cap.into()), Val::Id(id.into())],
    )
    .await;
    assert_refused!(
        env.store.join_by_invite(third, &open.code, now()).await,
        MessageError::LimitExceeded("members")
    );
    env.exec(
        "UPDATE conversations SET member_count = 4 WHERE conversation_id = $1",
        &[Val::Id(id.into())],
    )
    .await;
    // A removed member comes back by invite with a new join.
    let removed_at = env
        .store
        .remove_member(owner, id, joiner.user_id, now())
        .await
        .unwrap();
    env.store
        .join_by_invite(joiner, &open.code, now())
        .await
        .unwrap();
    let back = env.member(id, joiner.user_id).await;
    assert!(back.joined_at_seq > removed_at && back.is_current());
    assert_eq!(back.added_by, Some(owner.user_id));
}

async fn concurrent_joins_respect_max_uses(env: &Env) {
    let (id, owner, _) = team(env, Kind::Group, 0, 0).await;
    let code = invite(env, owner, id, 3).await;
    let before = env.conversation(id).await;
    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let joiner = device(env.user().await);
        let (store, code) = (env.store.clone(), code.code.clone());
        joins.spawn(async move { store.join_by_invite(joiner, &code, now()).await });
    }
    let (mut joined, mut refused) = (0, 0);
    while let Some(outcome) = joins.join_next().await {
        match outcome.unwrap() {
            Ok((_, true)) => joined += 1,
            Err(MessageError::InviteInvalid) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((joined, refused), (3, 7));
    let after = env.conversation(id).await;
    assert_eq!(
        (after.member_count, after.last_seq),
        (before.member_count + 3, before.last_seq + 3)
    );
    let listed = env.store.invites(id, true, None, 10, now()).await.unwrap();
    assert_eq!(listed[0].use_count, 3);
}

/// `only_admins_add_members` of `conversation` set to `admins_only` by its owner.
async fn admins_only(env: &Env, owner: Actor, conversation: ConversationId, admins_only: bool) {
    let update = ConversationUpdate {
        only_admins_add_members: Some(admins_only),
        ..ConversationUpdate::default()
    };
    env.store
        .update_conversation(owner, conversation, &update, now())
        .await
        .unwrap();
}

async fn member_reopening_a_dead_code_is_ok(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 1).await;
    let admin = others[0];
    let used_up = invite(env, owner, id, 1).await;
    let joiner = device(env.user().await);
    let joined = env.store.join_by_invite(joiner, &used_up.code, now()).await;
    assert_eq!(joined.unwrap(), (id, true));
    let revoked = invite(env, owner, id, 0).await;
    env.store
        .revoke_invite(owner, id, revoked.id, now())
        .await
        .unwrap();
    let mut expiring = new_invite(id, 0);
    let expiry = now() + Duration::minutes(10);
    expiring.expires_at = Some(expiry);
    let expiring = env
        .store
        .create_invite(owner, &expiring, now())
        .await
        .unwrap();
    let later = expiry + Duration::seconds(1);
    let seq = env.conversation(id).await.last_seq;
    // Already a member: OK, nothing changes, whatever became of the code.
    for member in [joiner, admin, owner] {
        for (code, at) in [
            (&used_up.code, now()),
            (&revoked.code, now()),
            (&expiring.code, later),
        ] {
            let again = env.store.join_by_invite(member, code, at).await;
            assert_eq!(again.unwrap(), (id, false));
        }
    }
    assert_eq!(env.conversation(id).await.last_seq, seq);
    let listed = env.store.invites(id, true, None, 10, now()).await.unwrap();
    assert!(
        listed
            .iter()
            .all(|i| i.use_count == i32::from(i.id == used_up.id))
    );
    // An unknown code still fails, member or not.
    assert_refused!(
        env.store.join_by_invite(joiner, &new_code(), now()).await,
        MessageError::InviteInvalid
    );
    // Outsiders still get the code's state.
    let outsider = device(env.user().await);
    assert_refused!(
        env.store
            .join_by_invite(outsider, &used_up.code, now())
            .await,
        MessageError::InviteInvalid
    );
    assert_refused!(
        env.store
            .join_by_invite(outsider, &expiring.code, later)
            .await,
        MessageError::InviteExpired
    );
}

async fn invite_stops_with_its_creator_right(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 2, 1).await;
    let (admin, member) = (others[0], others[1]);
    admins_only(env, owner, id, false).await;
    let by_member = invite(env, member, id, 0).await;
    let by_admin = invite(env, admin, id, 0).await;
    let join = |code: &str| {
        let (store, code) = (env.store.clone(), code.to_owned());
        async move {
            let joiner = device(UserId::new_v7());
            store.join_by_invite(joiner, &code, now()).await
        }
    };
    let joiners = env.users::<4>().await;
    let joined = env
        .store
        .join_by_invite(device(joiners[0]), &by_member.code, now())
        .await;
    assert_eq!(joined.unwrap(), (id, true));
    // MEMBERs may no longer add: the member's invite stops, the admin's works.
    admins_only(env, owner, id, true).await;
    let before = env.conversation(id).await;
    assert_refused!(join(&by_member.code).await, MessageError::InviteInvalid);
    let joined = env
        .store
        .join_by_invite(device(joiners[1]), &by_admin.code, now())
        .await;
    assert_eq!(joined.unwrap(), (id, true));
    // The admin demoted: theirs stops too; promoted again, it works again.
    env.store
        .set_role(owner, id, admin.user_id, Role::Member, now())
        .await
        .unwrap();
    let refused = env
        .store
        .join_by_invite(device(joiners[2]), &by_admin.code, now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::InviteInvalid)),
        "{refused:?}"
    );
    env.store
        .set_role(owner, id, admin.user_id, Role::Admin, now())
        .await
        .unwrap();
    let joined = env
        .store
        .join_by_invite(device(joiners[2]), &by_admin.code, now())
        .await;
    assert_eq!(joined.unwrap(), (id, true));
    // The creator gone: their invites stop, whatever the settings.
    env.store
        .remove_member(owner, id, admin.user_id, now())
        .await
        .unwrap();
    env.store
        .remove_member(owner, id, member.user_id, now())
        .await
        .unwrap();
    admins_only(env, owner, id, false).await;
    let seq = env.conversation(id).await.last_seq;
    for code in [&by_admin.code, &by_member.code] {
        let refused = env
            .store
            .join_by_invite(device(joiners[3]), code, now())
            .await;
        assert!(
            matches!(refused, Err(MessageError::InviteInvalid)),
            "{refused:?}"
        );
    }
    assert_eq!(
        env.conversation(id).await.last_seq,
        seq,
        "refusals take no seq"
    );
    let listed = env.store.invites(id, true, None, 10, now()).await.unwrap();
    let uses: Vec<(Uuid, i32)> = listed.iter().map(|i| (i.id, i.use_count)).collect();
    assert!(uses.contains(&(by_admin.id, 2)) && uses.contains(&(by_member.id, 1)));
    assert_eq!(env.conversation(id).await.member_count, before.member_count);
    // Back as a MEMBER while MEMBERs may add: the member's invite works again.
    env.store
        .add_members(owner, id, &[member.user_id], now())
        .await
        .unwrap();
    let joined = env
        .store
        .join_by_invite(device(joiners[3]), &by_member.code, now())
        .await;
    assert_eq!(joined.unwrap(), (id, true));
}

conformance!(
    invite_creation_rules_and_cap,
    invite_revoke_and_list,
    join_by_invite_events_and_refusals,
    concurrent_joins_respect_max_uses,
    member_reopening_a_dead_code_is_ok,
    invite_stops_with_its_creator_right,
);
