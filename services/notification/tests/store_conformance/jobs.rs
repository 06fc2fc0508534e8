//! The push queue: a job is written once per (message, token, kind), claimed by one claimant
//! at a time under a lease, not before it is due, again after its lease ends (an instance that
//! died after the provider's 2xx), and settled for good.
//!
//! One piece: the conformance half of `src/jobs.rs`, a case per rule of the queue's life (written
//! once, claimed under a lease, released, settled only by its holder, badge spacing, the storm
//! counts read from sent jobs) built on the same `alert`, `insert` and `settle` helpers; split, a
//! rule changed in `jobs.rs` would have its cases in two files to find.

use std::collections::HashSet;

use chrono::Duration;
use echo_ids::{ConversationId, MessageId, UserId};
use echo_notification::jobs::{self, JobKind, NewJob, Phase, Settled};
use uuid::Uuid;

use crate::common::{Env, now};

fn alert(
    token: Uuid,
    user: UserId,
    message: MessageId,
    due: chrono::DateTime<chrono::Utc>,
) -> NewJob {
    NewJob {
        message_id: Some(message),
        token,
        user_id: user,
        kind: JobKind::Alert,
        conversation_id: Some(ConversationId::new_v7()),
        seq: Some(7),
        due,
        expires: due + Duration::minutes(10),
        bulk: false,
    }
}

async fn settle(db: &echo_store::Database, job: &jobs::Job, settled: &Settled) {
    let mut tx = db.begin().await.unwrap();
    jobs::settle(&mut tx, &[(job, settled)]).await.unwrap();
    tx.commit().await.unwrap();
}

/// Inserts an alert to a new user and token, due a second before `t0`.
async fn one_due_alert(env: &Env, t0: chrono::DateTime<chrono::Utc>) {
    let job = alert(
        Uuid::now_v7(),
        UserId::new_v7(),
        MessageId::new_v7(),
        t0 - Duration::seconds(1),
    );
    assert!(insert(env, &job).await);
}

async fn insert(env: &Env, job: &NewJob) -> bool {
    let mut tx = env.store.database().begin().await.unwrap();
    let written = jobs::insert(&mut tx, job, now()).await.unwrap();
    tx.commit().await.unwrap();
    written
}

pub async fn a_job_is_written_once_per_message_token_and_kind(env: &Env) {
    let (token, user, message) = (Uuid::now_v7(), UserId::new_v7(), MessageId::new_v7());
    let job = alert(token, user, message, now());
    assert!(insert(env, &job).await);
    assert!(
        !insert(env, &job).await,
        "a redelivered event writes nothing"
    );
    let dismiss = NewJob {
        kind: JobKind::Dismiss,
        ..job.clone()
    };
    assert!(insert(env, &dismiss).await, "another kind is another job");
    // Badge jobs (no message) coalesce while one is pending for the token.
    let badge = NewJob {
        message_id: None,
        kind: JobKind::Badge,
        conversation_id: None,
        seq: None,
        ..job
    };
    assert!(insert(env, &badge).await);
    assert!(
        !insert(env, &badge).await,
        "one pending badge job per token"
    );
    assert_eq!(env.jobs_of(token).await, 3);
}

