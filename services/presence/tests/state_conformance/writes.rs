//! Seeding, refreshes, manual statuses, removals and reads.

use super::*;

fn assert_unseeded<T: std::fmt::Debug>(what: &str, result: Result<T, StateError>, user: UserId) {
    match result {
        Err(StateError::Unseeded(who)) if who == user => {}
        other => panic!("{what}: expected Unseeded({user}), got {other:?}"),
    }
}

pub async fn unseeded_writes_answer_unseeded(store: Store) {
    let (user, dev) = (id(1), id(101));
    let refreshed = store.refresh(user, dev, None, TTL, at(0)).await;
    assert_unseeded("refresh", refreshed, user);
    let away = store
        .set_manual(user, manual(Manual::Away, None), at(0))
        .await;
    assert_unseeded("set_manual", away, user);
    assert_unseeded(
        "clear manual",
        store.set_manual(user, None, at(0)).await,
        user,
    );
    // A refused write leaves nothing behind.
    assert_eq!(read_one(&store, user).await, None);
}

pub async fn seed_then_refresh_works(store: Store) {
    let (user, dev) = (id(1), id(101));
    store
        .seed(user, None, Some(at(-60_000)), at(0))
        .await
        .unwrap();
    let seeded = UserState {
        user_id: user,
        devices: vec![],
        manual: None,
        last_seen: Some(at(-60_000)),
        version: micros(at(0)),
    };
    assert_eq!(read_one(&store, user).await.as_ref(), Some(&seeded));

    let update = refresh(&store, user, dev, at(1_000)).await;
    let refreshed = UserState {
        devices: vec![device(dev, Activity::Online, at(1_000 + TTL_MS))],
        last_seen: Some(at(1_000)),
        version: micros(at(1_000)),
        ..seeded.clone()
    };
    assert_eq!(update.before, seeded);
    assert_eq!(update.after, refreshed);
    assert_eq!(read_one(&store, user).await, Some(refreshed));
}

pub async fn seed_twice_keeps_the_first(store: Store) {
    let user = id(1);
    let dnd = manual(Manual::Dnd, Some(at(3_600_000)));
    store
        .seed(user, dnd, Some(at(-5_000)), at(0))
        .await
        .unwrap();
    let first = read_one(&store, user).await.expect("seeded");
    assert_eq!(first.manual, dnd);
    store.seed(user, None, None, at(10)).await.unwrap();
    assert_eq!(
        read_one(&store, user).await,
        Some(first),
        "the second seed changed nothing"
    );

    // Nor does a seed after a write: the write's values stand.
    refresh(&store, user, id(101), at(20)).await;
    let written = read_one(&store, user).await;
    store.seed(user, None, None, at(30)).await.unwrap();
    assert_eq!(read_one(&store, user).await, written);
}

pub async fn seed_drops_an_expired_manual(store: Store) {
    let (past, due_now, future) = (id(1), id(2), id(3));
    let now = at(0);
    let away = |clears| manual(Manual::Away, Some(clears));
    store.seed(past, away(at(-1)), None, now).await.unwrap();
    store.seed(due_now, away(now), None, now).await.unwrap();
    store.seed(future, away(at(1)), None, now).await.unwrap();
    let states = store.read(&[past, due_now, future]).await.unwrap();
    let manuals: Vec<_> = states.iter().map(|s| s.as_ref().unwrap().manual).collect();
    assert_eq!(manuals, vec![None, None, away(at(1))]);

    // The kept one is indexed at its end; the dropped ones left nothing to sweep.
    assert!(store.sweep(now, 100).await.unwrap().is_empty());
    let swept = store.sweep(at(10_000), 100).await.unwrap();
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].after.user_id, future);
    assert_eq!(swept[0].after.manual, None);
}

