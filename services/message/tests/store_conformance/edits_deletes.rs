//! Deletion for one user and for everyone: what each erases, the counters of every kind of
//! member around it, the conversation's last message and thread counts, who may do it, and
//! races between deletions.
//! Over 400 lines as one piece: one operation (deletion) with all its cases.

use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::store::Kind;
use echo_proto::echo::message::v1 as pb;
use pb::conversation_event::Kind as Event;

use super::{WINDOW, counters, edit_of, futures_join, mentioning, read_up_to, rows_of, stored};
use crate::common::*;

/// Deletion for one user: a hidden row, their counters corrected once (unread and mention
/// only when it was unread for them), one MessageDeletedForMe with the counters after; again:
/// nothing; other members untouched.
pub async fn delete_for_me_hides_and_counts(env: &Env) {
    let [owner, ada, bob, outsider] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada, bob]).await;
    let first = env
        .send_at(owner_device, &mentioning(group.id, "@ada", &[ada]), now())
        .await;
    let second = env.say(owner_device, group.id, "two").await;
    assert_eq!(counters(env, group.id, ada).await, (2, 1));
    let user_events = env.user_events().await.len();

    let at = now();
    assert!(
        env.store
            .delete_for_me(ada_device, group.id, first.id, at)
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, ada).await, (1, 0));
    assert_eq!(
        counters(env, group.id, bob).await,
        (2, 0),
        "others untouched"
    );
    let hidden = env
        .store
        .deleted_for(ada, &[first.id, second.id])
        .await
        .unwrap();
    assert_eq!(hidden, vec![(first.id, at)]);
    assert!(
        env.store
            .deleted_for(bob, &[first.id])
            .await
            .unwrap()
            .is_empty()
    );
    let events = env.user_events().await;
    assert_eq!(events.len(), user_events + 1);
    let event = events.last().unwrap();
    assert_eq!(event.user_id, ada.to_string());
    assert_eq!(event.actor_device_id, ada_device.device_id.to_string());
    let expected = pb::user_event::Kind::MessageDeletedForMe(pb::MessageDeletedForMe {
        conversation_id: group.id.to_string(),
        message_id: first.id.to_string(),
        unread_count: 1,
        mention_count: 0,
    });
    assert_eq!(event.kind, Some(expected));
    // Again: OK, nothing written.
    assert!(
        !env.store
            .delete_for_me(ada_device, group.id, first.id, now())
            .await
            .unwrap()
    );
    assert_eq!(env.user_events().await.len(), user_events + 1);
    assert_eq!(counters(env, group.id, ada).await, (1, 0));
    // The stored message is untouched (a deletion for one user takes no conversation seq).
    assert_eq!(stored(env, &first).await, first);

    // A message already read, or one's own: hidden, counters unchanged.
    let third = env.say(owner_device, group.id, "three").await;
    read_up_to(env, group.id, bob, third.seq).await;
    let bob_device = device(bob);
    assert!(
        env.store
            .delete_for_me(bob_device, group.id, second.id, now())
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, bob).await, (0, 0));
    assert!(
        env.store
            .delete_for_me(owner_device, group.id, third.id, now())
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, owner).await, (0, 0));
    let event = env.user_events().await.pop().unwrap();
    assert_eq!(event.user_id, owner.to_string());
    // Later, deleting for everyone does not count Ada's hidden message a second time.
    assert_eq!(counters(env, group.id, ada).await, (2, 0));
    assert!(
        env.store
            .delete_for_everyone(owner_device, group.id, first.id, now())
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, ada).await, (2, 0));
    // A tombstone may be hidden too (nothing to count).
    assert!(
        env.store
            .delete_for_me(bob_device, group.id, first.id, now())
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, bob).await, (0, 0));

    assert_refused!(
        env.store
            .delete_for_me(device(outsider), group.id, first.id, now())
            .await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store
            .delete_for_me(ada_device, ConversationId::new_v7(), first.id, now())
            .await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        env.store
            .delete_for_me(ada_device, group.id, MessageId::new_v7(), now())
            .await,
        MessageError::MessageNotFound
    );
    let elsewhere = env.group(owner_device, &[]).await;
    let foreign = env.say(owner_device, elsewhere.id, "elsewhere").await;
    assert_refused!(
        env.store
            .delete_for_me(owner_device, group.id, foreign.id, now())
            .await,
        MessageError::MessageNotFound
    );
}

/// A reaction and a pin on `message`, written behind the store's back.
pub async fn react_and_pin(
    env: &Env,
    conversation: ConversationId,
    message: MessageId,
    user: UserId,
) {
    env.exec(
        "INSERT INTO reactions (message_id, user_id, emoji, conversation_id, created_at) \
         VALUES ($1, $2, 'x', $3, $4)",
        &[
            Val::Id(message.into()),
            Val::Id(user.into()),
            Val::Id(conversation.into()),
            Val::Time(Some(now())),
        ],
    )
    .await;
    env.exec(
        "INSERT INTO pins (message_id, conversation_id, pinned_by, pinned_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            Val::Id(message.into()),
            Val::Id(conversation.into()),
            Val::Id(user.into()),
            Val::Time(Some(now())),
        ],
    )
    .await;
}

