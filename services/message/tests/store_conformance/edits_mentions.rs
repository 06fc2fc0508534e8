//! Whom a mention added by an edit counts for: mentions are never refused, but a new mention
//! counts (mention row, counter, MessageEdited's `newly_mentioned_user_ids`) only for a
//! current member other than the sender who can see the message (joined before it, has not
//! deleted it for themselves). Everyone else stays mentioned in the content alone.

use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::store::Edited;
use pb::conversation_event::Kind as Event;

use super::{WINDOW, content, counters, edit_of, rows_of, stored};
use crate::common::*;
use echo_proto::echo::message::v1 as pb;

/// The users with a mention row for message `id`, checked one by one.
async fn has_mention_row(env: &Env, id: MessageId, user: UserId) -> bool {
    env.count(
        "SELECT count(*) FROM mentions \
         WHERE CAST(message_id AS TEXT) = $1 AND CAST(user_id AS TEXT) = $2",
        &[id.to_string(), user.to_string()],
    )
    .await
        == 1
}

/// The newly mentioned users of the conversation's latest event, a MessageEdited.
async fn last_edit_mentions(env: &Env, conversation: ConversationId) -> Vec<String> {
    let events = env.events_of(conversation).await;
    let last = events.last().expect("an event");
    let Event::MessageEdited(edited) = kind(last) else {
        panic!("{last:?}")
    };
    edited.newly_mentioned_user_ids.clone()
}

/// An edit mentioning a former member, a user who never joined, an unknown id and the sender
/// is accepted: every mention stays in the content, only the current member is counted.
pub async fn edit_mentioning_non_members_is_kept(env: &Env) {
    let [owner, ada, former, outsider] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, former]).await;
    env.store
        .remove_member(owner_device, group.id, former, now())
        .await
        .unwrap();
    let sent = env.say(owner_device, group.id, "hello").await;
    let (owner_before, former_before) = (
        counters(env, group.id, owner).await,
        counters(env, group.id, former).await,
    );
    let everyone = [former, outsider, owner, ada, UserId::new_v7()];
    let edit = edit_of(&sent, "hello all", &everyone);
    let outcome = env.store.edit(owner_device, &edit, now(), WINDOW).await;
    let Ok(Edited::Changed {
        message,
        newly_mentioned,
    }) = outcome
    else {
        panic!("expected an edit, got {outcome:?}");
    };
    assert_eq!(newly_mentioned, [ada]);
    assert_eq!(message.content, Some(content("hello all", &everyone)));
    assert_eq!(stored(env, &sent).await.content, message.content);
    assert_eq!(rows_of(env, "mentions", sent.id).await, 1);
    assert!(has_mention_row(env, sent.id, ada).await);
    assert_eq!(counters(env, group.id, ada).await, (1, 1));
    assert_eq!(counters(env, group.id, owner).await, owner_before);
    assert_eq!(counters(env, group.id, former).await, former_before);
    assert_eq!(last_edit_mentions(env, group.id).await, [ada.to_string()]);
}

/// A member who joined after the message, or deleted it for themselves, cannot see it: an
/// edit mentioning them keeps the mention in the content but gives them no mention row, no
/// counter and no notification; a member who sees it is counted. A later edit keeping the
/// same mentions adds nobody.
pub async fn edit_mentions_count_only_who_can_see(env: &Env) {
    let [owner, ada, hider, late] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, hider]).await;
    let sent = env.say(owner_device, group.id, "hello").await;
    assert!(
        env.store
            .delete_for_me(device(hider), group.id, sent.id, now())
            .await
            .unwrap()
    );
    env.store
        .add_members(owner_device, group.id, &[late], now())
        .await
        .unwrap();
    let late_member = env.member(group.id, late).await;
    assert!(late_member.joined_at_seq > sent.seq);
    let (hider_before, late_before) = (
        counters(env, group.id, hider).await,
        counters(env, group.id, late).await,
    );

    let mentioned = [late, hider, ada];
    let edit = edit_of(&sent, "hello you", &mentioned);
    let outcome = env.store.edit(owner_device, &edit, now(), WINDOW).await;
    let Ok(Edited::Changed {
        message,
        newly_mentioned,
    }) = outcome
    else {
        panic!("expected an edit, got {outcome:?}");
    };
    assert_eq!(newly_mentioned, [ada]);
    assert_eq!(message.content, Some(content("hello you", &mentioned)));
    assert_eq!(rows_of(env, "mentions", sent.id).await, 1);
    assert!(has_mention_row(env, sent.id, ada).await);
    assert!(!has_mention_row(env, sent.id, hider).await);
    assert!(!has_mention_row(env, sent.id, late).await);
    assert_eq!(counters(env, group.id, ada).await, (1, 1));
    assert_eq!(counters(env, group.id, hider).await, hider_before);
    assert_eq!(counters(env, group.id, late).await, late_before);
    assert_eq!(last_edit_mentions(env, group.id).await, [ada.to_string()]);

    // Still mentioning them: still nobody new.
    let again = edit_of(&message, "hello again", &mentioned);
    let outcome = env.store.edit(owner_device, &again, now(), WINDOW).await;
    let Ok(Edited::Changed {
        newly_mentioned, ..
    }) = outcome
    else {
        panic!("expected an edit, got {outcome:?}");
    };
    assert!(newly_mentioned.is_empty(), "{newly_mentioned:?}");
    assert!(last_edit_mentions(env, group.id).await.is_empty());
    assert_eq!(counters(env, group.id, ada).await, (1, 1));
    assert_eq!(counters(env, group.id, late).await, late_before);
}