pub async fn refresh_defaults_to_online_and_keeps_the_last_report(store: Store) {
    let (user, phone, laptop) = (id(1), id(101), id(102));
    seed(&store, user).await;
    let activity = |update: &Update, dev: DeviceId| {
        update
            .after
            .devices
            .iter()
            .find(|d| d.device_id == dev)
            .map(|d| d.activity)
    };
    let first = refresh(&store, user, phone, at(0)).await;
    assert_eq!(
        activity(&first, phone),
        Some(Activity::Online),
        "new device, no report"
    );
    let away = store
        .refresh(user, phone, Some(Activity::Away), TTL, at(1_000))
        .await
        .unwrap();
    assert_eq!(activity(&away, phone), Some(Activity::Away));
    let kept = refresh(&store, user, phone, at(2_000)).await;
    assert_eq!(
        activity(&kept, phone),
        Some(Activity::Away),
        "None keeps AWAY"
    );
    // A new device starts ONLINE whatever the others last reported.
    let other = refresh(&store, user, laptop, at(3_000)).await;
    assert_eq!(activity(&other, laptop), Some(Activity::Online));
    assert_eq!(activity(&other, phone), Some(Activity::Away));
    let back = store
        .refresh(user, phone, Some(Activity::Online), TTL, at(4_000))
        .await
        .unwrap();
    assert_eq!(activity(&back, phone), Some(Activity::Online));
}

pub async fn refresh_sets_last_seen_expiry_and_a_growing_version(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    let mut version = read_one(&store, user).await.unwrap().version;
    // The same instant twice: the version still grows, by one.
    for (ms, expected_version) in [
        (30_000, micros(at(30_000))),
        (30_000, micros(at(30_000)) + 1),
        (60_000, micros(at(60_000))),
    ] {
        let update = refresh(&store, user, dev, at(ms)).await;
        assert_eq!(update.before.version, version);
        assert!(update.after.version > version, "version must grow");
        assert_eq!(update.after.version, expected_version, "max(v + 1, now µs)");
        assert_eq!(update.after.last_seen, Some(at(ms)));
        assert_eq!(update.after.devices[0].expires_at, at(ms + TTL_MS));
        version = update.after.version;
    }
}

pub async fn refresh_keeps_devices_apart(store: Store) {
    let (user, low, high) = (id(1), id(101), id(102));
    seed(&store, user).await;
    refresh(&store, user, high, at(0)).await;
    let update = store
        .refresh(user, low, Some(Activity::Away), TTL, at(5_000))
        .await
        .unwrap();
    assert_eq!(
        update.before.devices,
        vec![device(high, Activity::Online, at(TTL_MS))]
    );
    // Ordered by device id, each with its own expiry and activity.
    assert_eq!(
        update.after.devices,
        vec![
            device(low, Activity::Away, at(5_000 + TTL_MS)),
            device(high, Activity::Online, at(TTL_MS)),
        ]
    );
}

pub async fn invisible_freezes_last_seen(store: Store) {
    let (user, dev) = (id(1), id(101));
    store
        .seed(user, None, Some(at(-1_000)), at(0))
        .await
        .unwrap();
    store
        .set_manual(user, manual(Manual::Invisible, None), at(0))
        .await
        .unwrap();
    let hidden = refresh(&store, user, dev, at(5_000)).await;
    assert_eq!(
        hidden.after.last_seen,
        Some(at(-1_000)),
        "frozen while invisible"
    );
    assert_eq!(hidden.after.devices.len(), 1, "the device is still live");

    // AWAY and DND do not freeze it; clearing INVISIBLE lets it move again.
    store
        .set_manual(user, manual(Manual::Dnd, None), at(6_000))
        .await
        .unwrap();
    let dnd = refresh(&store, user, dev, at(7_000)).await;
    assert_eq!(dnd.after.last_seen, Some(at(7_000)));
    store
        .set_manual(user, manual(Manual::Invisible, None), at(8_000))
        .await
        .unwrap();
    store.set_manual(user, None, at(9_000)).await.unwrap();
    let visible = refresh(&store, user, dev, at(10_000)).await;
    assert_eq!(visible.after.last_seen, Some(at(10_000)));
}

pub async fn set_manual_sets_and_clears(store: Store) {
    let user = id(1);
    seed(&store, user).await;
    let dnd = manual(Manual::Dnd, Some(at(60_000)));
    let set = store.set_manual(user, dnd, at(1_000)).await.unwrap();
    assert_eq!(set.before.manual, None);
    assert_eq!(set.after.manual, dnd);
    assert_eq!(set.after.version, micros(at(1_000)));
    assert_eq!(read_one(&store, user).await.unwrap().manual, dnd);

    let cleared = store.set_manual(user, None, at(2_000)).await.unwrap();
    assert_eq!(cleared.before.manual, dnd);
    assert_eq!(cleared.after.manual, None);
    assert!(cleared.after.version > set.after.version);
    // Clearing also dropped the timed end from the index.
    assert!(store.sweep(at(60_000), 100).await.unwrap().is_empty());

    // Replacing a timed status with an untimed one drops the old end too.
    let away_for_a_while = manual(Manual::Away, Some(at(120_000)));
    store
        .set_manual(user, away_for_a_while, at(3_000))
        .await
        .unwrap();
    let away = manual(Manual::Away, None);
    let replaced = store.set_manual(user, away, at(4_000)).await.unwrap();
    assert_eq!(replaced.before.manual, away_for_a_while);
    assert!(store.sweep(at(120_000), 100).await.unwrap().is_empty());
    assert_eq!(read_one(&store, user).await.unwrap().manual, away);
}

