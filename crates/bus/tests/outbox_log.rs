//! The outbox as a replayable, commit-safe event log (live delivery's source, DESIGN §7): epoch,
//! head, horizon, range and subject reads, pruning, commit watches. Every case runs on SQLite
//! and on PostgreSQL; the commit-order cases that only PostgreSQL can show run there alone.

mod common;
mod outbox_log_support;

use std::time::Duration;

use common::*;
use echo_bus::{Outbox, Position};
use outbox_log_support::*;

/// Long enough for a wrong wakeup or a wrong row to show up.
const QUIET: Duration = Duration::from_millis(400);

/// The epoch is fixed per database: the same through any `Outbox` on it (re-running the
/// migrations included), different on another database.
async fn epoch_is_fixed_per_database(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    let epoch = log.outbox.epoch().await.expect("epoch");
    assert_eq!(log.outbox.epoch().await.expect("epoch again"), epoch);
    let reopened = log.reopen().await;
    assert_eq!(reopened.epoch().await.expect("epoch, reopened"), epoch);
    reopened.database().close().await;
    let Some(other) = Log::open(backend).await else {
        return;
    };
    assert_ne!(other.outbox.epoch().await.expect("other epoch"), epoch);
    other.cleanup().await;
    log.cleanup().await;
}

/// Ranges are `(after, upto]`, in position order, limited; the head covers every commit.
async fn read_range_bounds_order_and_limit(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    let events = commit_range(&log.outbox, 0..5).await;
    let (head, rows) = settled(&log.outbox, 5).await;
    assert_eq!(ids(&rows), ids_of(&events), "all rows, in commit order");
    assert_increasing(&rows);
    let p: Vec<Position> = rows.iter().map(|(position, _)| *position).collect();
    let some = log.outbox.read_range(p[0], p[3], 100).await.expect("read");
    assert_eq!(ids(&some), ids_of(&events[1..4]), "(p0, p3]");
    let limited = log.outbox.read_range(p[0], head, 2).await.expect("read");
    assert_eq!(ids(&limited), ids_of(&events[1..3]), "limit 2 after p0");
    let none = log.outbox.read_range(p[4], head, 100).await.expect("read");
    assert!(none.is_empty(), "nothing after the last row: {none:?}");
    let empty = log.outbox.read_range(p[2], p[2], 100).await.expect("read");
    assert!(empty.is_empty(), "(p2, p2] is empty");
    log.cleanup().await;
}

/// A subject filter matches exactly (`a` is not `a2`), keeps order, bounds and limit, ignores
/// repeated subjects, and stays correct with thousands of subjects.
async fn read_subjects_matches_exactly(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    let order = ["a", "a2", "b", "a", "c", "b", "a"];
    let events = commit_subjects(&log.outbox, &order).await;
    let (head, rows) = settled(&log.outbox, order.len()).await;
    let start = Position::default();
    let read = |subjects: Vec<String>, after: Position, limit: i64| {
        let outbox = log.outbox.clone();
        async move {
            let rows = outbox
                .read_subjects(&subjects, after, head, limit)
                .await
                .expect("read subjects");
            assert_increasing(&rows);
            ids(&rows)
        }
    };
    let picked = |indexes: &[usize]| indexes.iter().map(|&i| events[i].id).collect::<Vec<_>>();
    assert_eq!(read(subjects(&["a"]), start, 100).await, picked(&[0, 3, 6]));
    assert_eq!(read(subjects(&["a2"]), start, 100).await, picked(&[1]));
    assert_eq!(
        read(subjects(&["b", "a", "b"]), start, 100).await,
        picked(&[0, 2, 3, 5, 6]),
        "several subjects, one listed twice"
    );
    assert_eq!(read(subjects(&["a", "b"]), start, 2).await, picked(&[0, 2]));
    let after_second = rows[2].0;
    assert_eq!(
        read(subjects(&["a", "c"]), after_second, 100).await,
        picked(&[3, 4, 6])
    );
    let upto_fourth = log
        .outbox
        .read_subjects(&subjects(&["a"]), start, rows[3].0, 100)
        .await
        .expect("read");
    assert_eq!(ids(&upto_fourth), picked(&[0, 3]), "upto is inclusive");
    assert!(
        read(subjects(&["echo.message"]), start, 100)
            .await
            .is_empty()
    );
    assert!(read(Vec::new(), start, 100).await.is_empty());
    let mut many: Vec<String> = (0..3000).map(|n| format!("{SUBJECT}.x{n}")).collect();
    many.push(format!("{SUBJECT}.c"));
    assert_eq!(read(many, start, 100).await, picked(&[4]), "3001 subjects");
    log.cleanup().await;
}

