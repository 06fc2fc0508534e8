//! A split mesh of real processes in production mode: `echo --target auth` and
//! `echo --target edge` (forwarding to auth) sharing Postgres, NATS and Redis. A token issued
//! through the edge is accepted there, then refused within a second of logout. Codes travel
//! through the production webhook sender to a receiver inside the test.
//!
//! Only auth holds the private signing key: the edge verifies with the keys it fetches from
//! auth's GetSigningKeys, and `echo --target message` with the public key alone, from a file.
//! Auth's admin API reaches message's internal port (`admin.message_internal_url`) with the
//! service secret both are given.

mod common;

use std::time::{Duration, Instant};

use common::processes::{auth_env, backends, serving, sign_up, spawn, webhook};
use echo_proto::echo::auth::v1 as pb;
use echo_testenv::unique_name;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// An operator token of this test (production refuses the test kit's published one) and its
/// SHA-256, as `admin.operator_tokens_file` lists it.
const OPERATOR_TOKEN: &str = "c3BsaXQtbWVzaC1vcGVyYXRvci10b2tlbi1mb3ItdGhlLXRlc3Q";
const OPERATOR_SHA256: &str = "17d9a704c2beecc5f8ec871fb82d0747498d956a81c4164c263e96af43b6a803";

fn authed(
    channel: Channel,
    token: &str,
) -> pb::auth_service_client::AuthServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, impl tonic::service::Interceptor>,
> {
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    pb::auth_service_client::AuthServiceClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        },
    )
}

#[tokio::test]
async fn a_token_issued_through_the_edge_is_refused_there_within_a_second_of_logout() {
    let Some(backends) = backends() else {
        return;
    };
    let key = echo_authn::SigningKey::generate().unwrap();
    let (webhook, inbox) = webhook().await;
    let data = tempfile::tempdir().unwrap();
    let mut auth = spawn("auth", &auth_env(&backends, &key, &webhook), data.path());
    serving(&mut auth).await;
    // The edge gets no key at all: it fetches the public ones from auth, its upstream.
    let upstream = format!("http://127.0.0.1:{}", auth.port);
    let mut edge_env = backends.clone();
    for service in ["AUTH", "USER", "MESSAGE", "PRESENCE", "NOTIFICATION"] {
        edge_env.push((format!("ECHO_UPSTREAMS__{service}"), upstream.clone()));
    }
    let mut edge = spawn("edge", &edge_env, data.path());
    let channel = serving(&mut edge).await;
    let client = pb::auth_service_client::AuthServiceClient::new(channel.clone());
    let tokens = sign_up(channel.clone(), &inbox).await;

    // The token works through the edge (checked there, forwarded, checked again by auth).
    let sessions = authed(channel.clone(), &tokens.access_token)
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap();
    assert_eq!(sessions.into_inner().sessions.len(), 1);
    let missing = client
        .clone()
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        missing.get_error_details().error_info().unwrap().reason,
        "TOKEN_MISSING"
    );

    // Logout, then the same token is refused through the edge within a second.
    authed(channel.clone(), &tokens.access_token)
        .logout(pb::LogoutRequest {})
        .await
        .unwrap();
    let started = Instant::now();
    let refused = loop {
        let attempt = authed(channel.clone(), &tokens.access_token)
            .list_sessions(pb::ListSessionsRequest::default())
            .await;
        match attempt {
            Err(status) => break status,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "still accepted after 1 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        refused.get_error_details().error_info().unwrap().reason,
        "SESSION_REVOKED"
    );
    drop(edge);
    drop(auth);
}

