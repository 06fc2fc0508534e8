//! What a child on the real backends owns on the shared servers: PostgreSQL schemas, JetStream
//! streams and Redis keys under a name of its own, `echo_testenv::unique_name("bench")` =
//! `bench_<ms>_<pid>_<n>` (hex; the pid is the bench's). The child never removes them, so the
//! bench does: when the child stops, when it is dropped unstopped (an error, a panic, Ctrl-C or
//! SIGTERM of the bench; see `child.rs`), and, for a bench killed outright (SIGKILL), at the
//! next real run, which stops the child such a bench left running and sweeps every `bench_*`
//! name whose process is gone from this machine. A name whose process is alive is never
//! touched: it is a bench running now.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use echo_testkit::env::{Server, unique_name, url};
use futures::TryStreamExt as _;
use sqlx::Connection as _;
use tokio::sync::OnceCell;

use crate::report::note;

/// How long each server gets for one cleanup.
const PATIENCE: Duration = Duration::from_secs(15);

/// One child's schemas, subjects and keys, and where they live.
#[derive(Debug)]
pub struct Isolation {
    name: String,
    servers: Servers,
}

/// The shared servers' URLs.
#[derive(Debug, Clone)]
struct Servers {
    postgres: String,
    nats: String,
    redis: String,
}

impl Isolation {
    /// A fresh isolation; the first of the process sweeps what killed benches left.
    pub async fn create() -> anyhow::Result<Self> {
        let need = |server: Server| {
            url(server).with_context(|| format!("{server:?} is not reachable (`just services`)"))
        };
        let servers = Servers {
            postgres: need(Server::Postgres)?,
            nats: need(Server::Nats)?,
            redis: need(Server::Redis)?,
        };
        static SWEPT: OnceCell<()> = OnceCell::const_new();
        SWEPT
            .get_or_init(async || {
                let stopped = stop_orphans().await;
                if stopped > 0 {
                    note(&format!(
                        "stopped {stopped} echo child(ren) left running by a bench that is gone"
                    ));
                }
                let swept = drop_every(&servers, Which::Orphans).await;
                if !swept.is_empty() {
                    note(&format!(
                        "swept what {} earlier bench run(s) whose process is gone left: {swept}",
                        swept.isolations.len()
                    ));
                }
            })
            .await;
        Ok(Self {
            name: unique_name("bench"),
            servers,
        })
    }

    /// The child's `ECHO_*` variables that point it at the servers under this name.
    pub fn env(&self) -> [(&'static str, String); 6] {
        let name = &self.name;
        [
            ("ECHO_DATABASE_URL", self.servers.postgres.clone()),
            ("ECHO_DATABASE_SCHEMA_PREFIX", format!("{name}_")),
            ("ECHO_BUS_URL", self.servers.nats.clone()),
            ("ECHO_BUS_SUBJECT_PREFIX", format!("{name}.")),
            ("ECHO_CACHE_URL", self.servers.redis.clone()),
            ("ECHO_CACHE_KEY_PREFIX", format!("{name}:")),
        ]
    }

    /// Point an in-process mesh's configuration at the servers under this name (what
    /// [`Isolation::env`] does for a child).
    pub fn apply(&self, config: &mut echo_config::Config) {
        let name = &self.name;
        config.database_url = Some(self.servers.postgres.clone());
        config.database_schema_prefix = format!("{name}_");
        config.bus_url = self.servers.nats.clone();
        config.bus_subject_prefix = format!("{name}.");
        config.cache_url = self.servers.redis.clone();
        config.cache_key_prefix = format!("{name}:");
    }

    /// Drop everything under this name (its server must be gone), saying what on stderr.
    pub async fn drop_all(self) {
        let dropped = drop_every(&self.servers, Which::This(&self.name)).await;
        note(&format!("dropped {}: {dropped}", self.name));
    }

    /// [`Isolation::drop_all`] from synchronous code (a `Drop`): on a thread of its own with
    /// a runtime of its own, so it also works while the caller's runtime is blocked or ending.
    pub fn drop_all_blocking(self) {
        let cleanup =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(self.drop_all()),
                    Err(error) => eprintln!("warning: could not drop {}: {error}", self.name),
                }
            });
        let _ = cleanup.join();
    }
}

