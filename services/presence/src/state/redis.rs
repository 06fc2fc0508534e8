//! The production presence state on Redis 7.0, in Centrifuge's layout (spec §A1). Redis 7.0
//! has no per-field TTL, so expiry is one sorted set that sweepers drain, and every mutation
//! is one Lua script (`lua/*.lua`): a hash and the index never disagree, and of two racing
//! sweepers only the one whose ZREM succeeds reports the removal.
//!
//! Keys, all under the key prefix:
//! - `{prefix}:pres:u:{user}` HASH: `k` = "1" once seeded; `d:{device}` = `{activity}|{expires_ms}`
//!   (activity `o` ONLINE, `a` AWAY); `m` = `{manual}|{clears_ms or empty}` (`a` AWAY, `d` DND,
//!   `i` INVISIBLE), absent when none; `ls` = last_seen ms, absent when never seen; `v` = version.
//! - `{prefix}:pres:exp` ZSET: `d:{user}:{device}` scored by the entry's expiry, `m:{user}` by
//!   the manual status's `clears_ms`.
//! - `{prefix}:pres:hb:{device}` HASH: the device's heartbeat bucket, echo-cache's token bucket
//!   (`tokens`, `at` in ms of the callers' clock), expiring once it would be full again.
//!
//! Each hash (and the index) expires [`HASH_TTL`] after its last write, so users idle for a
//! week cost no memory; they are unseeded then and reload from the database like after a flush.
//! One Redis holds all of a prefix's keys: sweep scripts compute hash keys from index members,
//! which Redis Cluster would refuse.
//!
//! The rules a script cannot avoid (seeded or not, the version bump, what a sweep removes) are
//! those of `memory.rs`; `tests/state_conformance.rs` holds both to them. One file because the
//! layout, the arguments each script takes and the decoder of its replies change together.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use echo_ids::{DeviceId, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script, ScriptInvocation, Value};

use echo_cache::RateLimit;

use super::{PresenceState, StateError, duration_ms, from_millis, millis};
use crate::status::{Activity, DeviceEntry, Manual, ManualStatus, Update, UserState};

/// The bound on each call when none is given (as the cache's `RedisOptions`).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// The bound on each attempt to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a user's hash outlives its last write. Longer than any `clear_after` (7 d at most),
/// so a timed status is swept, not forgotten, while its user is still held.
const HASH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One script per mutation, each prefixed with the shared helpers.
struct Scripts {
    refresh: Script,
    heartbeat: Script,
    expire_within: Script,
    remove_device: Script,
    set_manual: Script,
    seed: Script,
    sweep: Script,
    extend_until: Script,
    forget: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| {
            Script::new(&format!(
                "local HASH_TTL_MS = {}\n{}\n{body}",
                HASH_TTL.as_millis(),
                include_str!("lua/common.lua")
            ))
        };
        // The cache's token bucket, the same Lua as its rate limits run.
        let heartbeat = format!(
            "{}\n{}",
            echo_cache::TAKE_FUNCTION,
            include_str!("lua/heartbeat.lua")
        );
        Self {
            refresh: script(include_str!("lua/refresh.lua")),
            heartbeat: script(&heartbeat),
            expire_within: script(include_str!("lua/expire_within.lua")),
            remove_device: script(include_str!("lua/remove_device.lua")),
            set_manual: script(include_str!("lua/set_manual.lua")),
            seed: script(include_str!("lua/seed.lua")),
            sweep: script(include_str!("lua/sweep.lua")),
            extend_until: script(include_str!("lua/extend_until.lua")),
            forget: script(include_str!("lua/forget.lua")),
        }
    }
}

/// [`PresenceState`] on Redis: one multiplexed connection that reconnects by itself.
pub struct RedisState {
    conn: ConnectionManager,
    /// `{prefix}:pres:u:`, to which a user id is appended (the sweep scripts get it too).
    users: String,
    /// `{prefix}:pres:exp`.
    exp: String,
    /// `{prefix}:pres:hb:`, to which a device id is appended.
    buckets: String,
    timeout: Duration,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("index", &self.exp)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connects to `url` (`redis://` or `rediss://`), bounding each call to 250 ms.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StateError> {
        Self::connect_with(url, key_prefix, DEFAULT_TIMEOUT).await
    }

