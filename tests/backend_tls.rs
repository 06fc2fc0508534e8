//! TLS to PostgreSQL and Redis (issue 16), against private servers the tests start: a
//! PostgreSQL that accepts TLS connections only and a `redis-server` on a TLS port only, both
//! presenting a certificate from a throwaway CA (`backend_tls/servers.rs`).
//!
//! - The store opens and migrates a service's schema over `sslmode=verify-full` with the CA
//!   as `sslrootcert`; plaintext is refused by the server; a CA that did not sign the server's
//!   certificate is refused by the client.
//! - The cache (and presence's state store) works over `rediss://` with `cache_tls_ca_file`,
//!   and is refused without it (the system's roots do not know the CA); a CA file that cannot
//!   be used is refused up front.
//! - A whole mesh runs on both TLS servers plus the shared NATS: sign-up and a message.

mod common;
#[path = "backend_tls/servers.rs"]
mod servers;

use std::path::Path;
use std::time::Duration;

use common::messages::{direct, history, send};
use echo_cache::CacheError;
use echo_store::{Database, StoreError};
use echo_testkit::{Backend, TestMesh};
use futures::StreamExt as _;
use servers::{Pki, TlsPostgres, TlsRedis};

/// Tables `echo_bus::migrations()` and message's own create, one of which is enough to show
/// the migrations ran.
const A_MESSAGE_TABLE: &str = "messages";

#[tokio::test]
async fn postgres_over_tls_verifies_the_server_and_refuses_plaintext() {
    let pki = Pki::generate();
    let Some(server) = TlsPostgres::start(&pki).await else {
        return;
    };
    let prefix = format!("{}_", echo_testenv::unique_name("tls"));

    let db = Database::connect(&server.verified_url(&pki.ca), "message", &prefix)
        .await
        .expect("connect over verify-full with the private CA");
    db.migrate(&echo_bus::migrations())
        .await
        .expect("bus migrations");
    db.migrate(&echo_message::migrations())
        .await
        .expect("message migrations");
    assert_eq!(db.uses_tls().await.unwrap(), Some(true));
    let Database::Postgres(pg) = &db else {
        panic!("a postgres url opened {}", db.backend());
    };
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(&pg.schema)
    .bind(A_MESSAGE_TABLE)
    .fetch_one(&pg.pool)
    .await
    .unwrap();
    assert_eq!(tables, 1, "migrated into {}", pg.schema);
    db.close().await;

    // The server refuses plaintext: pg_hba.conf has hostssl lines only.
    let err = Database::connect(&server.url("sslmode=disable"), "message", &prefix)
        .await
        .expect_err("plaintext must be refused");
    let StoreError::Sqlx(sqlx::Error::Database(refusal)) = &err else {
        panic!("expected the server's refusal, got {err:?}");
    };
    assert_eq!(refusal.code().as_deref(), Some("28000"), "{err}");
    assert!(refusal.message().contains("no encryption"), "{err}");

    // The client refuses a server its root certificate did not sign.
    let err = Database::connect(&server.verified_url(&pki.other_ca), "message", &prefix)
        .await
        .expect_err("an unknown CA must be refused");
    // sqlx reports rustls's verdict as an I/O error of the handshake.
    assert!(matches!(err, StoreError::Sqlx(_)), "{err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn cache_over_rediss_trusts_the_configured_ca_only() {
    let pki = Pki::generate();
    let Some(server) = TlsRedis::start(&pki) else {
        return;
    };
    let prefix = echo_testenv::unique_name("tls");

    let cache = echo_cache::connect_with_ca(&server.url(), &prefix, Some(&pki.ca))
        .await
        .expect("rediss:// with the private CA");
    cache.ping().await.unwrap();
    // Commands and pub/sub travel on separate connections: both must carry the CA.
    let mut revocations = cache.subscribe("revocations").await.unwrap();
    cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    cache.publish("revocations", b"session").await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), revocations.next()).await;
    assert_eq!(heard.expect("a message").as_deref(), Some(&b"session"[..]));

    // Presence's state store builds its own client from the same settings.
    echo_presence::state::connect(&server.url(), &prefix, Some(&pki.ca))
        .await
        .expect("presence state over rediss:// with the private CA");

    // Without the CA file the system's roots apply, and they do not know the private CA.
    let err = echo_cache::connect(&server.url(), &prefix)
        .await
        .err()
        .expect("an unknown server certificate must be refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = echo_cache::connect_with_ca(&server.url(), &prefix, Some(&pki.other_ca))
        .await
        .err()
        .expect("a CA that did not sign the server's certificate must be refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = echo_presence::state::connect(&server.url(), &prefix, None)
        .await
        .err()
        .expect("presence state: an unknown server certificate must be refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn an_unusable_ca_file_is_refused_before_connecting() {
    let pki = Pki::generate();
    let not_pem = pki.file("not-a-ca.pem", "hello\n");
    let missing = Path::new("/nonexistent/echo-ca.pem");
    // No server listens on these: each refusal comes before any connection.
    let cases = [
        (
            "redis://127.0.0.1:1",
            pki.ca.as_path(),
            "only a rediss:// url",
        ),
        ("memory://", pki.ca.as_path(), "only a rediss:// url"),
        ("rediss://127.0.0.1:1", missing, "No such file"),
        (
            "rediss://127.0.0.1:1",
            not_pem.as_path(),
            "no PEM certificate",
        ),
    ];
    for (url, ca, why) in cases {
        let err = echo_cache::connect_with_ca(url, "p", Some(ca))
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} with {ca:?} must be refused"));
        assert!(
            matches!(&err, CacheError::InvalidTlsCa { path, reason } if path == ca && reason.contains(why)),
            "{url} with {ca:?}: {err:?}"
        );
        let err = echo_presence::state::connect(url, "p", Some(ca))
            .await
            .err();
        if !url.starts_with("memory:") {
            let err = err.unwrap_or_else(|| panic!("presence: {url} with {ca:?} must be refused"));
            assert!(err.to_string().contains(why), "presence: {err}");
        }
    }
}

#[tokio::test]
async fn a_mesh_runs_on_tls_postgres_and_tls_redis() {
    let pki = Pki::generate();
    let Some(postgres) = TlsPostgres::start(&pki).await else {
        return;
    };
    let Some(redis) = TlsRedis::start(&pki) else {
        return;
    };
    let mesh = TestMesh::start_with(Backend::Real, "all", |config| {
        config.database_url = Some(postgres.verified_url(&pki.ca));
        config.cache_url = redis.url();
        config.cache_tls_ca_file = Some(pki.ca.clone());
    })
    .await;
    // The shared NATS (and the shared servers test_config looks for) are absent: skipped.
    let Some(mesh) = mesh else {
        return;
    };
    let ada = mesh.sign_up().await;
    let bob = mesh.sign_up().await;
    let conversation = direct(&mesh, &ada, &bob).await;
    let sent = send(&mesh, &ada, &conversation, "over tls").await;
    let seen = history(&mesh, &bob, &conversation.conversation_id).await;
    assert_eq!(
        seen.iter().map(|m| &m.message_id).collect::<Vec<_>>(),
        [&sent.message_id]
    );
    for (target, db) in &mesh.mesh.databases {
        assert_eq!(db.uses_tls().await.unwrap(), Some(true), "{target}");
    }
    mesh.shutdown().await;
}
