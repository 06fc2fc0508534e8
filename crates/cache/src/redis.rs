//! The production cache on Redis 7.
//!
//! Two `ConnectionManager`s: one multiplexed connection for commands, and a dedicated RESP3
//! connection for pub/sub whose pushes feed an in-process [`Fanout`], so any number of local
//! subscribers of a channel cost one Redis subscription. Both reconnect on their own; the
//! pub/sub one resubscribes its channels after a reconnect.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncCommands, Client, ErrorKind, Msg, ProtocolVersion, PushInfo, RedisError, Script,
    TlsCertificates,
};

use crate::fanout::Fanout;
use crate::rate::TAKE_SCRIPT;
use crate::{Cache, CacheError, RateDecision, RateLimit, ttl_ms};

/// INCR, then give the key its window only if it has none (i.e. it is new), atomically so a
/// crash between the two cannot leave a counter that never expires.
const INCR_SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"#;

/// How often the background task drops unused subscriptions and pokes the pub/sub
/// connection, which makes it reconnect (and resubscribe) after an outage even when nobody
/// calls the cache.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Tuning for [`RedisCache`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Upper bound on every call, including waiting for a reconnect. Past it the call fails
    /// with [`CacheError::Unavailable`].
    pub timeout: Duration,
    /// Upper bound on each attempt to open a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// The PEM CA bundle that verifies a `rediss://` server (see [`client`]); none trusts the
    /// system's root store.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            tls_ca_file: None,
        }
    }
}

/// A [`crate::Cache`] on Redis. Keys are `{prefix}:kv:{key}` and `{prefix}:rl:{key}`,
/// channels `{prefix}:ch:{channel}`. Cheap to clone.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    timeout: Duration,
    commands: ConnectionManager,
    pubsub: ConnectionManager,
    fanout: Arc<Fanout>,
    /// Serialises SUBSCRIBE/UNSUBSCRIBE with the fan-out's view, so a channel pruned and
    /// re-subscribed at the same moment cannot end with the UNSUBSCRIBE winning.
    subscriptions: tokio::sync::Mutex<()>,
    take: Script,
    incr: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("key_prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// A Redis client for `url`. A `rediss://` server is verified against the PEM bundle
/// `tls_ca_file` when one is given (a private CA: configuration `cache_tls_ca_file`), else
/// against the system's root store. A CA file beside a plaintext URL is refused rather than
/// silently ignored. Every Redis client in Echo is built here, so they all trust alike.
pub fn client(url: &str, tls_ca_file: Option<&Path>) -> Result<Client, CacheError> {
    let invalid = |e: RedisError| CacheError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let Some(path) = tls_ca_file else {
        return Client::open(url).map_err(invalid);
    };
    let refuse = |reason: String| CacheError::InvalidTlsCa {
        path: path.to_owned(),
        reason,
    };
    if !url.starts_with("rediss://") {
        return Err(refuse("only a rediss:// url uses it".to_owned()));
    }
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    // A file without a certificate would leave an empty trust store: every server refused,
    // later and less clearly.
    if !pem
        .windows(CERTIFICATE_PEM.len())
        .any(|w| w == CERTIFICATE_PEM)
    {
        return Err(refuse("it holds no PEM certificate".to_owned()));
    }
    let certificates = TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    Client::build_with_tls(url, certificates).map_err(|e| refuse(e.to_string()))
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

impl RedisCache {
    /// Connects to `url` (`redis://` or `rediss://`) with [`RedisOptions::default`].
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, CacheError> {
        Self::connect_with(url, key_prefix, RedisOptions::default()).await
    }

    /// Connects to `url`; fails with [`CacheError::Unavailable`] if Redis cannot be reached.
    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, CacheError> {
        let invalid = |e: RedisError| CacheError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let client = client(url, options.tls_ca_file.as_deref())?;
        // Push messages need RESP3; the command connection stays on the default protocol. The
        // connection info carries the TLS trust anchors along.
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let pubsub_client = Client::open(info.set_redis_settings(resp3)).map_err(invalid)?;

        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.connect_timeout))
            // Few retries: a call waits at most `timeout` anyway, and a reconnect that gave up
            // is restarted by the next call.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let fanout = Arc::new(Fanout::default());
        let feed = Arc::clone(&fanout);
        let pubsub_config = config
            .clone()
            .set_push_sender(move |push: PushInfo| -> Result<(), ()> {
                if let Some(msg) = Msg::from_push_info(push) {
                    feed.dispatch(msg.get_channel_name(), msg.get_payload_bytes());
                }
                Ok(())
            })
            .set_automatic_resubscription();

        let commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(classify)?;
        let pubsub = pubsub_client
            .get_connection_manager_with_config(pubsub_config)
            .await
            .map_err(classify)?;
        let inner = Arc::new(Inner {
            prefix: key_prefix.to_owned(),
            timeout: options.timeout,
            commands,
            pubsub,
            fanout,
            subscriptions: tokio::sync::Mutex::new(()),
            take: Script::new(TAKE_SCRIPT),
            incr: Script::new(INCR_SCRIPT),
        });
        tokio::spawn(maintain(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    fn key(&self, space: &str, key: &str) -> String {
        format!("{}:{space}:{key}", self.inner.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.commands.clone()
    }

    /// Runs one Redis call under the timeout, mapping its error.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, CacheError> {
        bounded(self.inner.timeout, call).await
    }
}

async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, CacheError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(CacheError::Unavailable(format!(
            "no answer from redis within {timeout:?}"
        ))),
    }
}

/// Sorts Redis errors into "unreachable right now" (callers degrade) and everything else.
fn classify(err: RedisError) -> CacheError {
    if is_transient(&err) {
        CacheError::Unavailable(err.to_string())
    } else {
        CacheError::Backend(err.to_string())
    }
}

/// True when `err` means Redis cannot be reached or cannot serve right now (I/O, timeouts,
/// dropped or refused connections, loading, failover): the errors every Redis user in Echo
/// answers with UNAVAILABLE or degrades on, rather than reporting as a bug.
pub fn is_transient(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || matches!(
            err.kind(),
            ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
            )
        )
}