#[tokio::test]
async fn a_message_process_with_only_the_public_key_accepts_auths_tokens() {
    let Some(backends) = backends() else {
        return;
    };
    let key = echo_authn::SigningKey::generate().unwrap();
    let (webhook, inbox) = webhook().await;
    let data = tempfile::tempdir().unwrap();
    let service_secret = unique_name("s") + &unique_name("s");

    // Message gets the public half in a file, no upstream to fetch from, and a service secret.
    let public = data.path().join("jwt-public.pem");
    std::fs::write(&public, key.public_key().to_spki_pem().unwrap()).unwrap();
    let mut message_env = backends.clone();
    message_env.extend([
        (
            "ECHO_AUTH__JWT_PUBLIC_KEYS_FILE".to_owned(),
            public.display().to_string(),
        ),
        ("ECHO_SERVICE_SECRET".to_owned(), service_secret.clone()),
    ]);
    let mut message = spawn("message", &message_env, data.path());
    let message_channel = serving(&mut message).await;

    // Auth's admin API reaches message's internal port with the same service secret.
    let operators = data.path().join("operators");
    std::fs::write(&operators, format!("split-operator {OPERATOR_SHA256}\n")).unwrap();
    let mut env = auth_env(&backends, &key, &webhook);
    env.extend([
        ("ECHO_SERVICE_SECRET".to_owned(), service_secret),
        (
            "ECHO_ADMIN__OPERATOR_TOKENS_FILE".to_owned(),
            operators.display().to_string(),
        ),
        (
            "ECHO_ADMIN__MESSAGE_INTERNAL_URL".to_owned(),
            format!("http://127.0.0.1:{}", message.internal_port),
        ),
    ]);
    let mut auth = spawn("auth", &env, data.path());
    let auth_channel = serving(&mut auth).await;

    let tokens = sign_up(auth_channel, &inbox).await;
    let conversations = |token: &str| {
        let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        let mut client = echo_proto::echo::message::v1::message_service_client::MessageServiceClient::with_interceptor(
            message_channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", value.clone());
                Ok(r)
            },
        );
        async move {
            client
                .list_conversations(
                    echo_proto::echo::message::v1::ListConversationsRequest::default(),
                )
                .await
        }
    };
    conversations(&tokens.access_token)
        .await
        .expect("auth's token is accepted by message");

    // A token signed by any other key is not.
    let stranger =
        echo_authn::TokenIssuer::new(&echo_authn::SigningKey::generate().unwrap(), "echo")
            .unwrap()
            .issue(
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7(),
                Duration::from_secs(60),
            )
            .unwrap()
            .0;
    let refused = conversations(&stranger).await.unwrap_err();
    assert_eq!(
        refused.get_error_details().error_info().unwrap().reason,
        "TOKEN_INVALID"
    );
    // The operator's report queue and purges, served by auth's admin port, are message's:
    // reached through its internal contract with the service credential.
    let admin_channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", auth.admin_port))
            .unwrap()
            .connect()
            .await
            .expect("auth's admin port");
    let value: tonic::metadata::MetadataValue<_> =
        format!("Bearer {OPERATOR_TOKEN}").parse().unwrap();
    let mut admin =
        echo_proto::echo::admin::v1::admin_service_client::AdminServiceClient::with_interceptor(
            admin_channel,
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", value.clone());
                Ok(r)
            },
        );
    let queue = admin
        .list_reports(echo_proto::echo::admin::v1::ListReportsRequest::default())
        .await
        .expect("the report queue through message's internal port")
        .into_inner();
    assert!(queue.reports.is_empty());
    let purge = admin
        .purge_conversation_messages(
            echo_proto::echo::admin::v1::PurgeConversationMessagesRequest {
                conversation_id: uuid::Uuid::now_v7().to_string(),
                before: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                reason: "split mesh test".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        purge.get_error_details().error_info().unwrap().reason,
        "CONVERSATION_NOT_FOUND",
        "{purge:?}"
    );

    // And message minted nothing of auth's: no signing key, no auth secret in its data dir.
    let message_dir = data.path().join("message");
    for minted in [echo_authn::DEV_KEY_FILE, "auth-secret"] {
        assert!(
            !message_dir.join(minted).exists(),
            "message wrote {minted} into its data dir"
        );
    }
    drop(message);
    drop(auth);
}
