//! A blackholed database: the test's proxy stops copying without closing or refusing anything
//! (packets dropped on a dead link, a firewall's DROP), so a statement sent on an open
//! connection gets no answer and no error. Nothing in the pool or on the server bounds that;
//! `send.commit_timeout` does (crates/store `within`), and `/readyz` stops saying ready when
//! its ping gets no answer.
//!
//! A batch given up after its COMMIT left has an unknown outcome: here the proxy holds the
//! bytes and lets them through when the link heals, so such batches DO commit after their
//! sends were answered UNAVAILABLE; the senders' retries with the same keys must find each
//! message stored once, at one seq (checked by `nothing_lost`).

use std::time::Duration;

use echo_testenv::{Server, TcpProxy, url};
use sqlx::{Connection as _, PgConnection};
use tokio::time::Instant;

use crate::checks::database_outage_checked;
use crate::load::{Sent, loaded, readiness};

/// The commit timeout this test runs with (the default is 10 s): short, to keep CI's time.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn postgres_blackholed_under_send_load_refuses_in_bounded_time_and_loses_nothing() {
    let Some(postgres) = url(Server::Postgres) else {
        return;
    };
    let (proxy, proxied) = TcpProxy::in_front_of(&postgres).await;
    let Some(mut loaded) = loaded(|config| {
        config.database_url = Some(proxied.clone());
        config.send.commit_timeout = COMMIT_TIMEOUT;
    })
    .await
    else {
        return;
    };
    let ready = readiness(&loaded.mesh, &loaded.stop);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Batches in flight when the link dies are the ones nothing else bounds (a batch that
    // starts later waits for a connection, which the pool's acquire timeout bounds): hold
    // the group's row, on a connection of the test's own, so the next batch is surely
    // waiting on the server when the blackhole starts; let it go on there at once.
    let schema = format!("{}message", loaded.mesh.config.database_schema_prefix);
    let held = hold_row(&postgres, &schema, &loaded.chat.conversation_id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Longer than the commit timeout, the pool's acquire timeout and readiness's ping
    // timeout (5 s) together with its 2 s period.
    proxy.blackhole();
    let start = Instant::now();
    release(held).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.restore();
    let outages = [(start, Instant::now())];
    let sent = loaded.finish(Duration::from_secs(5)).await;
    let ready = ready.await.expect("readiness poller");
    // A send waits for at most the batch ahead of it in its lane and its own, each given up
    // after the commit timeout; slack for a loaded machine.
    let slowest = 2 * COMMIT_TIMEOUT + Duration::from_secs(2);
    let label = "PostgreSQL blackholed (10 s)";
    // No send hangs through the blackhole, answered or refused.
    let hung: Vec<&Sent> = sent.iter().flatten().filter(|s| s.took > slowest).collect();
    assert!(hung.is_empty(), "sends held past {slowest:?}: {hung:?}");
    database_outage_checked(&sent, &ready, &outages, slowest, label);
    loaded.nothing_lost(&sent).await;
}

/// A transaction on a connection of the test's own (not through the proxy) holding the row
/// of `conversation` in `schema` (SendMessage's batches update it).
async fn hold_row(postgres: &str, schema: &str, conversation: &str) -> PgConnection {
    let mut conn = PgConnection::connect(postgres).await.expect("connect");
    for statement in [
        format!("SET search_path TO \"{schema}\""),
        "BEGIN".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("begin");
    }
    sqlx::query("SELECT 1 FROM conversations WHERE conversation_id = $1 FOR UPDATE")
        .bind(uuid::Uuid::parse_str(conversation).expect("uuid"))
        .execute(&mut conn)
        .await
        .expect("lock the conversation");
    conn
}

async fn release(mut held: PgConnection) {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut held)
        .await
        .expect("release");
    let _ = held.close().await;
}
