//! Membership: conversation updates, adding (and adding back), removing, leaving, roles and
//! ownership transfer, member lists; every rule, refusal, no-op and event, and racing adds.
//! Roles and leaving are in `members_roles.rs`, invites in `members_invites.rs`.
//! Over 400 lines as one piece: the membership cases share the `team` fixtures defined here.

use chrono::Duration;
use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::store::{Actor, ConversationUpdate, Kind, Member, MemberPosition, Role};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use pb::user_event::Kind as UserKind;

use crate::common::*;

/// Asserts `outcome` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($outcome:expr, $pattern:pat) => {{
        let outcome = $outcome;
        assert!(matches!(outcome, Err($pattern)), "{outcome:?}");
    }};
}

#[path = "members_invites.rs"]
mod invites;
#[path = "members_rejoin.rs"]
mod rejoin;
#[path = "members_roles.rs"]
mod roles;

/// A group of a new owner with `n` more members, of whom the first `admins` are made ADMIN:
/// (conversation, owner, the others in order).
pub async fn team(
    env: &Env,
    kind: Kind,
    n: usize,
    admins: usize,
) -> (ConversationId, Actor, Vec<Actor>) {
    let owner = device(env.user().await);
    let mut others = Vec::new();
    for _ in 0..n {
        others.push(device(env.user().await));
    }
    let ids: Vec<UserId> = others.iter().map(|a| a.user_id).collect();
    let id = env.group_at(kind, owner, &ids, now()).await.id;
    for admin in &others[..admins] {
        let promoted = env
            .store
            .set_role(owner, id, admin.user_id, Role::Admin, now())
            .await
            .expect("promote");
        assert_eq!(promoted.role, Role::Admin);
    }
    (id, owner, others)
}

/// The event of `conversation` with `seq`.
pub async fn event_at(env: &Env, conversation: ConversationId, seq: i64) -> pb::ConversationEvent {
    let events = env.events_of(conversation).await;
    let found = events.into_iter().find(|e| e.seq == seq);
    found.unwrap_or_else(|| panic!("no event {seq} in {conversation}"))
}

/// `user`'s per-user events, in order.
pub async fn user_events_of(env: &Env, user: UserId) -> Vec<pb::UserEvent> {
    let id = user.to_string();
    let mut events = env.user_events().await;
    events.retain(|e| e.user_id == id);
    events
}

fn title(value: &str) -> ConversationUpdate {
    ConversationUpdate {
        title: Some(value.to_owned()),
        ..ConversationUpdate::default()
    }
}

async fn update_conversation_rules_and_events(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 2, 1).await;
    let (admin, member) = (others[0], others[1]);
    let before = env.conversation(id).await.last_seq;
    // Info is admins-only by default; settings always are.
    assert_refused!(
        env.store
            .update_conversation(member, id, &title("Mine"), now())
            .await,
        MessageError::NotAllowed
    );
    let updated = env
        .store
        .update_conversation(admin, id, &title("Renamed"), now())
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(
        (updated.title.as_str(), updated.last_seq),
        ("Renamed", before + 1)
    );
    let event = event_at(env, id, before + 1).await;
    let Event::ConversationUpdated(change) = kind(&event) else {
        panic!("{event:?}")
    };
    assert_eq!(change.update_mask.as_ref().unwrap().paths, ["title"]);
    assert_eq!(change.conversation.as_ref().unwrap().title, "Renamed");
    assert_eq!(event.actor_user_id, admin.user_id.to_string());
    // The same values again: no seq, no event.
    let same = env
        .store
        .update_conversation(owner, id, &title("Renamed"), now())
        .await
        .unwrap();
    assert_eq!(same, None);
    assert_eq!(env.conversation(id).await.last_seq, before + 1);
    // Opening info to everyone: settings by the owner, then the member edits info but still
    // not settings.
    let open = ConversationUpdate {
        only_admins_edit_info: Some(false),
        description: Some("About us".into()),
        ..ConversationUpdate::default()
    };
    let opened = env
        .store
        .update_conversation(owner, id, &open, now())
        .await
        .unwrap();
    assert!(!opened.expect("changed").only_admins_edit_info);
    let event = event_at(env, id, before + 2).await;
    let Event::ConversationUpdated(change) = kind(&event) else {
        panic!("{event:?}")
    };
    assert_eq!(
        change.update_mask.as_ref().unwrap().paths,
        ["description", "settings"]
    );
    let by_member = env
        .store
        .update_conversation(member, id, &title("Ours"), now())
        .await
        .unwrap();
    assert_eq!(by_member.expect("changed").title, "Ours");
    let settings = ConversationUpdate {
        only_admins_add_members: Some(false),
        ..ConversationUpdate::default()
    };
    assert_refused!(
        env.store
            .update_conversation(member, id, &settings, now())
            .await,
        MessageError::NotAllowed
    );
    // Direct conversations have no shared fields; strangers learn nothing.
    let peer = env.user().await;
    let direct = env.direct(owner, peer).await;
    assert_refused!(
        env.store
            .update_conversation(owner, direct.id, &title("x"), now())
            .await,
        MessageError::NotAllowed
    );
    let stranger = device(env.user().await);
    assert_refused!(
        env.store
            .update_conversation(stranger, id, &title("x"), now())
            .await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store
            .update_conversation(owner, ConversationId::new_v7(), &title("x"), now())
            .await,
        MessageError::ConversationNotFound
    );
    assert_eq!(env.conversation(id).await.last_seq, before + 3);
}

