//! Pushes, targets and clients the tests share.

use std::collections::BTreeMap;

use chrono::{Duration as Days, Utc};
use echo_push::fake::FakePushServer;
use echo_push::{Outcome, Push, PushKind, Target};
use uuid::Uuid;

/// An alert with every field set: badge 3, seq 42, a conversation and a message.
pub fn alert() -> Push {
    Push {
        kind: PushKind::Alert,
        title: Some("Ada".into()),
        body: Some("are we still on for lunch?".into()),
        badge: 3,
        conversation_id: Some(Uuid::now_v7()),
        message_id: Some(Uuid::now_v7()),
        seq: Some(42),
        silent: false,
        job_id: Uuid::now_v7(),
        data: BTreeMap::from([("kind".to_owned(), "mention".to_owned())]),
    }
}

/// The same push of another kind.
pub fn of_kind(kind: PushKind) -> Push {
    Push {
        kind,
        title: None,
        body: None,
        ..alert()
    }
}

/// A target registered yesterday.
pub fn target(token: &str) -> Target {
    Target::new(token, Utc::now() - Days::days(1))
}

/// A random APNs device token (64 hex digits).
pub fn device_token() -> String {
    format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple())
}

/// A client that trusts the fake, for requests the providers would never send.
pub fn raw_client(fake: &FakePushServer, http2_only: bool) -> reqwest::Client {
    echo_push::install_crypto_provider();
    let certs = reqwest::Certificate::from_pem_bundle(fake.ca_pem().as_bytes()).unwrap();
    let builder = certs
        .into_iter()
        .fold(reqwest::Client::builder(), |builder, cert| {
            builder.add_root_certificate(cert)
        });
    let builder = if http2_only {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build().unwrap()
}

/// The JWT with one character in the middle of its signature changed.
pub fn tamper_signature(jwt: &str) -> String {
    let start = jwt.rfind('.').unwrap() + 10;
    let mut bytes = jwt.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// A short name for an outcome, so tables of cases read as the spec's table.
pub fn label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Prune { .. } => "prune",
        Outcome::Drop { .. } => "drop",
        Outcome::Retry { after: None } => "retry",
        Outcome::Retry { after: Some(after) } if *after == std::time::Duration::from_secs(1) => {
            "retry after 1s"
        }
        Outcome::Retry { after: Some(_) } => "retry after something else",
        Outcome::CredentialError { .. } => "credential",
    }
}
