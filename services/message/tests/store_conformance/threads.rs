//! Replies and threads: which messages may be answered or rooted on, and reply counts.

use echo_ids::MessageId;
use echo_message::error::MessageError;

use crate::common::*;

/// Asserts `sent` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($sent:expr, $pattern:pat) => {{
        let sent = $sent;
        assert!(matches!(sent, Err($pattern)), "{sent:?}");
    }};
}

/// Replies and thread roots must be messages of the conversation the sender can see: not of
/// another conversation, not unknown, not from before the sender joined; a thread root also
/// not deleted for everyone and not itself in a thread. A thread reply counts on its root.
pub async fn replies_and_threads(env: &Env) {
    let [owner, ada, late] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada]).await;
    let other = env.group(owner_device, &[ada]).await;
    let root = env.say(owner_device, group.id, "root").await;
    let elsewhere = env.say(owner_device, other.id, "elsewhere").await;

    let reply = |to: Option<MessageId>, root: Option<MessageId>| {
        let mut new = text_message(group.id, "reply");
        new.reply_to_message_id = to;
        new.thread_root_message_id = root;
        new
    };
    let in_thread = env
        .send_at(ada_device, &reply(Some(root.id), Some(root.id)), now())
        .await;
    assert_eq!(in_thread.reply_to_message_id, Some(root.id));
    assert_eq!(in_thread.thread_root_message_id, Some(root.id));
    env.send_at(owner_device, &reply(None, Some(root.id)), now())
        .await;
    // A plain reply is not a thread reply.
    let plain = env
        .send_at(ada_device, &reply(Some(root.id), None), now())
        .await;
    assert_eq!(plain.thread_root_message_id, None);
    let root_now = env.store.message(group.id, root.id).await.unwrap().unwrap();
    assert_eq!(root_now.reply_count, 2);
    // Replying to a thread reply is fine; rooting a thread on one is not.
    env.send_at(ada_device, &reply(Some(in_thread.id), Some(root.id)), now())
        .await;

    let before = env.rows("outbox").await;
    let refused = [
        reply(Some(elsewhere.id), None),
        reply(Some(MessageId::new_v7()), None),
        reply(None, Some(elsewhere.id)),
        reply(None, Some(MessageId::new_v7())),
        reply(None, Some(in_thread.id)),
    ];
    for new in &refused {
        assert_refused!(
            env.store.send(ada_device, new, now()).await,
            MessageError::MessageNotFound
        );
    }

    // A member who joined after the root (behind the store's back: the trait cannot add
    // members yet, so they "joined" at the latest seq) cannot reply to it; a later message
    // is fine.
    let joined_at_seq = env.conversation(group.id).await.last_seq;
    let added = env
        .exec(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_at_seq) \
             VALUES ($1, $2, 3, $3, $4)",
            &[
                Val::Id(group.id.into()),
                Val::Id(late.into()),
                Val::Time(Some(now())),
                Val::Int(joined_at_seq),
            ],
        )
        .await;
    assert_eq!(added, 1);
    let late_device = device(late);
    for new in [reply(Some(root.id), None), reply(None, Some(root.id))] {
        assert_refused!(
            env.store.send(late_device, &new, now()).await,
            MessageError::MessageNotFound
        );
    }
    let fresh = env.say(ada_device, group.id, "fresh").await;
    env.send_at(late_device, &reply(Some(fresh.id), Some(fresh.id)), now())
        .await;

    // Deleted for everyone (behind the store's back: the trait cannot delete yet).
    let deleted = env
        .exec(
            "UPDATE messages SET deleted_at = $1, content = NULL, body = NULL \
             WHERE message_id = $2",
            &[Val::Time(Some(now())), Val::Id(fresh.id.into())],
        )
        .await;
    assert_eq!(deleted, 1);
    // A thread cannot hang off a tombstone; a reply may quote one (the proto: "a tombstone
    // is fine"), and its reply structure survives.
    assert_refused!(
        env.store
            .send(ada_device, &reply(None, Some(fresh.id)), now())
            .await,
        MessageError::MessageNotFound
    );
    let quoting = env
        .send_at(ada_device, &reply(Some(fresh.id), None), now())
        .await;
    assert_eq!(quoting.reply_to_message_id, Some(fresh.id));
    // Refusals wrote nothing (the three sends in between wrote one event each).
    assert_eq!(env.rows("outbox").await, before + 3);
}