async fn add_members_events_and_refusals(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 0).await;
    let member = others[0];
    let [a, b] = env.users::<2>().await;
    let before = env.conversation(id).await;
    // Duplicates and current members are skipped; the rest join in order.
    let added = env
        .store
        .add_members(owner, id, &[a, member.user_id, b, a], now())
        .await
        .unwrap();
    let joined: Vec<(UserId, i64, Role)> = added
        .iter()
        .map(|m| (m.user_id, m.joined_at_seq, m.role))
        .collect();
    let first = before.last_seq + 1;
    assert_eq!(
        joined,
        [(a, first, Role::Member), (b, first + 1, Role::Member)]
    );
    assert!(added.iter().all(|m| m.added_by == Some(owner.user_id)));
    let after = env.conversation(id).await;
    assert_eq!(
        (after.last_seq, after.member_count),
        (first + 1, before.member_count + 2)
    );
    for (user, seq) in [(a, first), (b, first + 1)] {
        let event = event_at(env, id, seq).await;
        let Event::MemberJoined(join) = kind(&event) else {
            panic!("{event:?}")
        };
        assert_eq!(join.method, pb::JoinMethod::Added as i32);
        let snapshot = join.member.as_ref().unwrap();
        assert_eq!(snapshot.user_id, user.to_string());
        assert_eq!(snapshot.added_by_user_id, owner.user_id.to_string());
        assert_eq!(snapshot.joined_at_seq, seq);
        let mine = user_events_of(env, user).await;
        let [event] = mine.as_slice() else {
            panic!("{mine:?}")
        };
        let Some(UserKind::ConversationJoined(joined)) = &event.kind else {
            panic!("{event:?}")
        };
        assert_eq!(joined.joined_at_seq, seq);
        assert_eq!(
            joined.conversation.as_ref().unwrap().member_count,
            after.member_count
        );
        assert_eq!(event.actor_device_id, "", "caused by someone else");
    }
    let row = env.member(id, a).await;
    assert_eq!((row.last_read_seq, row.unread_count), (first, 0));
    // Everyone named is a member already: nothing to do.
    let none = env
        .store
        .add_members(owner, id, &[a, b], now())
        .await
        .unwrap();
    assert!(none.is_empty());
    // All or nothing: one unknown, deleted or blocking user fails the call.
    let c = env.user().await;
    let unknown = UserId::new_v7();
    let deleted = env.deleted_user().await;
    for bad in [unknown, deleted] {
        // The refusal names the offending user (ErrorInfo metadata `user_id`).
        let outcome = env.store.add_members(owner, id, &[c, bad], now()).await;
        assert!(
            matches!(outcome, Err(MessageError::UserNotFound(Some(named))) if named == bad),
            "{outcome:?}"
        );
    }
    let [blocker, blocked] = env.users::<2>().await;
    env.set_block(blocker, owner.user_id, true).await;
    env.set_block(owner.user_id, blocked, true).await;
    for bad in [blocker, blocked] {
        let outcome = env.store.add_members(owner, id, &[c, bad], now()).await;
        assert!(
            matches!(outcome, Err(MessageError::Blocked(Some(named))) if named == bad),
            "{outcome:?}"
        );
    }
    assert!(env.store.member(id, c).await.unwrap().is_none());
    // The cap counts current members.
    let cap = echo_message::store::member_cap(Kind::Group);
    env.exec(
        "UPDATE conversations SET member_count = $1 WHERE conversation_id = $2",
        &[Val::Int((cap - 1).into()), Val::Id(id.into())],
    )
    .await;
    let d = env.user().await;
    assert_refused!(
        env.store.add_members(owner, id, &[c, d], now()).await,
        MessageError::LimitExceeded("members")
    );
    let last = env.store.add_members(owner, id, &[c], now()).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(env.conversation(id).await.member_count, cap);
    // Roles, direct conversations and strangers.
    assert_refused!(
        env.store.add_members(member, id, &[d], now()).await,
        MessageError::NotAllowed
    );
    let direct = env.direct(owner, a).await;
    assert_refused!(
        env.store.add_members(owner, direct.id, &[d], now()).await,
        MessageError::NotAllowed
    );
    let stranger = device(d);
    assert_refused!(
        env.store.add_members(stranger, id, &[b], now()).await,
        MessageError::ConversationNotFound
    );
}