    /// Connects to `url`, verifying a `rediss://` server against the PEM CA bundle
    /// `tls_ca_file` (the cache's `cache_tls_ca_file`) instead of the system's root store.
    pub async fn connect_with_ca(
        url: &str,
        key_prefix: &str,
        tls_ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StateError> {
        let client = echo_cache::redis_client(url, tls_ca_file).map_err(StateError::Client)?;
        Self::open(client, key_prefix, DEFAULT_TIMEOUT).await
    }

    /// Connects to `url`; every later call fails with [`StateError::Unavailable`] when Redis
    /// has not answered within `timeout` (reconnecting included).
    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StateError> {
        let client = Client::open(url).map_err(StateError::Redis)?;
        Self::open(client, key_prefix, timeout).await
    }

    async fn open(client: Client, key_prefix: &str, timeout: Duration) -> Result<Self, StateError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Few retries: a call waits at most `timeout` anyway, and the next call restarts a
            // reconnect that gave up.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = bounded(
            CONNECT_TIMEOUT + timeout,
            client.get_connection_manager_with_config(config),
        )
        .await?;
        Ok(Self {
            conn,
            users: format!("{key_prefix}:pres:u:"),
            exp: format!("{key_prefix}:pres:exp"),
            buckets: format!("{key_prefix}:pres:hb:"),
            timeout,
            scripts: Scripts::new(),
        })
    }

    fn user_key(&self, user: UserId) -> String {
        format!("{}{user}", self.users)
    }

    /// A script on `user`'s hash: KEYS = hash, index; ARGV starts with the user and `now` in
    /// microseconds (the clock of the version rule).
    fn on_user<'s>(
        &self,
        script: &'s Script,
        user: UserId,
        now: DateTime<Utc>,
    ) -> ScriptInvocation<'s> {
        let mut call = script.key(self.user_key(user));
        call.key(&self.exp)
            .arg(user.to_string())
            .arg(now.timestamp_micros());
        call
    }

    async fn run(&self, call: &ScriptInvocation<'_>) -> Result<Value, StateError> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, call.invoke_async(&mut conn)).await
    }

    /// A refresh (or heartbeat) of `device`: the arguments both scripts start with.
    fn on_device<'s>(
        &self,
        script: &'s Script,
        (user, device): (UserId, DeviceId),
        activity: Option<Activity>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> ScriptInvocation<'s> {
        let mut call = self.on_user(script, user, now);
        call.arg(device.to_string())
            .arg(activity.map_or("", |a| code(&ACTIVITIES, a)))
            .arg(millis(now))
            .arg(millis(now) + duration_ms(ttl));
        call
    }

    /// Runs a write script answering `{before, after}`, false when `user` is unseeded, or (a
    /// heartbeat refused) the wait in ms.
    async fn write(&self, call: &ScriptInvocation<'_>, user: UserId) -> Result<Update, StateError> {
        let reply = self.run(call).await?;
        match reply {
            Value::Nil => return Err(StateError::Unseeded(user)),
            Value::Int(wait_ms) => {
                let wait_ms = u64::try_from(wait_ms).map_err(|_| malformed())?;
                return Err(StateError::Limited(Duration::from_millis(wait_ms)));
            }
            _ => {}
        }
        let [before, after] = <[Value; 2]>::try_from(array(reply)?).map_err(|_| malformed())?;
        update(user, before, after)
    }
}

async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StateError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(StateError::TimedOut(timeout)),
    }
}

/// "Unreachable right now" (callers answer UNAVAILABLE and retry) versus everything else,
/// by the cache's rule.
fn classify(err: RedisError) -> StateError {
    if echo_cache::is_transient_redis_error(&err) {
        StateError::Unavailable(err)
    } else {
        StateError::Redis(err)
    }
}

