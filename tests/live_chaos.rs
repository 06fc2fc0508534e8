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

/// How long the writers write: `CHAOS_SECS` (12 in CI; `just chaos 600` for a long run).
fn chaos() -> Duration {
    let secs = std::env::var("CHAOS_SECS")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SECS is a number of seconds"))
        .unwrap_or(12);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_exactly_its_events() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        eprintln!("live chaos on {backend:?} with CHAOS_SEED={seed}");
        let (world, devices, finals) = run(mesh, seed).await;
        let failures = judge(&world, devices, finals, backend).await;
        assert!(
            failures.is_empty(),
            "{backend:?} (CHAOS_SEED={seed}): {} failures, the first:\n{}",
            failures.len(),
            failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let world = Arc::try_unwrap(world)
            .unwrap_or_else(|_| panic!("every task has finished with the world"));
        world.mesh.shutdown().await;
    }
}

/// Cast, subscribe, create the groups, run the writers and readers, quiesce, and resume every
/// device once more: the world, its devices, and their final streams (past Ready).
async fn run(mesh: TestMesh, seed: u64) -> (Arc<World>, Vec<Device>, Vec<LiveStream>) {
    let mut world = World::cast(mesh).await;
    // Every device subscribes before the groups exist, so each must get all its events.
    let mut opened = Vec::new();
    for (user, signed_in) in world.devices.clone() {
        opened.push(Device::open(&world, user, signed_in).await);
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
    let until = Instant::now() + chaos();
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
    eprintln!("{segments} stream segments; slow transactions: {held:?}");
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
    backend: Backend,
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
            "{backend:?} user {} device {}",
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
        "{backend:?}: last seqs {last:?} with {departures} departures; {events} conversation \
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