async fn membership_seqs_and_rejoin(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 0).await;
    let bob = others[0];
    env.say(owner, id, "before bob left").await;
    let removed_at = env
        .store
        .remove_member(owner, id, bob.user_id, now())
        .await
        .unwrap();
    assert_eq!(removed_at, env.conversation(id).await.last_seq);
    let event = event_at(env, id, removed_at).await;
    assert!(
        matches!(kind(&event), Event::MemberRemoved(m) if m.user_id == bob.user_id.to_string())
    );
    let left = env.member(id, bob.user_id).await;
    assert_eq!(left.left_at_seq, Some(removed_at));
    assert_eq!(env.conversation(id).await.member_count, 1);
    let mine = user_events_of(env, bob.user_id).await;
    let Some(UserKind::ConversationLeft(gone)) = &mine.last().unwrap().kind else {
        panic!("{mine:?}")
    };
    assert_eq!(gone.left_at_seq, removed_at);
    assert_eq!(gone.reason, pb::LeaveReason::Removed as i32);
    // A former member counts nothing and is not removed twice.
    assert_eq!(left.unread_count, 1);
    env.say(owner, id, "after bob left").await;
    assert_eq!(env.member(id, bob.user_id).await.unread_count, 1);
    assert_eq!(
        env.store
            .remove_member(owner, id, bob.user_id, now())
            .await
            .unwrap(),
        0
    );
    assert_refused!(
        env.store.leave(bob, id, now()).await,
        MessageError::ConversationNotFound
    );
    // Stale private state on the old row, then added back: a new join, everything reset.
    env.exec(
        "UPDATE members SET archived = $1, pinned_at = $2, unread_count = 7, \
         mention_count = 3 WHERE conversation_id = $3 AND user_id = $4",
        &[
            Val::Bool(true),
            Val::Time(Some(now())),
            Val::Id(id.into()),
            Val::Id(bob.user_id.into()),
        ],
    )
    .await;
    let back = env
        .store
        .add_members(owner, id, &[bob.user_id], now())
        .await
        .unwrap();
    let rejoined: &Member = &back[0];
    let seq = env.conversation(id).await.last_seq;
    assert_eq!(rejoined.joined_at_seq, seq);
    assert!(rejoined.joined_at_seq > removed_at);
    assert_eq!(rejoined.left_at_seq, None);
    assert_eq!(
        (
            rejoined.last_read_seq,
            rejoined.unread_count,
            rejoined.mention_count
        ),
        (seq, 0, 0)
    );
    assert!(!rejoined.archived && rejoined.pinned_at.is_none() && rejoined.mute_until.is_none());
    assert_eq!(
        env.count(
            "SELECT count(*) FROM members WHERE CAST(conversation_id AS TEXT) = $1",
            &[id.to_string()]
        )
        .await,
        2,
        "the former member's row is reused"
    );
    // History for them starts at the new join: every message so far lies before it.
    let messages = env.store.messages(id, all()).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.seq < rejoined.joined_at_seq));
    let fresh = env.say(owner, id, "welcome back").await;
    assert!(fresh.seq > rejoined.joined_at_seq);
    assert_eq!(env.member(id, bob.user_id).await.unread_count, 1);
    let mine = user_events_of(env, bob.user_id).await;
    let Some(UserKind::ConversationJoined(joined)) = &mine.last().unwrap().kind else {
        panic!("{mine:?}")
    };
    assert_eq!(joined.joined_at_seq, rejoined.joined_at_seq);
}

