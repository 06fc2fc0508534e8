//! Live delivery under chaos, on both backends (issue 6, "Tests must show"): concurrent
//! senders in several groups, with edits, deletes (both kinds), reactions, read markers,
//! settings and membership changes (removals, re-adds, newcomers, leaving) mixed in, while
//! every device drops its stream at random moments and resumes with its last cursor. On
//! PostgreSQL, slow transactions run among them (a row lock that makes an Echo transaction
//! with an early xid commit late, and a bare xid held open).
//!
//! At the end, with the world quiet and every device resumed once more: each group's
//! observer (its owner, who never leaves) holds the complete log 1..=last_seq; membership
//! periods come from that log; every device holds exactly the seqs its user was a member at,
//! each once after dedupe, every stream segment in order and without repeats; user events
//! run without gaps. `CHAOS_SEED=<n>` repeats a run's choices.
//!
//! Across instances (real backends only): a second instance of the mesh on the same
//! PostgreSQL schemas, NATS and Redis prefixes; every call (sends, edits, membership changes)
//! and every resume goes to either instance at random, devices start on alternate instances
//! and make their final resume on the other one, so cursors cross instances all the time.
//! The same checks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::live::{LiveStream, WAIT, last_seq};
use echo_testkit::{Backend, TestMesh};
use subscribers::{Device, churn, final_stream};
use tokio::time::Instant;
use world::{GROUPS, USERS, World};

mod common;

#[path = "live_chaos/actors.rs"]
mod actors;
#[path = "live_chaos/slow_tx.rs"]
mod slow_tx;
#[path = "live_chaos/subscribers.rs"]
mod subscribers;
#[path = "live_chaos/verify.rs"]
mod verify;
#[path = "live_chaos/world.rs"]
mod world;

/// How long the writers write: `CHAOS_SECS`, else `ci` seconds (CI's 12 s per backend: all
/// of it on one embedded instance, half each to one and two real instances; `just chaos 600`
/// gives every run 600 s).
fn chaos(ci: u64) -> Duration {
    let secs = std::env::var("CHAOS_SECS")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SECS is a number of seconds"))
        .unwrap_or(ci);
    Duration::from_secs(secs)
}

/// One chaos run at a time: a real-backend mesh holds up to 40 PostgreSQL connections, and
/// two instances beside a third would take most of the shared server's 100.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_exactly_its_events() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let secs = if backend == Backend::Real { 6 } else { 12 };
        chaos_on(mesh, false, chaos(secs), backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_exactly_its_events_resuming_across_instances() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mesh) = TestMesh::start(Backend::Real).await else {
        return;
    };
    chaos_on(mesh, true, chaos(6), Backend::Real).await;
}