/// Background upkeep for as long as the cache lives: UNSUBSCRIBE channels nobody reads any
/// more, and PING the pub/sub connection so it reconnects after an outage by itself.
async fn maintain(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(MAINTAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let mut pubsub = inner.pubsub.clone();
        {
            let _guard = inner.subscriptions.lock().await;
            let unused = inner.fanout.prune();
            if !unused.is_empty()
                && let Err(err) = bounded(inner.timeout, pubsub.unsubscribe(&unused)).await
            {
                tracing::debug!(%err, "cache unsubscribe failed; the channel stays subscribed, unread");
            }
        }
        if let Err(err) = bounded(inner.timeout, pubsub.ping::<String>()).await {
            tracing::debug!(%err, "cache pub/sub connection not answering");
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn take(
        &self,
        key: &str,
        limit: RateLimit,
        cost: u32,
    ) -> Result<RateDecision, CacheError> {
        limit.check(cost)?;
        let mut conn = self.conn();
        let mut call = self.inner.take.key(self.key("rl", key));
        call.arg(limit.capacity).arg(limit.per_ms()).arg(cost);
        let (allowed, remaining, retry_ms): (i64, u32, u64) =
            self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(if allowed == 1 {
            RateDecision::Allowed { remaining }
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_millis(retry_ms),
            }
        })
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("kv", key))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms(ttl)?);
        self.bounded(cmd.exec_async(&mut self.conn())).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key("kv", key));
        self.bounded(cmd.query_async(&mut self.conn())).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key("kv", key));
        let removed: i64 = self.bounded(cmd.query_async(&mut self.conn())).await?;
        Ok(removed > 0)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("kv", key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl)?);
        let stored: Option<String> = self.bounded(cmd.query_async(&mut self.conn())).await?;
        Ok(stored.is_some())
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, CacheError> {
        let ttl = ttl_ms(ttl)?;
        let mut conn = self.conn();
        let mut call = self.inner.incr.key(self.key("kv", key));
        call.arg(ttl);
        self.bounded(call.invoke_async(&mut conn)).await
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), CacheError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key("ch", channel)).arg(payload);
        self.bounded(cmd.exec_async(&mut self.conn())).await
    }

    async fn subscribe(&self, channel: &str) -> Result<BoxStream<'static, Vec<u8>>, CacheError> {
        let channel = self.key("ch", channel);
        let _guard = self.inner.subscriptions.lock().await;
        let (stream, first) = self.inner.fanout.subscribe(&channel);
        if first {
            let mut pubsub = self.inner.pubsub.clone();
            if let Err(err) = self.bounded(pubsub.subscribe(&channel)).await {
                drop(stream);
                self.inner.fanout.forget_if_unused(&channel);
                return Err(err);
            }
        }
        Ok(stream)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        // Both connections: a dead pub/sub connection means revocations are not arriving.
        let mut pubsub = self.inner.pubsub.clone();
        let mut commands = self.conn();
        let (a, b) = tokio::join!(
            self.bounded(commands.ping::<String>()),
            self.bounded(pubsub.ping::<String>())
        );
        a.and(b).map(drop)
    }
}
