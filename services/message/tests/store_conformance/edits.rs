//! Edits and deletions: the edit history, mentions and counters moved by an edit, deletion for
//! one user and for everyone (exact counters of several members around it), every refusal in
//! the contract's order, idempotent repeats, concurrency, and the requirement that a
//! deletion for everyone leaves no trace of the content in any table.
//! Over 400 lines as one piece: the edit cases share the mention and counter helpers defined
//! here, which the deletion and mention files reuse.

use chrono::Duration;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_message::error::MessageError;
use echo_message::store::{
    Actor, Edit, EditVersion, Edited, MAX_EDITS, Member, Message, NewMessage,
};
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::{Mention, MessageContent};
use pb::conversation_event::Kind as Event;

use crate::common::*;

/// The edit window the service runs with.
const WINDOW: Duration = Duration::hours(48);

/// A text message mentioning `users` (each at offset 0, which the store does not check).
pub fn mentioning(conversation: ConversationId, text: &str, users: &[UserId]) -> NewMessage {
    let mut new = new_message(conversation, content(text, users));
    new.mentioned = users.to_vec();
    new
}

/// Content with `text` mentioning `users`.
pub fn content(text: &str, users: &[UserId]) -> MessageContent {
    MessageContent {
        text: text.to_owned(),
        mentions: users
            .iter()
            .map(|user| Mention {
                user_id: user.to_string(),
                offset: 0,
                length: 1,
            })
            .collect(),
        ..MessageContent::default()
    }
}

/// An edit of `message` (as it is now) to `text` mentioning `users`.
pub fn edit_of(message: &Message, text: &str, users: &[UserId]) -> Edit {
    Edit {
        conversation_id: message.conversation_id,
        message_id: message.id,
        base_edit_count: message.edit_count,
        content: content(text, users),
        mentioned: users.to_vec(),
    }
}

/// `user`'s (unread_count, mention_count) in `conversation`.
pub async fn counters(env: &Env, conversation: ConversationId, user: UserId) -> (i32, i32) {
    let Member {
        unread_count,
        mention_count,
        ..
    } = env.member(conversation, user).await;
    (unread_count, mention_count)
}

/// `user` has read everything up to `seq` (the latest message), as MarkRead would leave it.
pub async fn read_up_to(env: &Env, conversation: ConversationId, user: UserId, seq: i64) {
    env.exec(
        "UPDATE members SET last_read_seq = $1, unread_count = 0, mention_count = 0 \
         WHERE conversation_id = $2 AND user_id = $3",
        &[
            Val::Int(seq),
            Val::Id(conversation.into()),
            Val::Id(user.into()),
        ],
    )
    .await;
}

/// Rows of `table` about message `id`.
pub async fn rows_of(env: &Env, table: &str, id: MessageId) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE CAST(message_id AS TEXT) = $1");
    env.count(&sql, &[id.to_string()]).await
}

/// The stored message.
pub async fn stored(env: &Env, message: &Message) -> Message {
    env.store
        .message(message.conversation_id, message.id)
        .await
        .expect("message")
        .expect("message exists")
}

