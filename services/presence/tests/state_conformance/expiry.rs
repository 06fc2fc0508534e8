//! The expiry index: sweeps (alone and racing), shortened and postponed expiries, forgetting.

use std::collections::BTreeMap;

use super::*;

/// What the updates removed, per user: devices that left, and whether the manual status did.
fn removals(updates: &[Update]) -> Vec<(UserId, Vec<DeviceId>, bool)> {
    let mut out: Vec<_> = updates
        .iter()
        .map(|u| {
            let gone = u
                .before
                .devices
                .iter()
                .filter(|d| !u.after.devices.iter().any(|a| a.device_id == d.device_id))
                .map(|d| d.device_id)
                .collect();
            let cleared = u.before.manual.is_some() && u.after.manual.is_none();
            (u.after.user_id, gone, cleared)
        })
        .collect();
    out.sort();
    out
}

pub async fn sweep_removes_a_device_at_its_expiry_not_before(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    let live = refresh(&store, user, dev, at(0)).await.after;
    assert!(store.sweep(at(TTL_MS - 1), 100).await.unwrap().is_empty());
    assert_eq!(read_one(&store, user).await.as_ref(), Some(&live));

    let swept = store.sweep(at(TTL_MS), 100).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].before, live);
    let gone = UserState {
        devices: vec![],
        version: micros(at(TTL_MS)),
        ..live
    };
    assert_eq!(swept[0].after, gone);
    assert_eq!(read_one(&store, user).await, Some(gone));
    assert!(
        store.sweep(at(TTL_MS), 100).await.unwrap().is_empty(),
        "removed once"
    );
}

pub async fn sweep_clears_a_manual_status_at_its_time_not_before(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    refresh(&store, user, dev, at(0)).await;
    let dnd = manual(Manual::Dnd, Some(at(60_000)));
    store.set_manual(user, dnd, at(0)).await.unwrap();
    assert!(store.sweep(at(59_999), 100).await.unwrap().is_empty());
    assert_eq!(read_one(&store, user).await.unwrap().manual, dnd);

    let swept = store.sweep(at(60_000), 100).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].before.manual, dnd);
    assert_eq!(swept[0].after.manual, None);
    assert_eq!(
        swept[0].after.devices, swept[0].before.devices,
        "the device stays"
    );
    assert!(swept[0].after.version > swept[0].before.version);
}

pub async fn sweep_reports_one_update_per_user(store: Store) {
    let (ada, bob) = (id(1), id(2));
    let (phone, laptop, tablet) = (id(101), id(102), id(103));
    seed(&store, ada).await;
    seed(&store, bob).await;
    refresh(&store, ada, phone, at(0)).await;
    refresh(&store, ada, laptop, at(1)).await;
    refresh(&store, bob, tablet, at(2)).await;
    let swept = store.sweep(at(TTL_MS + 2), 100).await.unwrap();
    assert_eq!(
        removals(&swept),
        vec![
            (ada, vec![phone, laptop], false),
            (bob, vec![tablet], false)
        ]
    );
    for update in &swept {
        assert!(update.after.devices.is_empty());
        assert!(update.after.version > update.before.version);
    }
}

pub async fn sweep_respects_its_limit(store: Store) {
    // The limit counts index entries, not users: 3 devices of one user, then 2 more users.
    let users = [id(1), id(2), id(3)];
    for user in users {
        seed(&store, user).await;
    }
    for (n, dev) in [id(101), id(102), id(103)].into_iter().enumerate() {
        refresh(&store, users[0], dev, at(i64::try_from(n).unwrap())).await;
    }
    refresh(&store, users[1], id(104), at(10)).await;
    refresh(&store, users[2], id(105), at(11)).await;
    let now = at(TTL_MS + 100);

    let first = store.sweep(now, 2).await.unwrap();
    assert_eq!(
        removals(&first),
        vec![(users[0], vec![id(101), id(102)], false)]
    );
    assert_eq!(first[0].after.devices.len(), 1, "one device of three left");
    let second = store.sweep(now, 2).await.unwrap();
    assert_eq!(
        removals(&second),
        vec![
            (users[0], vec![id(103)], false),
            (users[1], vec![id(104)], false)
        ]
    );
    let third = store.sweep(now, 2).await.unwrap();
    assert_eq!(removals(&third), vec![(users[2], vec![id(105)], false)]);
    assert!(store.sweep(now, 2).await.unwrap().is_empty());
}