pub async fn remove_device_reports_before_and_after(store: Store) {
    let (user, phone, laptop) = (id(1), id(101), id(102));
    seed(&store, user).await;
    refresh(&store, user, phone, at(0)).await;
    let both = refresh(&store, user, laptop, at(10_000)).await.after;
    let removed = store.remove_device(user, phone, at(20_000)).await.unwrap();
    assert_eq!(removed.before, both);
    let laptop_only = vec![device(laptop, Activity::Online, at(10_000 + TTL_MS))];
    assert_eq!(removed.after.devices, laptop_only);
    assert!(removed.after.version > both.version);
    // Its index entry went with it: nothing is due at the phone's old expiry.
    assert!(store.sweep(at(TTL_MS), 100).await.unwrap().is_empty());
    let swept = store.sweep(at(10_000 + TTL_MS), 100).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].before.devices, laptop_only);
    assert!(swept[0].after.devices.is_empty());

    // A device without an entry: no error, no devices change.
    let none = store.remove_device(user, phone, at(100_000)).await.unwrap();
    assert_eq!(none.before.devices, none.after.devices);

    // A user the store knows nothing of: no error, nothing created.
    let stranger = id(9);
    let update = store.remove_device(stranger, phone, at(0)).await.unwrap();
    assert_eq!(update.before, update.after);
    assert_eq!(update.after.user_id, stranger);
    assert!(update.after.devices.is_empty());
    assert_eq!(read_one(&store, stranger).await, None);
}

pub async fn read_keeps_order_and_answers_none_for_unknown(store: Store) {
    let (one, two, three) = (id(1), id(2), id(3));
    seed(&store, one).await;
    seed(&store, three).await;
    refresh(&store, three, id(103), at(0)).await;
    let states = store.read(&[three, two, one, three]).await.unwrap();
    let users: Vec<_> = states
        .iter()
        .map(|s| s.as_ref().map(|s| s.user_id))
        .collect();
    assert_eq!(users, vec![Some(three), None, Some(one), Some(three)]);
    assert_eq!(states[0].as_ref().unwrap().devices.len(), 1);
    assert!(states[2].as_ref().unwrap().devices.is_empty());
    assert!(store.read(&[]).await.unwrap().is_empty());
}

pub async fn instants_are_kept_to_the_millisecond(store: Store) {
    let (user, dev) = (id(1), id(101));
    let sub_ms = |ms: i64| at(ms) + TimeDelta::microseconds(999);
    store
        .seed(
            user,
            manual(Manual::Dnd, Some(sub_ms(60_000))),
            Some(sub_ms(-1_000)),
            at(0),
        )
        .await
        .unwrap();
    let seeded = read_one(&store, user).await.unwrap();
    assert_eq!(seeded.last_seen, Some(at(-1_000)));
    assert_eq!(seeded.manual, manual(Manual::Dnd, Some(at(60_000))));

    let set = store
        .set_manual(user, manual(Manual::Away, Some(sub_ms(90_000))), sub_ms(0))
        .await
        .unwrap();
    assert_eq!(set.after.manual, manual(Manual::Away, Some(at(90_000))));
    let refreshed = store
        .refresh(user, dev, None, TTL, sub_ms(1_000))
        .await
        .unwrap();
    assert_eq!(refreshed.after.last_seen, Some(at(1_000)));
    assert_eq!(refreshed.after.devices[0].expires_at, at(1_000 + TTL_MS));
    assert_eq!(store.extend_until(sub_ms(200_000), 100).await.unwrap(), 1);
    let extended = read_one(&store, user).await.unwrap();
    assert_eq!(extended.devices[0].expires_at, at(200_000));
}