/// An edit replaces the content, appends the replaced version to the history, moves the
/// mention rows and the mention counters of members who have not read the message yet, takes
/// a seq without activity and emits MessageEdited without content; an edit to the same content
/// or from a stale base writes nothing.
pub async fn edit_keeps_history_and_moves_mentions(env: &Env) {
    let [owner, ada, bob, cy] = env.users().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[ada, bob, cy]).await;
    let sent_at = now() - Duration::minutes(10);
    let new = mentioning(group.id, "hi @ada", &[ada]);
    let first = env.send_at(owner_device, &new, sent_at).await;
    read_up_to(env, group.id, bob, first.seq).await;
    assert_eq!(counters(env, group.id, ada).await, (1, 1));
    assert_eq!(counters(env, group.id, cy).await, (1, 0));
    let before = env.conversation(group.id).await;

    let edit_at = sent_at + Duration::minutes(1);
    let edit = edit_of(&first, "hi @bob @cy", &[bob, cy]);
    let outcome = env.store.edit(owner_device, &edit, edit_at, WINDOW).await;
    let Ok(Edited::Changed {
        message,
        newly_mentioned,
    }) = outcome
    else {
        panic!("expected an edit, got {outcome:?}");
    };
    assert_eq!(newly_mentioned, vec![bob, cy]);
    assert_eq!((message.id, message.seq), (first.id, first.seq));
    assert_eq!((message.edit_count, message.edited_at), (1, Some(edit_at)));
    assert_eq!(message.content.as_ref(), Some(&edit.content));
    assert_eq!(message.created_at, first.created_at);
    assert_eq!(stored(env, &first).await, message);
    // Ada is no longer mentioned, Cy now is; Bob had read it, so his count stays.
    assert_eq!(counters(env, group.id, ada).await, (1, 0));
    assert_eq!(counters(env, group.id, bob).await, (0, 0));
    assert_eq!(counters(env, group.id, cy).await, (1, 1));
    assert_eq!(counters(env, group.id, owner).await, (0, 0));
    let after = env.conversation(group.id).await;
    assert_eq!(after.last_seq, before.last_seq + 1);
    assert_eq!(
        after.last_activity_at, before.last_activity_at,
        "no activity"
    );
    assert_eq!(after.last_message_id, Some(first.id));
    assert_eq!(rows_of(env, "mentions", first.id).await, 2);
    let ada_mentioned = "SELECT count(*) FROM mentions WHERE CAST(user_id AS TEXT) = $1";
    assert_eq!(env.count(ada_mentioned, &[ada.to_string()]).await, 0);
    let body = "SELECT count(*) FROM messages WHERE body = $1";
    assert_eq!(env.count(body, &["hi @bob @cy".to_owned()]).await, 1);
    let original = EditVersion {
        version: 0,
        content: new.content.clone(),
        created_at: sent_at,
    };
    let history = env.store.edit_history(group.id, first.id).await.unwrap();
    assert_eq!(history, vec![original.clone()]);

    let events = env.events_of(group.id).await;
    let last = events.last().expect("event");
    assert_eq!(last.seq, after.last_seq);
    assert_eq!(last.actor_user_id, owner.to_string());
    let Event::MessageEdited(edited) = kind(last) else {
        panic!("expected MessageEdited, got {last:?}");
    };
    let snapshot = edited.message.as_ref().expect("message");
    assert_eq!(snapshot.message_id, first.id.to_string());
    assert_eq!((snapshot.edit_count, snapshot.content.as_ref()), (1, None));
    assert_eq!(
        edited.newly_mentioned_user_ids,
        vec![bob.to_string(), cy.to_string()]
    );

    // A second edit: version 1 (the first edit's result, at its time) joins the history.
    let second_at = edit_at + Duration::minutes(1);
    let second = edit_of(&message, "bye", &[]);
    let outcome = env
        .store
        .edit(owner_device, &second, second_at, WINDOW)
        .await;
    assert!(
        matches!(&outcome, Ok(Edited::Changed { newly_mentioned, .. }) if newly_mentioned.is_empty()),
        "{outcome:?}"
    );
    assert_eq!(counters(env, group.id, cy).await, (1, 0));
    assert_eq!(rows_of(env, "mentions", first.id).await, 0);
    let history = env.store.edit_history(group.id, first.id).await.unwrap();
    let version_1 = EditVersion {
        version: 1,
        content: edit.content.clone(),
        created_at: edit_at,
    };
    assert_eq!(history, vec![original, version_1]);

    // The same content again, or an edit computed from an older version: nothing written.
    let now_stored = stored(env, &first).await;
    assert_eq!(now_stored.edit_count, 2);
    let same = edit_of(&now_stored, "bye", &[]);
    let outcome = env.store.edit(owner_device, &same, now(), WINDOW).await;
    assert!(matches!(outcome, Ok(Edited::Unchanged(ref m)) if *m == now_stored));
    let stale = edit_of(&message, "from an old base", &[]);
    let outcome = env.store.edit(owner_device, &stale, now(), WINDOW).await;
    assert!(matches!(outcome, Ok(Edited::Stale(ref m)) if *m == now_stored));
    assert_eq!(stored(env, &first).await, now_stored);
    assert_eq!(
        env.conversation(group.id).await.last_seq,
        after.last_seq + 1
    );
    // A message never edited has no history.
    let plain = env.say(owner_device, group.id, "plain").await;
    let none = env.store.edit_history(group.id, plain.id).await.unwrap();
    assert!(none.is_empty());
}