/// The content goes (row, history, mentions, reactions, pin); every member for whom the
/// message was unread has it counted out once (mention too), nobody else; the thread root and
/// the conversation's last message follow; one MessageDeleted; again: nothing.
pub async fn delete_for_everyone_erases_and_counts(env: &Env) {
    let [owner, ada, bob, cy, dan] = env.users().await;
    let owner_device = device(owner);
    let ada_device = device(ada);
    let group = env.group(owner_device, &[ada, bob, cy, dan]).await;
    let earlier = env.say(owner_device, group.id, "earlier").await;
    let new = mentioning(group.id, "@bob @cy @dan", &[bob, cy, dan]);
    let target = env.send_at(ada_device, &new, now()).await;
    read_up_to(env, group.id, bob, target.seq).await;
    assert!(
        env.store
            .delete_for_me(device(dan), group.id, target.id, now())
            .await
            .unwrap()
    );
    let edit = edit_of(&target, "@bob @cy @dan!", &[bob, cy, dan]);
    env.store
        .edit(ada_device, &edit, now(), WINDOW)
        .await
        .unwrap();
    react_and_pin(env, group.id, target.id, owner).await;
    assert_eq!(counters(env, group.id, owner).await, (1, 0));
    // Ada counts Owner's earlier message, never her own (sending reads nothing).
    assert_eq!(counters(env, group.id, ada).await, (1, 0));
    assert_eq!(counters(env, group.id, bob).await, (0, 0));
    assert_eq!(counters(env, group.id, cy).await, (2, 1));
    assert_eq!(counters(env, group.id, dan).await, (1, 0));
    let before = env.conversation(group.id).await;

    let at = now();
    assert!(
        env.store
            .delete_for_everyone(owner_device, group.id, target.id, at)
            .await
            .unwrap()
    );
    assert_eq!(counters(env, group.id, owner).await, (0, 0));
    assert_eq!(counters(env, group.id, ada).await, (1, 0), "her own");
    assert_eq!(counters(env, group.id, bob).await, (0, 0), "had read it");
    assert_eq!(counters(env, group.id, cy).await, (1, 0));
    assert_eq!(counters(env, group.id, dan).await, (1, 0), "had hidden it");
    let erased = stored(env, &target).await;
    assert_eq!((erased.content, erased.deleted_at), (None, Some(at)));
    assert_eq!((erased.seq, erased.sender_id), (target.seq, ada));
    let id = target.id.to_string();
    let blank = "SELECT count(*) FROM messages \
                 WHERE CAST(message_id AS TEXT) = $1 AND body IS NULL AND content IS NULL";
    assert_eq!(env.count(blank, std::slice::from_ref(&id)).await, 1);
    for table in ["mentions", "reactions", "pins", "message_edits"] {
        assert_eq!(rows_of(env, table, target.id).await, 0, "{table}");
    }
    assert_eq!(rows_of(env, "hidden_messages", target.id).await, 1);
    assert!(
        env.store
            .edit_history(group.id, target.id)
            .await
            .unwrap()
            .is_empty()
    );
    let after = env.conversation(group.id).await;
    assert_eq!(after.last_seq, before.last_seq + 1);
    assert_eq!(
        after.last_activity_at, before.last_activity_at,
        "no activity"
    );
    assert_eq!(after.last_message_id, Some(earlier.id));
    let event = env.events_of(group.id).await.pop().unwrap();
    assert_eq!(
        (event.seq, event.actor_user_id.as_str()),
        (after.last_seq, owner.to_string().as_str())
    );
    let expected = Event::MessageDeleted(pb::MessageDeleted {
        message_id: id,
        thread_root_message_id: String::new(),
    });
    assert_eq!(kind(&event), &expected);
    // Again (by anyone allowed): OK, nothing written.
    assert!(
        !env.store
            .delete_for_everyone(ada_device, group.id, target.id, now())
            .await
            .unwrap()
    );
    assert_eq!(env.conversation(group.id).await.last_seq, after.last_seq);
    assert_eq!(counters(env, group.id, cy).await, (1, 0));

    // A thread reply: its root's reply_count drops and the event names the root.
    let root = env.say(owner_device, group.id, "root").await;
    let mut reply = text_message(group.id, "reply");
    reply.thread_root_message_id = Some(root.id);
    let reply = env.send_at(ada_device, &reply, now()).await;
    assert_eq!(stored(env, &root).await.reply_count, 1);
    assert_eq!(counters(env, group.id, cy).await, (3, 0));
    assert!(
        env.store
            .delete_for_everyone(ada_device, group.id, reply.id, now())
            .await
            .unwrap()
    );
    assert_eq!(stored(env, &root).await.reply_count, 0);
    assert_eq!(counters(env, group.id, cy).await, (2, 0));
    assert_eq!(counters(env, group.id, owner).await, (0, 0));
    let event = env.events_of(group.id).await.pop().unwrap();
    let Event::MessageDeleted(deleted) = kind(&event) else {
        panic!("expected MessageDeleted, got {event:?}");
    };
    assert_eq!(deleted.thread_root_message_id, root.id.to_string());
    assert_eq!(
        env.conversation(group.id).await.last_message_id,
        Some(root.id)
    );
    // Deleting everything leaves no last message.
    for message in [&root, &earlier] {
        let deleted = env
            .store
            .delete_for_everyone(owner_device, group.id, message.id, now());
        assert!(deleted.await.unwrap());
    }
    assert_eq!(env.conversation(group.id).await.last_message_id, None);
    assert_eq!(counters(env, group.id, cy).await, (0, 0));
}

