//! Group commit: a batch of sends is one transaction, yet each send has its own outcome, as if
//! sent alone one after another: refusals take no seq and leave no trace, a key repeated in
//! the batch answers as a retry, and the events follow the batch's order.

use echo_ids::MessageId;
use echo_message::error::MessageError;
use echo_message::store::{SendRequest, Sent};
use pb::conversation_event::Kind as Event;

use crate::common::*;
use echo_proto::echo::message::v1 as pb;

/// Seven sends in one batch across two conversations: new ones take consecutive seqs in batch
/// order; one by a non-member, a retry of an earlier key with another payload, and a reply to
/// an unknown message are refused alone; a repeat of a key sent earlier in the same batch
/// answers that message. Counters move once per stored message, for every member but its
/// sender, and mentions count for the mentioned members but the sender.
pub async fn a_batch_stores_each_send_as_if_alone(env: &Env) {
    let [ada, bob, cy, eve] = env.users().await;
    let (ada_device, bob_device, eve_device) = (device(ada), device(bob), device(eve));
    let ours = env.group(ada_device, &[bob, cy]).await;
    let theirs = env.group(eve_device, &[ada]).await;
    let counters = async |user| {
        let member = env.member(ours.id, user).await;
        (member.unread_count, member.mention_count)
    };
    let before = [counters(ada).await, counters(bob).await, counters(cy).await];

    let mut first = text_message(ours.id, "first");
    first.mentioned = vec![cy, ada, bob];
    let intruding = text_message(ours.id, "eve is no member");
    let mut reused = text_message(ours.id, "another payload");
    reused
        .client_message_id
        .clone_from(&first.client_message_id);
    let mut second = text_message(ours.id, "second, from bob");
    second.mentioned = vec![cy];
    let mut dangling = text_message(ours.id, "reply to nothing");
    dangling.reply_to_message_id = Some(MessageId::new_v7());
    let elsewhere = text_message(theirs.id, "in the other group");
    let at = now();
    let request = |actor, new| SendRequest {
        actor,
        new,
        at,
        trace_parent: None,
    };
    let outcomes = env
        .store
        .send_batch(&[
            request(ada_device, &first),
            request(eve_device, &intruding),
            request(ada_device, &reused),
            request(bob_device, &second),
            request(ada_device, &first),
            request(ada_device, &dangling),
            request(ada_device, &elsewhere),
        ])
        .await
        .expect("the batch commits");

    let created = |outcome: &Result<Sent, MessageError>| match outcome {
        Ok(Sent::Created(message)) => message.clone(),
        other => panic!("expected a new message, got {other:?}"),
    };
    let (first_sent, second_sent) = (created(&outcomes[0]), created(&outcomes[3]));
    assert_eq!(first_sent.seq, ours.last_seq + 1);
    assert_eq!(
        second_sent.seq,
        ours.last_seq + 2,
        "consecutive, refusals take no seq"
    );
    assert!(matches!(
        outcomes[1],
        Err(MessageError::ConversationNotFound)
    ));
    assert!(matches!(
        outcomes[2],
        Err(MessageError::IdempotencyKeyReused)
    ));
    assert!(
        matches!(&outcomes[4], Ok(Sent::Repeated(m)) if *m == first_sent),
        "{:?}",
        outcomes[4]
    );
    assert!(matches!(outcomes[5], Err(MessageError::MessageNotFound)));
    assert_eq!(created(&outcomes[6]).seq, theirs.last_seq + 1);

    let after = env.conversation(ours.id).await;
    assert_eq!(after.last_seq, ours.last_seq + 2);
    assert_eq!(after.last_message_id, Some(second_sent.id));
    let moved = |(unread, mentions): (i32, i32), (unread_before, mentions_before): (i32, i32)| {
        (unread - unread_before, mentions - mentions_before)
    };
    assert_eq!(
        [
            moved(counters(ada).await, before[0]),
            moved(counters(bob).await, before[1]),
            moved(counters(cy).await, before[2]),
        ],
        [(1, 0), (1, 1), (2, 2)],
        "(unread, mentions) added for ada, bob and cy"
    );
    let created_events: Vec<(i64, String)> = env
        .events_of(ours.id)
        .await
        .into_iter()
        .filter_map(|event| match event.kind {
            Some(Event::MessageCreated(created)) => Some((event.seq, created.message?.message_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        created_events,
        vec![
            (first_sent.seq, first_sent.id.to_string()),
            (second_sent.seq, second_sent.id.to_string()),
        ]
    );
}

/// A batch in which every send is refused stores nothing and takes no seq.
pub async fn a_batch_of_refusals_stores_nothing(env: &Env) {
    let [ada, bob, eve] = env.users().await;
    let group = env.group(device(ada), &[bob]).await;
    let at = now();
    let (one, two) = (text_message(group.id, "no"), text_message(group.id, "nope"));
    let outcomes = env
        .store
        .send_batch(&[
            SendRequest {
                actor: device(eve),
                new: &one,
                at,
                trace_parent: None,
            },
            SendRequest {
                actor: device(eve),
                new: &two,
                at,
                trace_parent: None,
            },
        ])
        .await
        .expect("the batch ends");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(MessageError::ConversationNotFound))),
        "{outcomes:?}"
    );
    assert_eq!(env.conversation(group.id).await.last_seq, group.last_seq);
}

/// A send that fails in the database (PostgreSQL refuses a NUL byte in text; SQLite stores
/// it) fails alone: the rest of its batch is stored, with consecutive seqs.
pub async fn a_failing_send_fails_alone(env: &Env) {
    let [ada, bob] = env.users().await;
    let group = env.group(device(ada), &[bob]).await;
    let at = now();
    let news = [
        text_message(group.id, "before"),
        text_message(group.id, "nul \0 inside"),
        text_message(group.id, "after"),
    ];
    let requests: Vec<SendRequest<'_>> = news
        .iter()
        .map(|new| SendRequest {
            actor: device(ada),
            new,
            at,
            trace_parent: None,
        })
        .collect();
    let outcomes = env
        .store
        .send_batch(&requests)
        .await
        .expect("the batch commits");
    let seq = |outcome: &Result<Sent, MessageError>| match outcome {
        Ok(Sent::Created(message)) => Some(message.seq),
        Err(MessageError::Database(_)) => None,
        other => panic!("expected a new message or a database error, got {other:?}"),
    };
    let seqs: Vec<Option<i64>> = outcomes.iter().map(seq).collect();
    let stored: Vec<i64> = seqs.iter().flatten().copied().collect();
    let first = group.last_seq + 1;
    assert!(seqs[0].is_some() && seqs[2].is_some(), "{outcomes:?}");
    let postgres = matches!(env.test_db.db, echo_store::Database::Postgres(_));
    assert_eq!(seqs[1].is_none(), postgres, "{outcomes:?}");
    assert_eq!(
        stored,
        (first..first + stored.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(
        env.conversation(group.id).await.last_seq,
        group.last_seq + stored.len() as i64
    );
}

conformance!(
    a_batch_stores_each_send_as_if_alone,
    a_batch_of_refusals_stores_nothing,
    a_failing_send_fails_alone
);