/// Asserts `outcome` is refused with a `MessageError` matching `$pattern`.
macro_rules! assert_refused {
    ($outcome:expr, $pattern:pat) => {{
        let outcome = $outcome;
        assert!(matches!(outcome, Err($pattern)), "{outcome:?}");
    }};
}

/// Every refusal of an edit, in the contract's order, each writing nothing.
pub async fn edit_refusals(env: &Env) {
    let [owner, ada, outsider] = env.users().await;
    let (owner_device, ada_device) = (device(owner), device(ada));
    let group = env.group(owner_device, &[ada]).await;
    let sent = env.say(owner_device, group.id, "typo").await;
    let ada_message = env.say(ada_device, group.id, "ada's").await;
    let old_at = now() - Duration::hours(50);
    let old = env
        .send_at(owner_device, &text_message(group.id, "old"), old_at)
        .await;
    let capped = env.say(owner_device, group.id, "capped").await;
    env.exec(
        "UPDATE messages SET edit_count = $1 WHERE message_id = $2",
        &[Val::Int(MAX_EDITS.into()), Val::Id(capped.id.into())],
    )
    .await;
    let capped = stored(env, &capped).await;
    let hidden = env.say(owner_device, group.id, "hidden").await;
    assert!(
        env.store
            .delete_for_me(owner_device, group.id, hidden.id, now())
            .await
            .unwrap()
    );
    let gone = env.say(owner_device, group.id, "gone").await;
    let erased = env
        .store
        .delete_for_everyone(owner_device, group.id, gone.id, now())
        .await;
    assert!(erased.unwrap());
    let mine = env.say(ada_device, group.id, "before").await;
    let mentions_ada = env
        .send_at(
            owner_device,
            &mentioning(group.id, "@ada hi", &[ada]),
            now(),
        )
        .await;
    let last_seq = env.conversation(group.id).await.last_seq;
    let outbox = env.outbox().await.len();

    let try_edit =
        |actor: Actor, edit: Edit| async move { env.store.edit(actor, &edit, now(), WINDOW).await };
    let edit = |text: &str| edit_of(&sent, text, &[]);
    let elsewhere = Edit {
        conversation_id: ConversationId::new_v7(),
        ..edit("x")
    };
    assert_refused!(
        try_edit(owner_device, elsewhere).await,
        MessageError::ConversationNotFound
    );
    assert_refused!(
        try_edit(device(outsider), edit("x")).await,
        MessageError::ConversationNotFound
    );
    let unknown = Edit {
        message_id: MessageId::new_v7(),
        ..edit("x")
    };
    assert_refused!(
        try_edit(owner_device, unknown).await,
        MessageError::MessageNotFound
    );
    // Deleted for the editor alone: not found for them.
    assert_refused!(
        try_edit(owner_device, edit_of(&hidden, "x", &[])).await,
        MessageError::MessageNotFound
    );
    // Not the sender (an OWNER may delete others' messages, never edit them).
    assert_refused!(
        try_edit(owner_device, edit_of(&ada_message, "x", &[])).await,
        MessageError::NotAllowed
    );
    assert_refused!(
        try_edit(ada_device, edit("x")).await,
        MessageError::NotAllowed
    );
    assert_refused!(
        try_edit(owner_device, edit_of(&gone, "x", &[])).await,
        MessageError::MessageDeleted
    );
    // The edit window counts from the message's creation.
    let too_late = old_at + WINDOW + Duration::microseconds(1);
    assert_refused!(
        env.store
            .edit(owner_device, &edit_of(&old, "y", &[]), too_late, WINDOW)
            .await,
        MessageError::EditWindowExpired
    );
    assert_refused!(
        try_edit(owner_device, edit_of(&capped, "x", &[])).await,
        MessageError::LimitExceeded("edits")
    );
    // A message from before the editor's (re)join, and an editor who left.
    let set_member = |sql: &'static str, value: i64| async move {
        env.exec(
            sql,
            &[
                Val::Int(value),
                Val::Id(group.id.into()),
                Val::Id(ada.into()),
            ],
        )
        .await;
    };
    let rejoined =
        "UPDATE members SET joined_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3";
    set_member(rejoined, mine.seq).await;
    assert_refused!(
        try_edit(ada_device, edit_of(&mine, "x", &[])).await,
        MessageError::MessageNotFound
    );
    set_member(rejoined, 1).await;
    let left = "UPDATE members SET left_at_seq = $1 WHERE conversation_id = $2 AND user_id = $3";
    set_member(left, mine.seq).await;
    assert_refused!(
        try_edit(ada_device, edit_of(&mine, "x", &[])).await,
        MessageError::ConversationNotFound
    );
    assert_eq!(env.conversation(group.id).await.last_seq, last_seq);
    assert_eq!(env.outbox().await.len(), outbox, "refusals write nothing");

    // The window's last instant is still inside it.
    let edit = edit_of(&old, "x", &[]);
    let late = env
        .store
        .edit(owner_device, &edit, old_at + WINDOW, WINDOW)
        .await;
    assert!(matches!(late, Ok(Edited::Changed { .. })), "{late:?}");
    // Mentions kept from before may name a user who left since (see `edits_mentions.rs` for
    // whom a new mention counts).
    let kept = edit_of(&mentions_ada, "@ada bye", &[ada]);
    let outcome = env.store.edit(owner_device, &kept, now(), WINDOW).await;
    assert!(matches!(outcome, Ok(Edited::Changed { .. })), "{outcome:?}");
    // In a DIRECT conversation too, only the sender edits.
    let peer = env.user().await;
    let chat = env.direct(owner_device, peer).await;
    let said = env.say(owner_device, chat.id, "hello").await;
    assert_refused!(
        try_edit(device(peer), edit_of(&said, "x", &[])).await,
        MessageError::NotAllowed
    );
}

