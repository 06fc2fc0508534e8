//! A split mesh of real processes in production mode: `echo --target auth` and
//! `echo --target edge` (forwarding to auth) sharing Postgres, NATS and Redis. A token issued
//! through the edge is accepted there, then refused within a second of logout. Codes travel
//! through the production webhook sender to a receiver inside the test.
//!
//! Only auth holds the private signing key: the edge verifies with the keys it fetches from
//! auth's GetSigningKeys, and `echo --target message` with the public key alone, from a file.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echo_proto::echo::auth::v1 as pb;
use echo_testenv::{Server, free_port, unique_name, url};
use echo_testkit::{PASSWORD, phone_number, test_device};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// Codes received by the webhook, by phone number.
type Inbox = Arc<Mutex<HashMap<String, String>>>;

/// A minimal HTTP endpoint standing in for an SMS gateway.
async fn webhook() -> (String, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/otp", listener.local_addr().unwrap());
    let inbox: Inbox = Arc::default();
    let codes = inbox.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let codes = codes.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read until the JSON body is complete (one small request per connection).
                while !request.ends_with(b"}") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let body = &text[text.find('{').unwrap_or(0)..];
                let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                if let (Some(phone), Some(code)) =
                    (json["phone_number"].as_str(), json["code"].as_str())
                {
                    codes
                        .lock()
                        .unwrap()
                        .insert(phone.to_owned(), code.to_owned());
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (address, inbox)
}

struct Process {
    child: Child,
    port: u16,
}

fn spawn(target: &str, env: &[(String, String)], data_dir: &std::path::Path) -> Process {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo"));
    command
        .args(["--target", target])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--internal-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--data-dir", &data_dir.join(target).display().to_string()])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ECHO_LOG_FORMAT", "text")
        .stdout(if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    Process {
        child: command.spawn().expect("start echo"),
        port,
    }
}

async fn serving(process: &mut Process) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{}", process.port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            panic!("echo exited early with {status}");
        }
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let check = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(reply) = health.check(check).await
                && reply.into_inner().status == 1
            {
                return channel;
            }
        }
        assert!(Instant::now() < deadline, "echo did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

/// The shared backends with a schema, subject and key prefix of this test's own; `None` when
/// the servers are absent.
fn backends() -> Option<Vec<(String, String)>> {
    let isolation = unique_name("t");
    let env = [
        ("ECHO_DATABASE_URL", url(Server::Postgres)?),
        ("ECHO_DATABASE_SCHEMA_PREFIX", format!("{isolation}_")),
        ("ECHO_BUS_URL", url(Server::Nats)?),
        ("ECHO_BUS_SUBJECT_PREFIX", format!("{isolation}.")),
        ("ECHO_CACHE_URL", url(Server::Redis)?),
        ("ECHO_CACHE_KEY_PREFIX", format!("{isolation}:")),
    ];
    Some(env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// `backends` plus what the auth target alone holds: the signing key, the OTP key, the webhook.
fn auth_env(
    backends: &[(String, String)],
    key: &echo_authn::SigningKey,
    webhook: &str,
) -> Vec<(String, String)> {
    let mut env = backends.to_vec();
    env.extend([
        (
            "ECHO_AUTH__JWT_SIGNING_KEY".to_owned(),
            key.to_pkcs8_pem().unwrap().to_string(),
        ),
        (
            "ECHO_AUTH__OTP_HMAC_KEY".to_owned(),
            unique_name("k") + &unique_name("k"),
        ),
        ("ECHO_AUTH__OTP_SENDER".to_owned(), webhook.to_owned()),
    ]);
    env
}

/// Sign a new user up through `channel` (auth, or an edge forwarding to it).
async fn sign_up(channel: Channel, inbox: &Inbox) -> pb::TokenPair {
    let mut client = pb::auth_service_client::AuthServiceClient::new(channel);
    // Sign up; the code arrives at the webhook.
    let phone = phone_number();
    let register = pb::RegisterRequest {
        phone_number: phone.clone(),
        password: PASSWORD.into(),
        display_name: "Split".into(),
    };
    client.register(register).await.unwrap();
    let code = inbox
        .lock()
        .unwrap()
        .get(&phone)
        .cloned()
        .expect("the webhook got the code");
    let verify = pb::VerifyPhoneRequest {
        phone_number: phone,
        code,
        device: Some(test_device()),
    };
    client
        .verify_phone(verify)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
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
    let mut auth = spawn("auth", &auth_env(&backends, &key, &webhook), data.path());
    let auth_channel = serving(&mut auth).await;

    // Message gets the public half in a file, no upstream to fetch from, and a service secret.
    let public = data.path().join("jwt-public.pem");
    std::fs::write(&public, key.public_key().to_spki_pem().unwrap()).unwrap();
    let mut message_env = backends.clone();
    message_env.extend([
        (
            "ECHO_AUTH__JWT_PUBLIC_KEYS_FILE".to_owned(),
            public.display().to_string(),
        ),
        (
            "ECHO_SERVICE_SECRET".to_owned(),
            unique_name("s") + &unique_name("s"),
        ),
    ]);
    let mut message = spawn("message", &message_env, data.path());
    let message_channel = serving(&mut message).await;

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
