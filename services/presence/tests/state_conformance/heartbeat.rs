//! Heartbeats: the refresh behind the device's rate limit, in one step of the store.

use echo_cache::RateLimit;

use super::*;

/// Presence's heartbeat rule: a burst of 2, then 1 a second.
const LIMIT: RateLimit = RateLimit {
    capacity: 2,
    refill_per_second: 1.0,
};

async fn beat(
    store: &Store,
    user: UserId,
    device: DeviceId,
    now: DateTime<Utc>,
) -> Result<Update, StateError> {
    store
        .heartbeat(user, device, Activity::Online, TTL, LIMIT, now)
        .await
}

fn assert_limited(result: Result<Update, StateError>, within: std::ops::RangeInclusive<Duration>) {
    match result {
        Err(StateError::Limited(wait)) if within.contains(&wait) => {}
        other => panic!("expected Limited within {within:?}, got {other:?}"),
    }
}

pub async fn a_burst_of_two_then_refused_without_a_write(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    let first = beat(&store, user, dev, at(1_000)).await.expect("first");
    assert_eq!(
        first.after.devices,
        vec![device(dev, Activity::Online, at(1_000 + TTL_MS))]
    );
    let second = beat(&store, user, dev, at(1_010)).await.expect("a retry");
    assert_eq!(second.after.last_seen, Some(at(1_010)));
    let written = read_one(&store, user).await;

    // Two tokens spent 10 ms apart: 0.02 came back by 1,020, the rest takes 980 ms.
    let refused = beat(&store, user, dev, at(1_020)).await;
    assert_limited(
        refused,
        Duration::from_millis(979)..=Duration::from_millis(981),
    );
    assert_eq!(
        read_one(&store, user).await,
        written,
        "a refused heartbeat writes nothing: no expiry, last_seen or version"
    );
}

pub async fn the_bucket_refills_on_the_callers_clock(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    for _ in 0..2 {
        beat(&store, user, dev, at(0)).await.expect("the burst");
    }
    assert_limited(
        beat(&store, user, dev, at(999)).await,
        Duration::from_millis(1)..=Duration::from_millis(2),
    );
    let update = beat(&store, user, dev, at(1_000))
        .await
        .expect("one a second");
    assert_eq!(update.after.last_seen, Some(at(1_000)));
    assert_limited(
        beat(&store, user, dev, at(1_000)).await,
        Duration::from_millis(999)..=Duration::from_millis(1_000),
    );
    // A clock stepping back mints nothing.
    assert_limited(
        beat(&store, user, dev, at(0)).await,
        Duration::from_millis(999)..=Duration::from_millis(1_000),
    );
    // An idle device is back to a full burst, however long it was away.
    for _ in 0..2 {
        beat(&store, user, dev, at(60_000))
            .await
            .expect("a burst again");
    }
    assert_limited(
        beat(&store, user, dev, at(60_000)).await,
        Duration::from_millis(999)..=Duration::from_millis(1_000),
    );
}

pub async fn each_device_has_its_own_bucket(store: Store) {
    let (user, phone, laptop) = (id(1), id(101), id(102));
    let other_user = id(2);
    seed(&store, user).await;
    seed(&store, other_user).await;
    for _ in 0..2 {
        beat(&store, user, phone, at(0)).await.expect("phone");
    }
    assert_limited(
        beat(&store, user, phone, at(0)).await,
        Duration::from_millis(999)..=Duration::from_millis(1_000),
    );
    let update = beat(&store, user, laptop, at(0)).await.expect("laptop");
    assert_eq!(update.after.devices.len(), 2);
    beat(&store, other_user, id(201), at(0))
        .await
        .expect("another user's device");
    // A refresh (an open Subscribe stream) is not a heartbeat: it takes no token.
    refresh(&store, user, phone, at(10)).await;
}

pub async fn an_unseeded_user_takes_no_token(store: Store) {
    let (user, dev) = (id(1), id(101));
    for _ in 0..3 {
        match beat(&store, user, dev, at(0)).await {
            Err(StateError::Unseeded(who)) if who == user => {}
            other => panic!("expected Unseeded({user}), got {other:?}"),
        }
    }
    assert_eq!(read_one(&store, user).await, None, "nothing written");
    seed(&store, user).await;
    for _ in 0..2 {
        beat(&store, user, dev, at(0))
            .await
            .expect("the whole burst is left");
    }
}

pub async fn a_heartbeat_reports_its_activity(store: Store) {
    let (user, dev) = (id(1), id(101));
    seed(&store, user).await;
    let away = store
        .heartbeat(user, dev, Activity::Away, TTL, LIMIT, at(0))
        .await
        .expect("away");
    assert_eq!(
        away.after.devices,
        vec![device(dev, Activity::Away, at(TTL_MS))]
    );
    // A refresh without a report keeps it; the next heartbeat replaces it.
    let kept = refresh(&store, user, dev, at(10)).await;
    assert_eq!(kept.after.devices[0].activity, Activity::Away);
    let online = beat(&store, user, dev, at(1_000)).await.expect("online");
    assert_eq!(online.after.devices[0].activity, Activity::Online);
}