// The one-letter codes of the hash fields (the scripts read only the letter and the `|`).
const ACTIVITIES: [(Activity, &str); 2] = [(Activity::Online, "o"), (Activity::Away, "a")];
const MANUALS: [(Manual, &str); 3] = [
    (Manual::Away, "a"),
    (Manual::Dnd, "d"),
    (Manual::Invisible, "i"),
];

fn code<T: PartialEq>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("", |(_, c)| c)
}

fn decode<T: Copy>(table: &[(T, &str)], code: &str) -> Option<T> {
    table.iter().find(|(_, c)| *c == code).map(|(v, _)| *v)
}

/// An optional instant as a script argument: ms, or empty for none.
fn ms_arg(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| millis(at).to_string()).unwrap_or_default()
}

/// `(field m, clears_ms)` for a manual status, both empty for none.
fn manual_args(manual: Option<ManualStatus>) -> (String, String) {
    let Some(manual) = manual else {
        return (String::new(), String::new());
    };
    let clears = ms_arg(manual.clears_at);
    (
        format!("{}|{clears}", code(&MANUALS, manual.status)),
        clears,
    )
}

/// A `limit` for a script: Lua prints numbers past 10^14 in exponent form, which Redis
/// refuses as a count; no sweep holds 4 billion entries anyway.
fn limit_arg(limit: usize) -> u32 {
    u32::try_from(limit).unwrap_or(u32::MAX)
}

fn malformed() -> StateError {
    StateError::Malformed("unexpected reply from a presence script".into())
}

fn array(value: Value) -> Result<Vec<Value>, StateError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(malformed()),
    }
}

fn text(value: &Value) -> Result<&str, StateError> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).map_err(|_| malformed()),
        Value::SimpleString(s) => Ok(s),
        _ => Err(malformed()),
    }
}

/// A user's hash (HGETALL, flat field/value pairs) as its state; `None` when not seeded.
fn user_state(user: UserId, hash: Value) -> Result<Option<UserState>, StateError> {
    let corrupt = |field: &str, value: &str| {
        StateError::Malformed(format!(
            "corrupt presence field {field}={value:?} of {user}"
        ))
    };
    let number = |field: &str, value: &str| value.parse::<i64>().map_err(|_| corrupt(field, value));
    let items = array(hash)?;
    let mut state = UserState::empty(user);
    let mut seeded = false;
    for pair in items.chunks(2) {
        let [field, value] = pair else {
            return Err(malformed());
        };
        let (field, value) = (text(field)?, text(value)?);
        let bad = || corrupt(field, value);
        match field {
            "k" => seeded = true,
            "v" => state.version = value.parse().map_err(|_| bad())?,
            "ls" => state.last_seen = Some(from_millis(number(field, value)?)),
            "m" => {
                let (code, clears) = value.split_once('|').ok_or_else(bad)?;
                let status = decode(&MANUALS, code).ok_or_else(bad)?;
                let clears_at = match clears {
                    "" => None,
                    ms => Some(from_millis(number(field, ms)?)),
                };
                state.manual = Some(ManualStatus { status, clears_at });
            }
            _ => {
                let device = field
                    .strip_prefix("d:")
                    .and_then(|id| id.parse::<DeviceId>().ok())
                    .ok_or_else(bad)?;
                let (code, expires) = value.split_once('|').ok_or_else(bad)?;
                let activity = decode(&ACTIVITIES, code).ok_or_else(bad)?;
                state.devices.push(DeviceEntry {
                    device_id: device,
                    activity,
                    expires_at: from_millis(number(field, expires)?),
                });
            }
        }
    }
    // The embedded store keeps devices ordered by id; a hash has no order.
    state.devices.sort_by_key(|d| d.device_id);
    Ok(seeded.then_some(state))
}

/// Both sides of a change; a write script only runs on a seeded hash, so both are there.
fn update(user: UserId, before: Value, after: Value) -> Result<Update, StateError> {
    Ok(Update {
        before: user_state(user, before)?.ok_or_else(malformed)?,
        after: user_state(user, after)?.ok_or_else(malformed)?,
    })
}