#[path = "edits_deletes.rs"]
pub(crate) mod deletes;
#[path = "edits_mentions.rs"]
mod mentions;
#[path = "edits_trace.rs"]
pub(crate) mod trace;
use deletes::{
    concurrent_deletions_count_once, delete_for_everyone_erases_and_counts,
    delete_for_everyone_permissions, delete_for_me_hides_and_counts,
};
use mentions::{edit_mentioning_non_members_is_kept, edit_mentions_count_only_who_can_see};
use trace::{delete_for_everyone_leaves_no_trace, retry_after_deletion_answers_the_tombstone};

/// Two devices editing from the same base: one edit is stored, the other is told it is stale
/// (and nothing of it is written).
pub async fn concurrent_edits_from_one_base(env: &Env) {
    let owner = env.user().await;
    let owner_device = device(owner);
    let group = env.group(owner_device, &[]).await;
    let sent = env.say(owner_device, group.id, "draft").await;
    let edits = (0..8).map(|i| {
        let store = env.store.clone();
        let edit = edit_of(&sent, &format!("version {i}"), &[]);
        tokio::spawn(async move { store.edit(device(owner), &edit, now(), WINDOW).await })
    });
    let mut changed = 0;
    for outcome in futures_join(edits).await {
        match outcome {
            Ok(Edited::Changed { .. }) => changed += 1,
            Ok(Edited::Stale(current)) => assert_eq!(current.edit_count, 1),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(changed, 1);
    assert_eq!(stored(env, &sent).await.edit_count, 1);
    let history = env.store.edit_history(group.id, sent.id).await.unwrap();
    assert_eq!(history.len(), 1);
}

/// Awaits every task.
pub async fn futures_join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let tasks: Vec<_> = tasks.collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    outcomes
}

conformance!(
    edit_keeps_history_and_moves_mentions,
    edit_refusals,
    concurrent_edits_from_one_base,
    delete_for_me_hides_and_counts,
    delete_for_everyone_erases_and_counts,
    delete_for_everyone_permissions,
    concurrent_deletions_count_once,
    delete_for_everyone_leaves_no_trace,
    retry_after_deletion_answers_the_tombstone,
    edit_mentioning_non_members_is_kept,
    edit_mentions_count_only_who_can_see,
);