/// Counting stops at the cap and honours bounds and the exact subject match.
async fn count_subjects_caps(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    let order = ["a", "a2", "a", "a", "b", "a", "a"];
    commit_subjects(&log.outbox, &order).await;
    let (head, rows) = settled(&log.outbox, order.len()).await;
    let count = |names: &[&str], after: Position, cap: i64| {
        let outbox = log.outbox.clone();
        let names = subjects(names);
        async move {
            outbox
                .count_subjects(&names, after, head, cap)
                .await
                .expect("count")
        }
    };
    let start = Position::default();
    assert_eq!(count(&["a"], start, 100).await, 5);
    assert_eq!(count(&["a"], start, 3).await, 3, "capped");
    assert_eq!(count(&["a", "b"], start, 100).await, 6);
    assert_eq!(
        count(&["a"], rows[3].0, 100).await,
        2,
        "after the fourth row"
    );
    assert_eq!(count(&["a2"], start, 100).await, 1);
    assert_eq!(count(&["a"], start, 0).await, 0);
    assert_eq!(count(&[], start, 100).await, 0);
    log.cleanup().await;
}

/// Pruning raises the horizon to the highest deleted position, respects `published_only`,
/// never lowers the horizon, and (SQLite) never lowers the head.
async fn prune_raises_the_horizon(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    assert_eq!(
        log.outbox.horizon().await.expect("horizon"),
        Position::default()
    );
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut old: Vec<_> = (0..3).map(|n| event("user_registered", "old", n)).collect();
    for event in &mut old {
        event.occurred_at = hour_ago;
    }
    for event in &old {
        commit(&log.outbox, event).await;
    }
    let fresh = commit_range(&log.outbox, 10..11).await;
    let (head, rows) = settled(&log.outbox, 4).await;
    log.mark_published(old[2].id).await;
    let keep = Duration::from_secs(600);

    assert_eq!(log.outbox.prune(keep, true).await.expect("prune"), 1);
    assert_eq!(log.outbox.horizon().await.expect("horizon"), rows[2].0);
    assert_eq!(log.outbox.prune(keep, true).await.expect("prune again"), 0);

    // The two unpublished old rows lie below the horizon already: it must not go down.
    assert_eq!(log.outbox.prune(keep, false).await.expect("prune all"), 2);
    assert_eq!(log.outbox.horizon().await.expect("horizon"), rows[2].0);
    let left = log.outbox.read_range(Position::default(), head, 100).await;
    assert_eq!(ids(&left.expect("read")), ids_of(&fresh));

    assert_eq!(
        log.outbox
            .prune(Duration::ZERO, false)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(log.outbox.horizon().await.expect("horizon"), rows[3].0);
    if backend == Backend::Sqlite {
        assert_eq!(
            log.outbox.head().await.expect("head"),
            rows[3].0,
            "head after prune"
        );
        commit_range(&log.outbox, 20..21).await;
        assert_eq!(log.outbox.head().await.expect("head").id, rows[3].0.id + 1);
    }
    log.cleanup().await;
}

/// A backlog larger than one prune batch is deleted whole, batch by batch, and the horizon
/// ends at its last row.
async fn prune_deletes_a_backlog_in_batches(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    const BACKLOG: usize = 4100; // more than two batches
    let mut tx = log.outbox.database().begin().await.expect("begin");
    for n in 0..BACKLOG {
        let event = event("user_registered", "backlog", n as i64);
        Outbox::append(&mut tx, &event).await.expect("append");
    }
    log.outbox.commit(tx).await.expect("commit");
    let (head, rows) = settled(&log.outbox, BACKLOG).await;
    let pruned = log
        .outbox
        .prune(Duration::ZERO, false)
        .await
        .expect("prune");
    assert_eq!(pruned, BACKLOG as u64);
    assert_eq!(
        log.outbox.horizon().await.expect("horizon"),
        rows[BACKLOG - 1].0
    );
    let left = log.outbox.read_range(Position::default(), head, 10).await;
    assert!(left.expect("read").is_empty(), "rows left after pruning");
    log.cleanup().await;
}

/// The periodic pruner prunes after `every` and stops on shutdown.
async fn prune_periodically_runs_until_shutdown(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    commit_range(&log.outbox, 0..3).await;
    let (_, rows) = settled(&log.outbox, 3).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(echo_bus::prune_periodically(
        log.outbox.clone(),
        Duration::ZERO,
        false,
        Duration::from_millis(50),
        shutdown.clone(),
    ));
    wait_until("the pruner emptied the outbox", || async {
        log.outbox.horizon().await.expect("horizon") == rows[2].0
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("pruner stops")
        .expect("no panic");
    log.cleanup().await;
}

/// A commit through this `Outbox` wakes a watch at once, and nothing else does.
async fn watch_wakes_on_local_commit(backend: Backend) {
    let Some(log) = Log::open(backend).await else {
        return;
    };
    let mut watch = log.outbox.watch_commits();
    drain(&mut watch).await;
    commit_range(&log.outbox, 0..1).await;
    tokio::time::timeout(Duration::from_secs(1), watch.changed())
        .await
        .expect("woken by the local commit");
    drain(&mut watch).await;
    // Closing the pool under a live watch must not hang (the LISTEN task lets go).
    tokio::time::timeout(WAIT, log.outbox.database().close())
        .await
        .expect("pool closes with a watch alive");
    drop(watch);
    log.cleanup().await;
}

both!(
    epoch_is_fixed_per_database,
    read_range_bounds_order_and_limit,
    read_subjects_matches_exactly,
    count_subjects_caps,
    prune_raises_the_horizon,
    prune_deletes_a_backlog_in_batches,
    prune_periodically_runs_until_shutdown,
    watch_wakes_on_local_commit,
);

/// THE commit-safety case: a transaction that took its xid first but commits last holds the
/// head below itself, so the later one, committed first, is not readable yet; after both
/// commit, a reader resuming from the earlier head gets both, in `(tx, id)` order (which here
/// is NOT id order), and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_head_waits_for_open_transactions() {
    let Some(log) = Log::open(Backend::Postgres).await else {
        return;
    };
    let (before, _) = settled(&log.outbox, 0).await;
    let mut slow = log.outbox.database().begin().await.expect("begin");
    let slow_xid = current_xid(&mut slow).await; // the xid now, the row (and its id) later
    let fast = commit_subjects(&log.outbox, &["fast"]).await.remove(0);

    let head = log.outbox.head().await.expect("head");
    assert!(
        head.tx < slow_xid,
        "head {head:?} passed open xid {slow_xid}"
    );
    let everything = Position {
        tx: i64::MAX,
        id: i64::MAX,
    };
    for upto in [head, everything] {
        let rows = log
            .outbox
            .read_range(before, upto, 100)
            .await
            .expect("read");
        assert!(rows.is_empty(), "read past an open transaction: {rows:?}");
        let names = subjects(&["fast"]);
        let rows = log.outbox.read_subjects(&names, before, upto, 100).await;
        assert!(
            rows.expect("read").is_empty(),
            "read_subjects past an open tx"
        );
        let count = log.outbox.count_subjects(&names, before, upto, 100).await;
        assert_eq!(count.expect("count"), 0, "counted past an open transaction");
    }

    let slow_event = event_on("slow");
    Outbox::append(&mut slow, &slow_event)
        .await
        .expect("append");
    tokio::time::sleep(QUIET).await;
    assert!(log.outbox.head().await.expect("head").tx < slow_xid);
    log.outbox.commit(slow).await.expect("commit slow");

    let (after, rows) = settled(&log.outbox, 2).await;
    assert!(
        after.tx >= slow_xid,
        "head {after:?} never passed {slow_xid}"
    );
    let resumed = log.outbox.read_range(head, after, 100).await.expect("read");
    assert_eq!(
        ids(&resumed),
        vec![slow_event.id, fast.id],
        "(tx, id) order"
    );
    assert_eq!(ids(&rows), ids(&resumed));
    assert_increasing(&resumed);
    assert_eq!(resumed[0].0.tx, slow_xid);
    assert!(
        resumed[0].0.id > resumed[1].0.id,
        "the slow row has the higher id"
    );
    log.cleanup().await;
}

/// A commit through ANOTHER `Outbox` with its own pool (another process) wakes a watch through
/// NOTIFY within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_watch_wakes_on_commit_in_another_process() {
    let Some(log) = Log::open(Backend::Postgres).await else {
        return;
    };
    let elsewhere = log.reopen().await;
    let mut watch = log.outbox.watch_commits();
    drain(&mut watch).await; // the LISTEN connection is up once its first wake has passed
    for n in 0..3 {
        commit(&elsewhere, &event("user_registered", "elsewhere", n)).await;
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("woken by a commit in another process");
        drain(&mut watch).await;
    }
    // A second watch shares the same LISTEN task and wakes too.
    let mut second = log.outbox.watch_commits();
    commit(&elsewhere, &event("user_registered", "elsewhere", 9)).await;
    for watch in [&mut watch, &mut second] {
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("both watches woken");
    }
    elsewhere.database().close().await;
    log.cleanup().await;
}