/// One chaos run on `mesh` (and a sibling of it when `across`), judged.
async fn chaos_on(mesh: TestMesh, across: bool, chaos: Duration, backend: Backend) {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let instances = if across { 2 } else { 1 };
    eprintln!("live chaos on {backend:?} ({instances} instances) with CHAOS_SEED={seed}");
    let sibling = if across {
        Some(mesh.start_sibling().await)
    } else {
        None
    };
    let (world, devices, finals) = run(mesh, sibling, seed, chaos).await;
    let label = format!("{backend:?} ({instances} instances)");
    let failures = judge(&world, devices, finals, &label).await;
    assert!(
        failures.is_empty(),
        "{label} (CHAOS_SEED={seed}): {} failures, the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let world =
        Arc::try_unwrap(world).unwrap_or_else(|_| panic!("every task has finished with the world"));
    // The sibling first: the mesh holds the data dir with the shared signing key.
    if let Some(sibling) = world.sibling {
        sibling.shutdown().await;
    }
    world.mesh.shutdown().await;
}

/// Cast, subscribe, create the groups, run the writers and readers for `chaos`, quiesce, and
/// resume every device once more: the world, its devices, and their final streams (past
/// Ready).
async fn run(
    mesh: TestMesh,
    sibling: Option<TestMesh>,
    seed: u64,
    chaos: Duration,
) -> (Arc<World>, Vec<Device>, Vec<LiveStream>) {
    let mut world = World::cast(mesh).await;
    world.sibling = sibling;
    // Every device subscribes before the groups exist, so each must get all its events.
    let mut opened = Vec::new();
    for (n, (user, signed_in)) in world.devices.clone().into_iter().enumerate() {
        opened.push(Device::open(&world, n, user, signed_in).await);
    }
    world.create_groups(seed).await;
    let world = Arc::new(world);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = opened
        .into_iter()
        .zip(0u64..)
        .map(|((device, stream), n)| {
            let seed = seed.wrapping_add(n);
            tokio::spawn(churn(world.clone(), device, stream, seed, stop.clone()))
        })
        .collect();
    let until = Instant::now() + chaos;
    let mut writers = Vec::new();
    for user in 0..USERS {
        let seed = seed.wrapping_add(1000 + user as u64);
        writers.push(tokio::spawn(actors::user_actor(
            world.clone(),
            user,
            seed,
            until,
        )));
    }
    for group in 0..GROUPS {
        let seed = seed.wrapping_add(2000 + group as u64);
        writers.push(tokio::spawn(actors::membership_actor(
            world.clone(),
            group,
            seed,
            until,
        )));
    }
    let slow = tokio::spawn(slow_tx::slow_transactions(
        world.clone(),
        seed.wrapping_add(3000),
        until,
    ));
    for writer in writers {
        writer.await.expect("writer");
    }
    let held = slow.await.expect("slow transactions");
    stop.store(true, Ordering::Relaxed);
    let mut devices = Vec::new();
    for reader in readers {
        devices.push(reader.await.expect("reader"));
    }
    let segments: usize = devices.iter().map(|d| d.segments.len()).sum();
    let moves: usize = devices.iter().map(subscribers::moves).sum();
    if world.sibling.is_some() {
        assert!(moves > 0, "no resume went to the other instance");
    }
    eprintln!(
        "{segments} stream segments ({moves} resumed on another instance); slow transactions: \
         {held:?}"
    );
    let mut finals = Vec::new();
    for device in &mut devices {
        finals.push(final_stream(&world, device).await);
    }
    (world, devices, finals)
}

/// Read the final streams until every device holds what it should (or the wait runs out),
/// then check everything; the failures.
async fn judge(
    world: &World,
    mut devices: Vec<Device>,
    mut finals: Vec<LiveStream>,
    backend: &str,
) -> Vec<String> {
    let mut failures = world.problems.lock().expect("problems").clone();
    let ids: Vec<String> = world
        .groups
        .iter()
        .map(|g| g.conversation_id.clone())
        .collect();
    let mut last = Vec::new();
    for (owner, id) in ids.iter().enumerate() {
        last.push(last_seq(&world.mesh, &world.users[owner], id).await);
    }

    // The observers first: their logs must be complete, 1..=last_seq.
    let mut logs = Vec::new();
    for (group, id) in ids.iter().enumerate() {
        let at = devices
            .iter()
            .position(|d| d.user == group)
            .expect("observer");
        let full: BTreeSet<i64> = (1..=last[group]).collect();
        read_until(&mut devices[at], &mut finals[at], |d| {
            verify::seqs(d, id).is_superset(&full)
        })
        .await;
        let log = verify::log_of(&devices[at], id);
        if let Some(problem) = verify::compare(
            &format!("observer of {id}"),
            &log.keys().copied().collect(),
            &full,
        ) {
            failures.push(problem);
        }
        logs.push(log);
    }
    let periods: Vec<verify::Periods> = logs
        .iter()
        .map(|log| verify::periods(log, &mut failures))
        .collect();
    let expected = |user: &str| -> Vec<BTreeSet<i64>> {
        (0..GROUPS)
            .map(|g| verify::member_seqs(&periods[g], user, last[g]))
            .collect()
    };

    // Then every device: exactly its user's member seqs of every group.
    let (mut events, mut user_events) = (0, 0);
    for (device, stream) in devices.iter_mut().zip(&mut finals) {
        let user_id = world.users[device.user].tokens.user_id.clone();
        let wanted = expected(&user_id);
        read_until(device, stream, |d| {
            ids.iter()
                .zip(&wanted)
                .all(|(id, want)| verify::seqs(d, id).is_superset(want))
        })
        .await;
        // A moment more, so that anything a non-member should not get has its chance to show.
        device
            .read(stream, Instant::now() + Duration::from_millis(200))
            .await;
        let label = format!(
            "{backend} user {} device {}",
            device.user, device.signed_in.tokens.device_id
        );
        for (id, want) in ids.iter().zip(&wanted) {
            let got = verify::seqs(device, id);
            events += got.len();
            if let Some(problem) = verify::compare(&format!("{label} in {id}"), &got, want) {
                failures.push(problem);
            }
        }
        verify::check_segments(&label, device, &user_id, &mut failures);
        user_events += verify::check_user_events(&label, device, &mut failures);
    }
    let departures = logs
        .iter()
        .flat_map(|log| log.values())
        .filter(|change| matches!(change, Some(subscribers::Change::Gone { .. })))
        .count();
    eprintln!(
        "{backend}: last seqs {last:?} with {departures} departures; {events} conversation \
         events and {user_events} user events held by {} devices",
        devices.len()
    );
    failures
}

/// Read `device`'s final stream until `done` holds for it, for at most WAIT.
async fn read_until(device: &mut Device, stream: &mut LiveStream, done: impl Fn(&Device) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(device) && Instant::now() < deadline {
        if device.segments.last().is_some_and(|s| s.ended.is_some()) {
            return;
        }
        device
            .read(stream, Instant::now() + Duration::from_millis(100))
            .await;
    }
}