/// The sender, or an OWNER/ADMIN of a GROUP or CHANNEL; in a DIRECT conversation only the
/// sender. Non-members and unknown messages are refused before roles.
pub async fn delete_for_everyone_permissions(env: &Env) {
    let [owner, admin, ada, bob, outsider] = env.users().await;
    let (owner_device, admin_device) = (device(owner), device(admin));
    let (ada_device, bob_device) = (device(ada), device(bob));
    let group = env.group(owner_device, &[admin, ada, bob]).await;
    env.exec(
        "UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3",
        &[Val::Int(2), Val::Id(group.id.into()), Val::Id(admin.into())],
    )
    .await;
    let delete = |actor, conversation, id| async move {
        env.store
            .delete_for_everyone(actor, conversation, id, now())
            .await
    };
    let adas = env.say(ada_device, group.id, "ada's").await;
    let last_seq = env.conversation(group.id).await.last_seq;
    assert!(matches!(
        delete(bob_device, group.id, adas.id).await,
        Err(MessageError::NotAllowed)
    ));
    assert!(matches!(
        delete(device(outsider), group.id, adas.id).await,
        Err(MessageError::ConversationNotFound)
    ));
    assert!(matches!(
        delete(bob_device, group.id, MessageId::new_v7()).await,
        Err(MessageError::MessageNotFound)
    ));
    assert_eq!(env.conversation(group.id).await.last_seq, last_seq);
    assert!(delete(admin_device, group.id, adas.id).await.unwrap());
    // A member still may not "delete again" what they could not delete.
    assert!(matches!(
        delete(bob_device, group.id, adas.id).await,
        Err(MessageError::NotAllowed)
    ));
    let owners = env.say(owner_device, group.id, "owner's").await;
    assert!(delete(admin_device, group.id, owners.id).await.unwrap());
    let bobs = env.say(bob_device, group.id, "bob's").await;
    assert!(delete(bob_device, group.id, bobs.id).await.unwrap());
    let admins = env.say(admin_device, group.id, "admin's").await;
    assert!(delete(owner_device, group.id, admins.id).await.unwrap());
    // A member who left.
    let left = env.say(ada_device, group.id, "mine").await;
    env.exec(
        "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3",
        &[
            Val::Int(left.seq),
            Val::Id(group.id.into()),
            Val::Id(ada.into()),
        ],
    )
    .await;
    assert!(matches!(
        delete(ada_device, group.id, left.id).await,
        Err(MessageError::ConversationNotFound)
    ));

    let channel = env
        .group_at(Kind::Channel, owner_device, &[ada], now())
        .await;
    let post = env.say(owner_device, channel.id, "news").await;
    assert!(matches!(
        delete(ada_device, channel.id, post.id).await,
        Err(MessageError::NotAllowed)
    ));
    assert!(delete(owner_device, channel.id, post.id).await.unwrap());

    let chat = env.direct(owner_device, bob).await;
    let said = env.say(owner_device, chat.id, "hello").await;
    assert!(matches!(
        delete(bob_device, chat.id, said.id).await,
        Err(MessageError::NotAllowed)
    ));
    assert!(delete(owner_device, chat.id, said.id).await.unwrap());
    assert_eq!(counters(env, chat.id, bob).await, (0, 0));
}

/// Deletions for one user racing a deletion for everyone: each member's counters drop once.
pub async fn concurrent_deletions_count_once(env: &Env) {
    let [owner, ada, bob] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, bob]).await;
    for round in 0..6 {
        let new = mentioning(group.id, &format!("@ada {round}"), &[ada]);
        let message = env.send_at(owner_device, &new, now()).await;
        assert_eq!(counters(env, group.id, ada).await, (1, 1));
        assert_eq!(counters(env, group.id, bob).await, (1, 0));
        let deletions =
            [(ada, false), (owner, true), (bob, false), (ada, true)].map(|(user, everyone)| {
                let store = env.store.clone();
                let (conversation, id) = (group.id, message.id);
                tokio::spawn(async move {
                    let actor = device(user);
                    if everyone {
                        store
                            .delete_for_everyone(actor, conversation, id, now())
                            .await
                    } else {
                        store.delete_for_me(actor, conversation, id, now()).await
                    }
                })
            });
        for outcome in futures_join(deletions.into_iter()).await {
            match outcome {
                Ok(_) | Err(MessageError::NotAllowed) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(counters(env, group.id, ada).await, (0, 0), "round {round}");
        assert_eq!(counters(env, group.id, bob).await, (0, 0), "round {round}");
    }
}
