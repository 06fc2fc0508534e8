//! What a member brings back from an earlier membership, and what joining is not: a watermark
//! set by joining is no read receipt, delivery receipts of the earlier membership do not come
//! back, and a reaction left before leaving can still be taken back. Also which user the
//! refusals of creating a conversation and adding members name.

use echo_ids::{ConversationId, UserId};
use echo_message::error::MessageError;
use echo_message::members::new_code;
use echo_message::store::{Actor, Kind, MemberReceipt, NewInvite};
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;
use uuid::Uuid;

use super::team;
use crate::common::*;

/// The receipts others see in `conversation` (all but `except`) as (user, read, read_at set,
/// delivered).
async fn seen_by(
    env: &Env,
    conversation: ConversationId,
    except: UserId,
) -> Vec<(UserId, i64, bool, i64)> {
    let receipts: Vec<MemberReceipt> = env
        .store
        .member_receipts(conversation, except, 0, None, 100)
        .await
        .unwrap();
    receipts
        .iter()
        .map(|r| {
            (
                r.user_id,
                r.last_read_seq,
                r.read_at.is_some(),
                r.delivered_up_to_seq,
            )
        })
        .collect()
}

async fn remove_and_add_back(env: &Env, owner: Actor, conversation: ConversationId, user: UserId) {
    env.store
        .remove_member(owner, conversation, user, now())
        .await
        .unwrap();
    let added = env
        .store
        .add_members(owner, conversation, &[user], now())
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
}

async fn joining_is_not_reading_and_old_receipts_stay_gone(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 2, 0).await;
    let (bea, cy) = (others[0], others[1]);
    env.say(owner, id, "hi").await;
    // Added members: their watermark sits at their join, which is no receipt.
    let [dee, eve] = env.users().await;
    let added = env
        .store
        .add_members(owner, id, &[dee, eve], now())
        .await
        .unwrap();
    assert!(added.iter().all(|m| m.last_read_seq == m.joined_at_seq));
    assert!(seen_by(env, id, owner.user_id).await.is_empty());
    env.say(owner, id, "hello").await;
    let last = env.conversation(id).await.last_seq;
    // A real read, a delivery: listed (read 0 until they read).
    assert!(
        env.store
            .mark_read(device(dee), id, last, now())
            .await
            .unwrap()
            .moved
    );
    env.store.mark_delivered(cy, id, last, now()).await.unwrap();
    env.store
        .mark_delivered(bea, id, last, now())
        .await
        .unwrap();
    let mut expected = vec![
        (bea.user_id, 0, false, last),
        (cy.user_id, 0, false, last),
        (dee, last, true, 0),
    ];
    expected.sort_by_key(|r| r.0);
    assert_eq!(seen_by(env, id, owner.user_id).await, expected);

    // Removed and added back: neither the old read nor the old deliveries resurface.
    remove_and_add_back(env, owner, id, dee).await;
    remove_and_add_back(env, owner, id, cy.user_id).await;
    assert!(
        env.store
            .device_receipts(id, cy.user_id)
            .await
            .unwrap()
            .is_empty()
    );
    // Back by invite: the same.
    env.store
        .remove_member(owner, id, bea.user_id, now())
        .await
        .unwrap();
    let invite = NewInvite {
        id: Uuid::now_v7(),
        conversation_id: id,
        code: new_code(),
        expires_at: None,
        max_uses: 0,
    };
    env.store
        .create_invite(owner, &invite, now())
        .await
        .unwrap();
    let joined = env.store.join_by_invite(bea, &invite.code, now()).await;
    assert_eq!(joined.unwrap(), (id, true));
    assert!(
        env.store
            .device_receipts(id, bea.user_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(seen_by(env, id, owner.user_id).await.is_empty());

    // New acknowledgements count again.
    env.say(owner, id, "again").await;
    let last = env.conversation(id).await.last_seq;
    env.store.mark_delivered(cy, id, last, now()).await.unwrap();
    env.store
        .mark_read(device(dee), id, last, now())
        .await
        .unwrap();
    let mut expected = vec![(cy.user_id, 0, false, last), (dee, last, true, 0)];
    expected.sort_by_key(|r| r.0);
    assert_eq!(seen_by(env, id, owner.user_id).await, expected);
}

async fn reaction_from_an_earlier_membership_can_be_taken_back(env: &Env) {
    let (id, owner, others) = team(env, Kind::Group, 1, 0).await;
    let bea = others[0];
    let message = env.say(owner, id, "before").await;
    let react = env
        .store
        .add_reaction(bea, id, message.id, "👍", now())
        .await;
    assert!(react.unwrap());
    env.store
        .remove_member(owner, id, bea.user_id, now())
        .await
        .unwrap();
    // Not a member: nothing to take back.
    let refused = env
        .store
        .remove_reaction(bea, id, message.id, "👍", now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::ConversationNotFound)),
        "{refused:?}"
    );
    env.store
        .add_members(owner, id, &[bea.user_id], now())
        .await
        .unwrap();
    // The message is from before the join: no new reaction on it...
    let refused = env
        .store
        .add_reaction(bea, id, message.id, "🎉", now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::MessageNotFound)),
        "{refused:?}"
    );
    // ...and no other emoji to take back (the message stays invisible)...
    let refused = env
        .store
        .remove_reaction(bea, id, message.id, "🎉", now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::MessageNotFound)),
        "{refused:?}"
    );
    // ...but their own reaction goes, with its event.
    let seq = env.conversation(id).await.last_seq + 1;
    let removed = env
        .store
        .remove_reaction(bea, id, message.id, "👍", now())
        .await;
    assert!(removed.unwrap());
    let events = env.events_of(id).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last.seq, last.actor_user_id.as_str()),
        (seq, bea.user_id.to_string().as_str())
    );
    let Event::ReactionRemoved(gone) = kind(last) else {
        panic!("{last:?}")
    };
    assert_eq!(
        (
            gone.message_id.as_str(),
            gone.user_id.as_str(),
            gone.emoji.as_str(),
            gone.count
        ),
        (
            message.id.to_string().as_str(),
            bea.user_id.to_string().as_str(),
            "👍",
            0
        )
    );
    let left = env.store.reactions(message.id, None, None, 10).await;
    assert!(left.unwrap().is_empty());
    // Gone: taking it back again is what any invisible message answers.
    let again = env
        .store
        .remove_reaction(bea, id, message.id, "👍", now())
        .await;
    assert!(
        matches!(again, Err(MessageError::MessageNotFound)),
        "{again:?}"
    );
    assert_eq!(env.conversation(id).await.last_seq, seq);
}

