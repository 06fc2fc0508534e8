//! One suite, both stores (spec §A1, STYLE 11): every case in `writes` and `expiry` runs
//! against [`MemoryState`] and against the shared Redis under a fresh key prefix (skipped
//! loudly when Redis is absent, see `echo-testenv`). Every method takes `now`, so cases use
//! instants at fixed offsets from one base: nothing sleeps, nothing reads the clock.
//! `outage` is Redis-only: a private server killed under a live store.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use echo_ids::{DeviceId, UserId};
use echo_presence::state::{MemoryState, PresenceState, RedisState, StateError};
use echo_presence::status::{Activity, DeviceEntry, Manual, ManualStatus, Update, UserState};
use uuid::Uuid;

#[path = "state_conformance/expiry.rs"]
mod expiry;
#[path = "state_conformance/heartbeat.rs"]
mod heartbeat;
#[path = "state_conformance/outage.rs"]
mod outage;
#[path = "state_conformance/writes.rs"]
mod writes;

/// Generates one `#[tokio::test]` per case and store.
macro_rules! state_suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$module::$case(super::Store::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = super::Store::redis().await else { return };
                    super::$module::$case(store).await;
                }
            )*
        }
    };
}

state_suite! {
    writes::unseeded_writes_answer_unseeded,
    writes::seed_then_refresh_works,
    writes::seed_twice_keeps_the_first,
    writes::seed_drops_an_expired_manual,
    writes::refresh_defaults_to_online_and_keeps_the_last_report,
    writes::refresh_sets_last_seen_expiry_and_a_growing_version,
    writes::refresh_keeps_devices_apart,
    writes::invisible_freezes_last_seen,
    writes::set_manual_sets_and_clears,
    writes::remove_device_reports_before_and_after,
    writes::read_keeps_order_and_answers_none_for_unknown,
    writes::instants_are_kept_to_the_millisecond,
    expiry::sweep_removes_a_device_at_its_expiry_not_before,
    expiry::sweep_clears_a_manual_status_at_its_time_not_before,
    expiry::sweep_reports_one_update_per_user,
    expiry::sweep_respects_its_limit,
    expiry::racing_sweepers_report_each_removal_once,
    expiry::expire_within_only_shortens,
    expiry::extend_until_postpones_due_devices_only,
    expiry::extend_until_respects_its_limit,
    expiry::forget_leaves_nothing_behind,
    expiry::versions_grow_across_forget_and_seed,
    heartbeat::a_burst_of_two_then_refused_without_a_write,
    heartbeat::the_bucket_refills_on_the_callers_clock,
    heartbeat::each_device_has_its_own_bucket,
    heartbeat::an_unseeded_user_takes_no_token,
    heartbeat::a_heartbeat_reports_its_activity,
}

/// A fresh, empty store, and what it takes to open a second handle on the same data.
pub struct Store {
    state: Arc<dyn PresenceState>,
    /// `(url, key prefix)` for Redis; `None` for memory, whose handles share one `Arc`.
    redis: Option<(String, String)>,
}

impl Store {
    fn memory() -> Self {
        Self {
            state: Arc::new(MemoryState::new()),
            redis: None,
        }
    }

    async fn redis() -> Option<Self> {
        let url = echo_testenv::url(echo_testenv::Server::Redis)?;
        let prefix = echo_testenv::unique_name("t_pres");
        let state = RedisState::connect(&url, &prefix)
            .await
            .expect("connect to redis");
        Some(Self {
            state: Arc::new(state),
            redis: Some((url, prefix)),
        })
    }

    /// Another handle on this store, as a second instance would have (for Redis: another
    /// connection with the same key prefix).
    async fn another_handle(&self) -> Arc<dyn PresenceState> {
        match &self.redis {
            None => Arc::clone(&self.state),
            Some((url, prefix)) => {
                Arc::new(RedisState::connect(url, prefix).await.expect("connect"))
            }
        }
    }
}

impl Deref for Store {
    type Target = dyn PresenceState;

    fn deref(&self) -> &Self::Target {
        &*self.state
    }
}

/// A device entry's time to live in these cases (spec §A2's 75 s).
const TTL: Duration = Duration::from_secs(75);
const TTL_MS: i64 = 75_000;

/// `ms` milliseconds after the base instant of every case.
fn at(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(ms)
}

/// `now` in microseconds: the floor of the version rule.
fn micros(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_micros()).unwrap()
}

fn id<T: From<Uuid>>(n: u128) -> T {
    Uuid::from_u128(n).into()
}

fn manual(status: Manual, clears_at: Option<DateTime<Utc>>) -> Option<ManualStatus> {
    Some(ManualStatus { status, clears_at })
}

fn device(device_id: DeviceId, activity: Activity, expires_at: DateTime<Utc>) -> DeviceEntry {
    DeviceEntry {
        device_id,
        activity,
        expires_at,
    }
}

/// One user's state as the store reports it.
async fn read_one(store: &Store, user: UserId) -> Option<UserState> {
    store.read(&[user]).await.expect("read").remove(0)
}

/// Seeds `user` at `at(0)` with nothing persisted.
async fn seed(store: &Store, user: UserId) {
    store.seed(user, None, None, at(0)).await.expect("seed");
}

/// Refreshes `device` of `user` at `now` with the suite's TTL.
async fn refresh(store: &Store, user: UserId, device: DeviceId, now: DateTime<Utc>) -> Update {
    store
        .refresh(user, device, None, TTL, now)
        .await
        .expect("refresh")
}
