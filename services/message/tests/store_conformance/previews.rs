//! What notification previews read (`echo_message::internal::read` over
//! `MessageStore::messages_by_id`): the current state of messages of any conversation by id,
//! an edit's latest content, a deletion for everyone as a tombstone that keeps its ids, seq,
//! sender and reply target, and the sender of the message each one replies to.

use chrono::Duration;
use echo_ids::MessageId;
use echo_message::internal::{Found, read};
use echo_message::store::Message;

use crate::common::*;

/// The message found for `id` in `found`.
fn found(found: &[(MessageId, Option<Found>)], id: MessageId) -> Found {
    found
        .iter()
        .find(|(at, _)| *at == id)
        .and_then(|(_, f)| f.clone())
        .unwrap_or_else(|| panic!("{id} not found in {found:?}"))
}

/// Reads by id see edits and deletions for everyone, answer in request order with None for
/// unknown ids, and name the sender of a reply's target, whether or not the target is among
/// the ids asked for and also once it is deleted for everyone.
pub async fn previews_read_current_state_and_reply_senders(env: &Env) {
    let [owner, ada] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada]).await;
    let elsewhere = env.direct(ada_device, owner).await;
    let first = env.say(owner_device, group.id, "first").await;
    let mut answer = text_message(group.id, "an answer");
    answer.reply_to_message_id = Some(first.id);
    let reply = env.send_at(ada_device, &answer, now()).await;
    let draft = env.say(owner_device, group.id, "draft").await;
    let direct = env.say(ada_device, elsewhere.id, "psst").await;

    let edit = echo_message::store::Edit {
        conversation_id: group.id,
        message_id: draft.id,
        base_edit_count: 0,
        content: text_message(group.id, "final").content,
        mentioned: Vec::new(),
    };
    env.store
        .edit(owner_device, &edit, now(), Duration::hours(48))
        .await
        .expect("edit");
    let deleted = env
        .store
        .delete_for_everyone(owner_device, group.id, first.id, now())
        .await
        .expect("delete for everyone");
    assert!(deleted);

    // The reply alone: its target is read separately, deleted as it is.
    let alone = read(env.store.as_ref(), &[reply.id]).await.expect("read");
    assert_eq!(alone.len(), 1);
    assert_eq!(found(&alone, reply.id).reply_to_sender, Some(owner));

    let unknown = MessageId::new_v7();
    let ids = [direct.id, reply.id, unknown, draft.id, first.id];
    let all = read(env.store.as_ref(), &ids).await.expect("read");
    let order: Vec<MessageId> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, ids, "request order");
    assert!(all[2].1.is_none(), "unknown id: {:?}", all[2]);

    let text = |m: &Message| m.content.as_ref().map(|c| c.text.clone());
    let reply_now = found(&all, reply.id);
    assert_eq!(reply_now.reply_to_sender, Some(owner));
    assert_eq!(reply_now.message, reply);

    let edited = found(&all, draft.id);
    assert_eq!(text(&edited.message), Some("final".to_owned()));
    assert_eq!(edited.message.edit_count, 1);
    assert_eq!(edited.reply_to_sender, None);

    let tombstone = found(&all, first.id);
    assert_eq!(tombstone.message.content, None);
    assert!(tombstone.message.deleted_at.is_some());
    assert_eq!(
        (
            tombstone.message.conversation_id,
            tombstone.message.sender_id,
            tombstone.message.seq,
            tombstone.message.created_at,
        ),
        (group.id, owner, first.seq, first.created_at)
    );

    // Any conversation: the reader is a service, not a member.
    let other = found(&all, direct.id);
    assert_eq!(other.message.conversation_id, elsewhere.id);
    assert_eq!(text(&other.message), Some("psst".to_owned()));

    // A deleted reply keeps its target, so its sender is still named.
    env.store
        .delete_for_everyone(ada_device, group.id, reply.id, now())
        .await
        .expect("delete the reply");
    let gone = read(env.store.as_ref(), &[reply.id]).await.expect("read");
    let gone = found(&gone, reply.id);
    assert_eq!(gone.message.content, None);
    assert_eq!(gone.message.reply_to_message_id, Some(first.id));
    assert_eq!(gone.reply_to_sender, Some(owner));

    assert!(
        read(env.store.as_ref(), &[])
            .await
            .expect("read")
            .is_empty()
    );
}

conformance!(previews_read_current_state_and_reply_senders);