/// Which names a cleanup takes.
#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    /// Those of this isolation.
    This(&'a str),
    /// Those of every bench process that is no longer running.
    Orphans,
}

impl Which<'_> {
    /// The isolation `name` belongs to, if this cleanup takes it.
    fn takes(self, name: &str) -> Option<String> {
        let (isolation, pid) = owner(name)?;
        let taken = match self {
            Which::This(this) => isolation == this,
            Which::Orphans => !alive(pid),
        };
        taken.then_some(isolation)
    }
}

/// The isolation a schema, stream (upper case) or key belongs to, and the bench process that
/// made it: `bench_<12 hex>_<hex pid>_<hex n>` followed by nothing, `_…` or `:…`. Any other
/// name is not the bench's.
fn owner(name: &str) -> Option<(String, u32)> {
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix("bench_")?;
    let head = rest.split(':').next()?;
    let mut parts = head.splitn(4, '_');
    let (millis, pid, count) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if millis.len() != 12 || !hex(millis) || !hex(pid) || !hex(count) {
        return None;
    }
    let id = u32::from_str_radix(pid, 16).ok()?;
    Some((format!("bench_{millis}_{pid}_{count}"), id))
}

/// Whether process `pid` runs on this machine (pids are only reused after a full cycle, so a
/// live pid is taken to be the bench that made the name). A zombie has ended.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S …`: the state follows the last parenthesis (comm may hold any).
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
    })
}

/// Stop the echo children of benches that are gone: a bench killed outright (SIGKILL) could
/// not stop its child, which keeps its connections (and would write into what the sweep
/// drops). Found by the isolation in their environment; SIGTERM, SIGKILL after 15 s; their
/// data directory removed. How many there were.
async fn stop_orphans() -> usize {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let orphans: Vec<(u32, Option<String>)> = processes
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            // Unreadable (another user's process) or gone meanwhile: not ours.
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let var = |name: &str| {
                environ
                    .split(|&b| b == 0)
                    .find_map(|entry| entry.strip_prefix(name.as_bytes()))
                    .map(|value| String::from_utf8_lossy(value).into_owned())
            };
            let (_, bench) = owner(&var("ECHO_DATABASE_SCHEMA_PREFIX=")?)?;
            (!alive(bench) && alive(pid)).then(|| (pid, var("ECHO_DATA_DIR=")))
        })
        .collect();
    for (pid, _) in &orphans {
        signal("-TERM", *pid).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while orphans.iter().any(|(pid, _)| alive(*pid)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (pid, data_dir) in &orphans {
        if alive(*pid) {
            signal("-KILL", *pid).await;
        }
        // Only a directory the bench made (`echo-bench…` in the temporary directory).
        if let Some(dir) = data_dir.as_deref().map(std::path::Path::new)
            && dir.parent() == Some(std::env::temp_dir().as_path())
            && dir
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("echo-bench"))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    orphans.len()
}

/// Send `signal` (`-TERM`, `-KILL`) to `pid` (`kill`: the workspace forbids unsafe code).
async fn signal(signal: &str, pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await;
}

/// What a cleanup dropped, and what it could not.
#[derive(Debug, Default)]
struct Dropped {
    isolations: BTreeSet<String>,
    schemas: usize,
    streams: usize,
    keys: usize,
    errors: Vec<String>,
}

impl Dropped {
    fn is_empty(&self) -> bool {
        self.isolations.is_empty() && self.errors.is_empty()
    }

    fn count(
        &mut self,
        server: &str,
        outcome: Result<anyhow::Result<Vec<String>>, impl fmt::Debug>,
    ) -> usize {
        match outcome {
            Ok(Ok(isolations)) => {
                let count = isolations.len();
                self.isolations.extend(isolations);
                count
            }
            Ok(Err(error)) => {
                self.errors.push(format!("{server}: {error:#}"));
                0
            }
            Err(_) => {
                self.errors
                    .push(format!("{server}: no answer within {PATIENCE:?}"));
                0
            }
        }
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} schema(s), {} stream(s), {} key(s)",
            self.schemas, self.streams, self.keys
        )?;
        if !self.errors.is_empty() {
            write!(f, "; NOT dropped: {}", self.errors.join("; "))?;
        }
        Ok(())
    }
}