#[async_trait]
impl PresenceState for RedisState {
    async fn refresh(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Option<Activity>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let call = self.on_device(&self.scripts.refresh, (user, device), activity, ttl, now);
        self.write(&call, user).await
    }

    async fn heartbeat(
        &self,
        user: UserId,
        device: DeviceId,
        activity: Activity,
        ttl: Duration,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let script = &self.scripts.heartbeat;
        let mut call = self.on_device(script, (user, device), Some(activity), ttl, now);
        call.key(format!("{}{device}", self.buckets))
            .arg(limit.capacity)
            .arg(limit.per_ms());
        // The script's bucket clock is `now_us` / 1000: `bucket_ms(now)`, as memory.rs.
        self.write(&call, user).await
    }

    async fn expire_within(
        &self,
        user: UserId,
        device: DeviceId,
        within: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut call = self.on_user(&self.scripts.expire_within, user, now);
        call.arg(device.to_string())
            .arg(millis(now) + duration_ms(within));
        self.run(&call).await.map(drop)
    }

    async fn remove_device(
        &self,
        user: UserId,
        device: DeviceId,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let mut call = self.on_user(&self.scripts.remove_device, user, now);
        call.arg(device.to_string());
        match self.write(&call, user).await {
            // Nothing to remove from a user this store knows nothing of (as memory.rs).
            Err(StateError::Unseeded(_)) => {
                let empty = UserState::empty(user);
                Ok(Update {
                    before: empty.clone(),
                    after: empty,
                })
            }
            other => other,
        }
    }

    async fn set_manual(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        now: DateTime<Utc>,
    ) -> Result<Update, StateError> {
        let (field, clears) = manual_args(manual);
        let mut call = self.on_user(&self.scripts.set_manual, user, now);
        call.arg(field).arg(clears);
        self.write(&call, user).await
    }

    async fn read(&self, users: &[UserId]) -> Result<Vec<Option<UserState>>, StateError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip however many users.
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("HGETALL").arg(self.user_key(*user));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<Value> = bounded(self.timeout, pipe.query_async(&mut conn)).await?;
        if hashes.len() != users.len() {
            return Err(malformed());
        }
        users
            .iter()
            .zip(hashes)
            .map(|(user, hash)| user_state(*user, hash))
            .collect()
    }

    async fn seed(
        &self,
        user: UserId,
        manual: Option<ManualStatus>,
        last_seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        // A status whose end has passed is no status (nothing swept it while unseeded).
        let manual = manual.filter(|m| m.clears_at.is_none_or(|at| at > now));
        let (field, clears) = manual_args(manual);
        let mut call = self.on_user(&self.scripts.seed, user, now);
        call.arg(field).arg(clears).arg(ms_arg(last_seen));
        self.run(&call).await.map(drop)
    }

    async fn sweep(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Update>, StateError> {
        let mut call = self.scripts.sweep.key(&self.exp);
        call.arg(&self.users)
            .arg(millis(now))
            .arg(limit_arg(limit))
            .arg(now.timestamp_micros());
        // `{user, before, after, ...}`, one triple per user changed.
        let mut reply = array(self.run(&call).await?)?.into_iter();
        let mut updates = Vec::new();
        while let Some(user) = reply.next() {
            let (Some(before), Some(after)) = (reply.next(), reply.next()) else {
                return Err(malformed());
            };
            let user: UserId = text(&user)?.parse().map_err(|_| malformed())?;
            updates.push(update(user, before, after)?);
        }
        Ok(updates)
    }

    async fn extend_until(&self, until: DateTime<Utc>, limit: usize) -> Result<usize, StateError> {
        let mut call = self.scripts.extend_until.key(&self.exp);
        call.arg(&self.users)
            .arg(millis(until))
            .arg(limit_arg(limit));
        match self.run(&call).await? {
            Value::Int(n) => usize::try_from(n).map_err(|_| malformed()),
            _ => Err(malformed()),
        }
    }

    async fn forget(&self, user: UserId) -> Result<(), StateError> {
        let mut call = self.scripts.forget.key(self.user_key(user));
        call.key(&self.exp).arg(user.to_string());
        self.run(&call).await.map(drop)
    }
}