pub async fn racing_sweepers_report_each_removal_once(store: Store) {
    // 30 users with 2 devices each, every third also with a timed status, all due.
    let mut expected: BTreeMap<UserId, (Vec<DeviceId>, bool)> = BTreeMap::new();
    for n in 0..30u128 {
        let user = id(1_000 + n);
        seed(&store, user).await;
        let devices = vec![id(10_000 + 2 * n), id(10_001 + 2 * n)];
        for (k, dev) in devices.iter().enumerate() {
            let offset = i64::try_from(n).unwrap() * 10 + i64::try_from(k).unwrap();
            refresh(&store, user, *dev, at(offset)).await;
        }
        let timed = n % 3 == 0;
        if timed {
            let clears = manual(Manual::Away, Some(at(1_000)));
            store.set_manual(user, clears, at(0)).await.unwrap();
        }
        expected.insert(user, (devices, timed));
    }
    let now = at(TTL_MS + 1_000);
    let other = store.another_handle().await;
    let drain = |state: Arc<dyn PresenceState>| async move {
        let mut all = Vec::new();
        loop {
            let batch = state.sweep(now, 3).await.expect("sweep");
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    };
    let (a, b) = tokio::join!(drain(Arc::clone(&store.state)), drain(other));

    let mut seen: BTreeMap<UserId, (Vec<DeviceId>, bool)> = BTreeMap::new();
    for (user, gone, cleared) in removals(&a).into_iter().chain(removals(&b)) {
        let entry = seen.entry(user).or_default();
        for dev in gone {
            assert!(!entry.0.contains(&dev), "{dev} of {user} reported twice");
            entry.0.push(dev);
        }
        assert!(!(cleared && entry.1), "manual of {user} reported twice");
        entry.1 |= cleared;
    }
    for (devices, _) in seen.values_mut() {
        devices.sort();
    }
    assert_eq!(
        seen,
        expected,
        "every removal exactly once ({} + {} updates)",
        a.len(),
        b.len()
    );
}

pub async fn expire_within_only_shortens(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    refresh(&store, user, dev, at(0)).await;
    store
        .expire_within(user, dev, Duration::from_secs(10), at(1_000))
        .await
        .unwrap();
    let expiry = |s: Option<UserState>| s.unwrap().devices[0].expires_at;
    assert_eq!(expiry(read_one(&store, user).await), at(11_000));
    // Later than the current expiry: never lengthened.
    store
        .expire_within(user, dev, Duration::from_secs(60), at(2_000))
        .await
        .unwrap();
    assert_eq!(expiry(read_one(&store, user).await), at(11_000));

    assert!(store.sweep(at(10_999), 100).await.unwrap().is_empty());
    let swept = store.sweep(at(11_000), 100).await.unwrap();
    assert_eq!(removals(&swept), vec![(user, vec![dev], false)]);
    // The old expiry left no second index entry.
    assert!(store.sweep(at(TTL_MS), 100).await.unwrap().is_empty());

    // No entry for the device, or no such user: nothing happens.
    let before = read_one(&store, user).await;
    let within = Duration::from_secs(1);
    store
        .expire_within(user, id(102), within, at(20_000))
        .await
        .unwrap();
    assert_eq!(read_one(&store, user).await, before);
    store
        .expire_within(id(9), dev, within, at(20_000))
        .await
        .unwrap();
    assert_eq!(read_one(&store, id(9)).await, None);
    assert!(store.sweep(at(1_000_000), 100).await.unwrap().is_empty());
}

pub async fn extend_until_postpones_due_devices_only(store: Store) {
    let (ada, bob) = (id(1), id(2));
    let (phone, laptop, tablet) = (id(101), id(102), id(103));
    seed(&store, ada).await;
    seed(&store, bob).await;
    refresh(&store, ada, phone, at(0)).await; // due 75 s
    refresh(&store, ada, laptop, at(10_000)).await; // due 85 s
    refresh(&store, bob, tablet, at(15_000)).await; // due 90 s: not before `until`
    let dnd = manual(Manual::Dnd, Some(at(50_000)));
    store.set_manual(bob, dnd, at(15_000)).await.unwrap();

    let until = at(90_000);
    // No limit in practice: every due device.
    assert_eq!(store.extend_until(until, usize::MAX).await.unwrap(), 2);
    let states = store.read(&[ada, bob]).await.unwrap();
    let expiries = |s: &Option<UserState>| -> Vec<_> {
        s.as_ref()
            .unwrap()
            .devices
            .iter()
            .map(|d| d.expires_at)
            .collect()
    };
    assert_eq!(expiries(&states[0]), vec![until, until]);
    assert_eq!(expiries(&states[1]), vec![until]);

    // The manual status still clears at its time; no device goes before `until`.
    let swept = store.sweep(at(89_999), 100).await.unwrap();
    assert_eq!(removals(&swept), vec![(bob, vec![], true)]);
    let swept = store.sweep(until, usize::MAX).await.unwrap();
    assert_eq!(
        removals(&swept),
        vec![
            (ada, vec![phone, laptop], false),
            (bob, vec![tablet], false)
        ]
    );
}

pub async fn extend_until_respects_its_limit(store: Store) {
    let user = id(1);
    seed(&store, user).await;
    // A timed status due first must not use up the limit.
    let away = manual(Manual::Away, Some(at(1_000)));
    store.set_manual(user, away, at(0)).await.unwrap();
    for (n, dev) in [id(101), id(102), id(103)].into_iter().enumerate() {
        refresh(&store, user, dev, at(i64::try_from(n).unwrap())).await;
    }
    let until = at(100_000);
    assert_eq!(store.extend_until(until, 2).await.unwrap(), 2);
    assert_eq!(store.extend_until(until, 2).await.unwrap(), 1);
    assert_eq!(store.extend_until(until, 2).await.unwrap(), 0);

    let swept = store.sweep(at(99_999), 100).await.unwrap();
    assert_eq!(removals(&swept), vec![(user, vec![], true)]);
    let swept = store.sweep(until, 100).await.unwrap();
    assert_eq!(
        removals(&swept),
        vec![(user, vec![id(101), id(102), id(103)], false)]
    );
}

pub async fn forget_leaves_nothing_behind(store: Store) {
    let (gone, kept) = (id(1), id(2));
    seed(&store, gone).await;
    seed(&store, kept).await;
    refresh(&store, gone, id(101), at(0)).await;
    refresh(&store, gone, id(102), at(0)).await;
    let dnd = manual(Manual::Dnd, Some(at(60_000)));
    store.set_manual(gone, dnd, at(0)).await.unwrap();
    refresh(&store, kept, id(103), at(0)).await;

    store.forget(gone).await.unwrap();
    assert_eq!(store.read(&[gone]).await.unwrap(), vec![None]);
    let refreshed = store.refresh(gone, id(101), None, TTL, at(1)).await;
    assert!(matches!(refreshed, Err(StateError::Unseeded(u)) if u == gone));
    // Seeded afresh (a new account with the same id would be), an index entry left behind
    // would now change it: the sweep must report only the other user.
    seed(&store, gone).await;
    let swept = store.sweep(at(1_000_000_000), 1_000).await.unwrap();
    let users: Vec<_> = swept.iter().map(|u| u.after.user_id).collect();
    assert_eq!(
        users,
        vec![kept],
        "no index entry of the forgotten user is left"
    );
    store
        .forget(id(9))
        .await
        .expect("forgetting a stranger is fine");
}

pub async fn versions_grow_across_forget_and_seed(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    let mut last = 0;
    for _ in 0..5 {
        last = refresh(&store, user, dev, at(0)).await.after.version;
    }
    assert_eq!(last, micros(at(0)) + 5);
    // A flush: the store forgets, the user is reseeded a moment later.
    store.forget(user).await.unwrap();
    store.seed(user, None, None, at(1)).await.unwrap();
    let reseeded = read_one(&store, user).await.unwrap().version;
    assert!(reseeded > last, "{reseeded} after {last}");
    assert_eq!(reseeded, micros(at(1)));
}