/// Drop what `which` takes on each server (each one's failure is reported, not fatal).
async fn drop_every(servers: &Servers, which: Which<'_>) -> Dropped {
    let mut dropped = Dropped::default();
    let schemas = tokio::time::timeout(PATIENCE, drop_schemas(&servers.postgres, which)).await;
    dropped.schemas = dropped.count("PostgreSQL", schemas);
    let streams = tokio::time::timeout(PATIENCE, drop_streams(&servers.nats, which)).await;
    dropped.streams = dropped.count("NATS", streams);
    let keys = tokio::time::timeout(PATIENCE, drop_keys(&servers.redis, which)).await;
    dropped.keys = dropped.count("Redis", keys);
    dropped
}

/// `DROP SCHEMA … CASCADE` of each `bench_*` schema taken; the owners of those dropped.
async fn drop_schemas(url: &str, which: Which<'_>) -> anyhow::Result<Vec<String>> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'bench\\_%'")
            .fetch_all(&mut conn)
            .await?;
    let mut owners = Vec::new();
    for name in names {
        let Some(owner) = which.takes(&name) else {
            continue;
        };
        // `owner` accepted only letters, digits and underscores: the name quotes safely.
        let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .with_context(|| format!("drop schema {name}"))?;
        owners.push(owner);
    }
    conn.close().await?;
    Ok(owners)
}

/// Delete each `BENCH_*` JetStream stream taken (its consumers go with it).
async fn drop_streams(url: &str, which: Which<'_>) -> anyhow::Result<Vec<String>> {
    let jetstream = async_nats::jetstream::new(async_nats::connect(url).await?);
    let names: Vec<String> = jetstream.stream_names().try_collect().await?;
    let mut owners = Vec::new();
    for name in names {
        let Some(owner) = which.takes(&name) else {
            continue;
        };
        jetstream
            .delete_stream(&name)
            .await
            .with_context(|| format!("delete stream {name}"))?;
        owners.push(owner);
    }
    Ok(owners)
}

/// UNLINK each `bench_*` key taken.
async fn drop_keys(url: &str, which: Which<'_>) -> anyhow::Result<Vec<String>> {
    use redis::AsyncCommands as _;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut taken = Vec::new();
    let mut owners = Vec::new();
    {
        let mut keys = conn.scan_match::<_, String>("bench_*").await?;
        while let Some(key) = keys.next_item().await {
            let key = key?;
            if let Some(owner) = which.takes(&key) {
                taken.push(key);
                owners.push(owner);
            }
        }
    }
    for batch in taken.chunks(500) {
        redis::cmd("UNLINK")
            .arg(batch)
            .query_async::<u64>(&mut conn)
            .await?;
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_bench_name_their_isolation_and_process() {
        let isolation = "bench_01a251415cc9_1272_0";
        for name in [
            "bench_01a251415cc9_1272_0_auth",
            "BENCH_01A251415CC9_1272_0_ECHO_AUTH",
            "bench_01a251415cc9_1272_0::pres:u:01a25141-6508",
        ] {
            assert_eq!(owner(name), Some((isolation.to_owned(), 0x1272)), "{name}");
        }
        // Not the bench's: other tests' names, or a bench_ name of another shape.
        for name in [
            "t_01a251415cc9_1272_0_auth",
            "bench_results",
            "bench_01a2_1272_0_auth",
            "bench_01a251415cc9_zz_0_auth",
            "echo_auth",
        ] {
            assert_eq!(owner(name), None, "{name}");
        }
    }

    #[test]
    fn a_cleanup_takes_its_own_names_or_those_of_gone_processes() {
        let mine = unique_name("bench");
        let schema = format!("{mine}_message");
        assert_eq!(Which::This(&mine).takes(&schema), Some(mine.clone()));
        // `…_1` is not a prefix match of `…_10`.
        let sibling = format!("{mine}0_message");
        assert_eq!(Which::This(&mine).takes(&sibling), None);
        // This process is alive: a sweep leaves its names alone.
        assert_eq!(Which::Orphans.takes(&schema), None);
        // No process has pid 0x7ffffffe (above Linux's pid_max limit of 2^22).
        let gone = "bench_01a251415cc9_7ffffffe_0_auth";
        assert_eq!(
            Which::Orphans.takes(gone),
            Some("bench_01a251415cc9_7ffffffe_0".to_owned())
        );
    }
}