async fn list_members_order_filter_pages(env: &Env) {
    let (id, owner, others) = team(env, Kind::Channel, 4, 1).await;
    let ids = |members: &[Member]| members.iter().map(|m| m.user_id).collect::<Vec<_>>();
    // Promote the last member so that role, not join order, leads.
    env.store
        .set_role(owner, id, others[3].user_id, Role::Admin, now())
        .await
        .unwrap();
    let all = env.store.members(id, None, None, 100).await.unwrap();
    let expected = [
        owner.user_id,
        others[0].user_id,
        others[3].user_id,
        others[1].user_id,
        others[2].user_id,
    ];
    assert_eq!(ids(&all), expected);
    // Keyset pages of two.
    let mut seen = Vec::new();
    let mut after: Option<MemberPosition> = None;
    loop {
        let page = env
            .store
            .members(id, None, after.as_ref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(MemberPosition {
            role: last.role.code(),
            joined_at_seq: last.joined_at_seq,
        });
        seen.extend(ids(&page));
    }
    assert_eq!(seen, expected);
    // A plain channel member sees the admins and themselves; former members are gone.
    let visible = env
        .store
        .members(id, Some(others[2].user_id), None, 100)
        .await
        .unwrap();
    assert_eq!(
        ids(&visible),
        [
            owner.user_id,
            others[0].user_id,
            others[3].user_id,
            others[2].user_id
        ]
    );
    env.store
        .leave(others[1], id, now() + Duration::seconds(1))
        .await
        .unwrap();
    let all = env.store.members(id, None, None, 100).await.unwrap();
    assert!(!ids(&all).contains(&others[1].user_id));
}

async fn concurrent_adds_of_one_user(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 1).await;
    let admin = others[0];
    let newcomer = env.user().await;
    let before = env.conversation(id).await.last_seq;
    let mut calls = tokio::task::JoinSet::new();
    for actor in [owner, admin, owner, admin] {
        let store = env.store.clone();
        calls.spawn(async move { store.add_members(actor, id, &[newcomer], now()).await });
    }
    let mut added = 0;
    while let Some(outcome) = calls.join_next().await {
        added += outcome.unwrap().expect("every add succeeds").len();
    }
    assert_eq!(added, 1);
    let joins = env
        .events_of(id)
        .await
        .iter()
        .filter(|e| e.seq > before && matches!(kind(e), Event::MemberJoined(_)))
        .count();
    assert_eq!(joins, 1);
    assert_eq!(env.conversation(id).await.last_seq, before + 1);
    assert_eq!(user_events_of(env, newcomer).await.len(), 1);
}

conformance!(
    update_conversation_rules_and_events,
    add_members_events_and_refusals,
    membership_seqs_and_rejoin,
    list_members_order_filter_pages,
    concurrent_adds_of_one_user,
);