/// The pipeline writes a message's jobs as multi-row INSERTs (several past 1,000 tokens): a
/// redelivered event writes none again, and only the new ones of a mixed batch are written.
pub async fn message_jobs_in_a_batch_are_written_once(env: &Env) {
    let message = MessageId::new_v7();
    let batch: Vec<NewJob> = (0..1_500)
        .map(|_| alert(Uuid::now_v7(), UserId::new_v7(), message, now()))
        .collect();
    let write = |batch: Vec<NewJob>| async move {
        let mut tx = env.store.database().begin().await.unwrap();
        let written = jobs::insert_about_messages(&mut tx, &batch, now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        written
    };
    assert_eq!(write(batch.clone()).await, 1_500);
    assert_eq!(
        write(batch[..10].to_vec()).await,
        0,
        "a redelivered event writes nothing"
    );
    let mut mixed = batch[..3].to_vec();
    mixed.push(alert(Uuid::now_v7(), UserId::new_v7(), message, now()));
    assert_eq!(write(mixed).await, 1);
    let far = now() + Duration::minutes(1);
    let claimed = jobs::claim(env.store.database(), far, far, 2_000)
        .await
        .unwrap();
    let ours = claimed
        .iter()
        .filter(|j| j.message_id == Some(message))
        .count();
    assert_eq!(ours, 1_501);
    assert!(
        claimed
            .iter()
            .all(|j| j.phase == Phase::New && j.attempts == 0)
    );
}

/// A channel fan-out's jobs (bulk) wait while any other job is due, even one due later; they
/// fill what room a claim has left.
pub async fn urgent_jobs_are_claimed_before_bulk_ones(env: &Env) {
    let db = env.store.database();
    let t0 = now();
    let bulk: Vec<NewJob> = (0..5)
        .map(|_| NewJob {
            bulk: true,
            ..alert(Uuid::now_v7(), UserId::new_v7(), MessageId::new_v7(), t0)
        })
        .collect();
    for job in &bulk {
        assert!(insert(env, job).await);
    }
    let later = t0 + Duration::seconds(1);
    let direct: Vec<NewJob> = (0..3)
        .map(|_| alert(Uuid::now_v7(), UserId::new_v7(), MessageId::new_v7(), later))
        .collect();
    for job in &direct {
        assert!(insert(env, job).await);
    }
    let lease = later + Duration::seconds(30);
    let first = jobs::claim(db, later, lease, 4).await.unwrap();
    let users =
        |claimed: &[jobs::Job]| -> HashSet<UserId> { claimed.iter().map(|j| j.user_id).collect() };
    let direct_users: HashSet<UserId> = direct.iter().map(|j| j.user_id).collect();
    let bulk_users: HashSet<UserId> = bulk.iter().map(|j| j.user_id).collect();
    assert_eq!(users(&first[..3]), direct_users, "the urgent jobs first");
    assert!(
        bulk_users.contains(&first[3].user_id),
        "then bulk ones in the room left"
    );
    let rest = jobs::claim(db, later, lease, 10).await.unwrap();
    let mut all_bulk = users(&rest);
    all_bulk.insert(first[3].user_id);
    assert_eq!(rest.len(), 4);
    assert_eq!(all_bulk, bulk_users);
}

pub async fn claims_take_due_jobs_once_under_a_lease(env: &Env) {
    let (token, user) = (Uuid::now_v7(), UserId::new_v7());
    let t0 = now();
    let due = alert(token, user, MessageId::new_v7(), t0 - Duration::seconds(1));
    let later = alert(token, user, MessageId::new_v7(), t0 + Duration::minutes(5));
    insert(env, &due).await;
    insert(env, &later).await;
    let db = env.store.database();
    let lease = t0 + Duration::seconds(30);

    let claimed = jobs::claim(db, t0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the due job");
    assert_eq!(claimed[0].message_id, due.message_id);
    assert_eq!(claimed[0].phase, Phase::New);
    assert!(
        jobs::claim(db, t0, lease, 10).await.unwrap().is_empty(),
        "a leased job is not claimed twice"
    );

    // The claimant died after sending (no settle): once the lease ends the job is claimed
    // again, as it was (same id: the resend carries the same dedupe key).
    let after_lease = lease + Duration::milliseconds(1);
    let again = jobs::claim(db, after_lease, after_lease + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id);

    // A recheck: due later, in the next phase, not an attempt.
    let recheck_at = after_lease + Duration::seconds(10);
    let settled = Settled::Later {
        due: recheck_at,
        phase: Phase::Recheck,
        failed: false,
        error: None,
    };
    settle(db, &again[0], &settled).await;
    assert!(
        jobs::claim(db, after_lease, after_lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "not before its new due time"
    );
    let rechecked = jobs::claim(db, recheck_at, recheck_at + Duration::seconds(30), 1)
        .await
        .unwrap();
    assert_eq!(rechecked.len(), 1);
    assert_eq!(rechecked[0].phase, Phase::Recheck);
    assert_eq!(rechecked[0].attempts, 0);

    // A transient failure counts; sent is final.
    let retry = Settled::Later {
        due: recheck_at,
        phase: Phase::Send,
        failed: true,
        error: Some("503".into()),
    };
    settle(db, &rechecked[0], &retry).await;
    let retried = jobs::claim(db, recheck_at, recheck_at + Duration::seconds(30), 1)
        .await
        .unwrap();
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].phase, Phase::Send);
    settle(db, &retried[0], &Settled::Sent(recheck_at)).await;
    let far = t0 + Duration::hours(1);
    let rest = jobs::claim(db, far, far, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "only the later job is left");
    assert_eq!(rest[0].message_id, later.message_id);
}

/// A batch is settled in one call, jobs settled alike in one statement: each job ends as
/// decided (sent, skipped with its reason, or due again later as a failed attempt).
pub async fn a_batch_settles_each_job_as_decided(env: &Env) {
    let db = env.store.database();
    let (token, user) = (Uuid::now_v7(), UserId::new_v7());
    let t0 = now();
    for _ in 0..4 {
        insert(
            env,
            &alert(token, user, MessageId::new_v7(), t0 - Duration::seconds(1)),
        )
        .await;
    }
    let claimed = jobs::claim(db, t0, t0 + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let (sent, skipped) = (Settled::Sent(t0), Settled::Skipped("read".into()));
    let later = Settled::Later {
        due: t0 + Duration::minutes(1),
        phase: Phase::Send,
        failed: true,
        error: Some("503".into()),
    };
    let mut tx = db.begin().await.unwrap();
    jobs::settle(
        &mut tx,
        &[
            (&claimed[0], &sent),
            (&claimed[1], &skipped),
            (&claimed[2], &sent),
            (&claimed[3], &later),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let sent_count = env
        .count(
            "SELECT count(*) FROM push_jobs WHERE push_token_id = $1 AND sent_at_ms IS NOT NULL",
            token,
        )
        .await;
    assert_eq!(sent_count, 2);
    let read = env
        .count(
            "SELECT count(*) FROM push_jobs WHERE push_token_id = $1 AND last_error = 'read' \
             AND sent_at_ms IS NULL",
            token,
        )
        .await;
    assert_eq!(read, 1);
    let far = t0 + Duration::minutes(2);
    let again = jobs::claim(db, far, far, 10).await.unwrap();
    assert_eq!(again.len(), 1, "only the job to try again is pending");
    assert_eq!(again[0].id, claimed[3].id);
    assert_eq!(again[0].attempts, 1);
}

/// A claim that cannot handle its batch (its reads failed) gives the jobs back, due again
/// when it says, instead of holding them until the lease ends; it releases only what it still
/// holds, never a job another claim took after its lease ran out.
pub async fn a_released_claim_is_due_again_without_waiting_for_its_lease(env: &Env) {
    let db = env.store.database();
    let t0 = now();
    one_due_alert(env, t0).await;
    let lease = t0 + Duration::seconds(30);
    let claimed = jobs::claim(db, t0, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);

    let soon = t0 + Duration::seconds(1);
    let other_lease = lease + Duration::milliseconds(1);
    assert_eq!(
        jobs::release(db, &claimed, other_lease, soon)
            .await
            .unwrap(),
        0,
        "a claim releases only its own lease"
    );
    assert_eq!(jobs::release(db, &claimed, lease, soon).await.unwrap(), 1);
    assert!(
        jobs::claim(db, t0, t0 + Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "not before the due time it was given back with"
    );
    let lease2 = soon + Duration::seconds(30);
    let again = jobs::claim(db, soon, lease2, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due again long before the first lease ends");
    assert_eq!(again[0].id, claimed[0].id);
    assert_eq!(again[0].attempts, 0, "a release is not a failed attempt");

    // The second claim's lease ran out and a third claim took the job: the second, late,
    // cannot give it back.
    let after = lease2 + Duration::milliseconds(1);
    let third = jobs::claim(db, after, after + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(jobs::release(db, &again, lease2, after).await.unwrap(), 0);
    assert!(
        jobs::claim(db, after, after + Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "still the third claim's"
    );
    assert_eq!(jobs::release(db, &[], lease2, after).await.unwrap(), 0);
}

pub async fn concurrent_claims_never_share_a_job(env: &Env) {
    let (token, user) = (Uuid::now_v7(), UserId::new_v7());
    let t0 = now();
    for _ in 0..40 {
        insert(env, &alert(token, user, MessageId::new_v7(), t0)).await;
    }
    let db = env.store.database().clone();
    let claimants = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = jobs::claim(&db, t0, t0 + Duration::seconds(30), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimant in claimants {
        all.extend(claimant.await.unwrap());
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), claimed, "a job was claimed twice");
    assert_eq!(claimed, 40);
}

/// Storm damping's counts (spec §B5) as the dispatcher reads them for a claimed batch: an
/// alert in the same conversation within the window; alerts to the user in the last minute,
/// counted up to the cap; nothing older, nothing unsent, nobody else's.
pub async fn storm_counts_see_recent_alerts_up_to_the_cap(env: &Env) {
    use echo_notification::dispatch::load::{self, Damping};
    let db = env.store.database();
    let (token, ada, bob) = (Uuid::now_v7(), UserId::new_v7(), UserId::new_v7());
    let t0 = now();
    // Ada's history: 34 alerts in as many conversations 30 s ago, one in `busy` 5 s ago, one
    // 2 minutes ago, and one never sent. Bob's: three, 20 s ago.
    let busy = ConversationId::new_v7();
    let mut history: Vec<(NewJob, Option<chrono::DateTime<chrono::Utc>>)> = Vec::new();
    for k in 0..34 {
        let at = t0 - Duration::seconds(30) - Duration::milliseconds(k);
        history.push((alert(token, ada, MessageId::new_v7(), at), Some(at)));
    }
    let recent = NewJob {
        conversation_id: Some(busy),
        ..alert(token, ada, MessageId::new_v7(), t0 - Duration::seconds(5))
    };
    history.push((recent, Some(t0 - Duration::seconds(5))));
    let old = t0 - Duration::minutes(2);
    history.push((alert(token, ada, MessageId::new_v7(), old), Some(old)));
    history.push((
        alert(token, ada, MessageId::new_v7(), t0 - Duration::seconds(3)),
        None,
    ));
    for k in 0..3 {
        let at = t0 - Duration::seconds(20) - Duration::milliseconds(k);
        history.push((alert(token, bob, MessageId::new_v7(), at), Some(at)));
    }
    for (job, _) in &history {
        assert!(insert(env, job).await);
    }
    let claimed = jobs::claim(db, t0, t0 + Duration::seconds(30), 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), history.len());
    for job in &claimed {
        let sent = history
            .iter()
            .find(|(new, _)| new.message_id == job.message_id)
            .and_then(|(_, sent)| *sent);
        let settled = match sent {
            Some(at) => Settled::Sent(at),
            None => Settled::Skipped("read".into()),
        };
        settle(db, job, &settled).await;
    }

    // The batch being decided: Ada in `busy` and in a quiet conversation; Bob; Cy (no history).
    let cy = UserId::new_v7();
    let quiet = ConversationId::new_v7();
    for (user, conversation) in [(ada, busy), (ada, quiet), (bob, quiet), (cy, quiet)] {
        let job = NewJob {
            conversation_id: Some(conversation),
            ..alert(token, user, MessageId::new_v7(), t0)
        };
        assert!(insert(env, &job).await);
    }
    let batch = jobs::claim(db, t0, t0 + Duration::seconds(30), 100)
        .await
        .unwrap();
    assert_eq!(batch.len(), 4);
    let damping = Damping {
        recent_since: t0 - Duration::seconds(10),
        minute_since: t0 - Duration::minutes(1),
        cap: 30,
    };
    let facts = load::facts(&env.store, &batch, t0, &damping).await.unwrap();
    assert_eq!(facts.storm(ada, Some(busy)), (true, 30), "capped at 30");
    assert_eq!(facts.storm(ada, Some(quiet)), (false, 30));
    assert_eq!(facts.storm(bob, Some(quiet)), (false, 3));
    assert_eq!(facts.storm(cy, Some(quiet)), (false, 0));
}

/// Only the claim that holds a job settles it: a claim whose lease ran out, and whose job was
/// claimed again meanwhile, settles nothing; the new holder does.
pub async fn only_the_holding_claim_settles_a_job(env: &Env) {
    let db = env.store.database();
    let t0 = now();
    one_due_alert(env, t0).await;
    let first = jobs::claim(db, t0, t0 + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let t1 = t0 + Duration::seconds(31);
    let second = jobs::claim(db, t1, t1 + Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "the lease ran out: claimed again");

    settle(db, &first[0], &Settled::Skipped("late".into())).await;
    let sent = |id: Uuid| {
        env.count(
            "SELECT count(*) FROM push_jobs WHERE push_job_id = $1 AND sent_at_ms IS NOT NULL",
            id,
        )
    };
    assert_eq!(sent(first[0].id).await, 0);
    let pending = env
        .count(
            "SELECT count(*) FROM push_jobs WHERE push_job_id = $1 AND state = 1 \
             AND last_error IS NULL",
            first[0].id,
        )
        .await;
    assert_eq!(pending, 1, "the stale claim settled nothing");

    settle(db, &second[0], &Settled::Sent(t1)).await;
    assert_eq!(sent(first[0].id).await, 1, "the holder settles it");
}

/// A user's badge jobs are due no sooner than the interval after the user's last badge push
/// (alerts and other users' badges do not count; interval 0 means no limit).
pub async fn badge_pushes_are_spaced_per_user(env: &Env) {
    let db = env.store.database();
    let t0 = now();
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    let interval = std::time::Duration::from_secs(10);
    let slot = |user: UserId, at: chrono::DateTime<chrono::Utc>, interval| async move {
        let mut tx = db.begin().await.unwrap();
        let slot = jobs::badge_slot(&mut tx, user, at, interval).await.unwrap();
        tx.commit().await.unwrap();
        slot
    };
    assert_eq!(slot(ada, t0, interval).await, t0, "no badge sent yet");

    let badge = NewJob {
        message_id: None,
        kind: JobKind::Badge,
        conversation_id: None,
        seq: None,
        ..alert(Uuid::now_v7(), ada, MessageId::new_v7(), t0)
    };
    assert!(insert(env, &badge).await);
    let claimed = jobs::claim(db, t0, t0 + Duration::seconds(30), 10)
        .await
        .unwrap();
    let claimed: Vec<_> = claimed.iter().filter(|j| j.user_id == ada).collect();
    assert_eq!(claimed.len(), 1);
    settle(db, claimed[0], &Settled::Sent(t0)).await;
    // An alert sent later than the badge does not move the badge's slot.
    let mut alert_to_ada = alert(Uuid::now_v7(), ada, MessageId::new_v7(), t0);
    alert_to_ada.due = t0 + Duration::seconds(1);
    assert!(insert(env, &alert_to_ada).await);
    let t1 = t0 + Duration::seconds(1);
    for job in jobs::claim(db, t1, t1 + Duration::seconds(30), 10)
        .await
        .unwrap()
        .iter()
        .filter(|j| j.user_id == ada)
    {
        settle(db, job, &Settled::Sent(t1)).await;
    }

    let t2 = t0 + Duration::seconds(2);
    assert_eq!(slot(ada, t2, interval).await, t0 + Duration::seconds(10));
    let t11 = t0 + Duration::seconds(11);
    assert_eq!(
        slot(ada, t11, interval).await,
        t11,
        "the interval has passed"
    );
    assert_eq!(slot(bob, t2, interval).await, t2, "per user");
    assert_eq!(
        slot(ada, t2, std::time::Duration::ZERO).await,
        t2,
        "no limit"
    );
}