async fn creation_refusals_name_the_user(env: &Env) {
    let owner = env.user().await;
    let [fine, blocker, blocked] = env.users().await;
    let (unknown, deleted) = (UserId::new_v7(), env.deleted_user().await);
    // The first offending user in request order.
    for (members, named) in [
        (vec![fine, unknown, deleted], unknown),
        (vec![deleted, fine, unknown], deleted),
    ] {
        let refused = env
            .store
            .create_conversation(device(owner), &new_group(Kind::Group, &members), now())
            .await;
        assert!(
            matches!(refused, Err(MessageError::UserNotFound(Some(user))) if user == named),
            "{refused:?}"
        );
    }
    env.set_block(blocker, owner, true).await;
    env.set_block(owner, blocked, true).await;
    for (members, named) in [
        (vec![fine, blocker, blocked], blocker),
        (vec![blocked, blocker], blocked),
    ] {
        let refused = env
            .store
            .create_conversation(device(owner), &new_group(Kind::Channel, &members), now())
            .await;
        assert!(
            matches!(refused, Err(MessageError::Blocked(Some(user))) if user == named),
            "{refused:?}"
        );
    }
    // Unknown users are named before blocks.
    let refused = env
        .store
        .create_conversation(
            device(owner),
            &new_group(Kind::Group, &[blocker, unknown]),
            now(),
        )
        .await;
    assert!(
        matches!(refused, Err(MessageError::UserNotFound(Some(user))) if user == unknown),
        "{refused:?}"
    );
    // A direct conversation names the peer.
    let refused = env
        .store
        .create_direct(device(owner), blocker, ConversationId::new_v7(), now())
        .await;
    assert!(
        matches!(refused, Err(MessageError::Blocked(Some(user))) if user == blocker),
        "{refused:?}"
    );
    assert_eq!(env.rows("conversations").await, 0);
}

conformance!(
    joining_is_not_reading_and_old_receipts_stay_gone,
    reaction_from_an_earlier_membership_can_be_taken_back,
    creation_refusals_name_the_user,
);
