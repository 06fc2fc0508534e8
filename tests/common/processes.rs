//! Echo as child processes on the shared real backends, for tests that need separate
//! processes (split mode, a killed instance): the `echo` binary on free ports, a webhook that
//! receives the OTP codes, sign-ups through it.

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

/// Codes received by the webhook, by phone number.
pub type Inbox = Arc<Mutex<HashMap<String, String>>>;

/// A minimal HTTP endpoint standing in for an SMS gateway.
pub async fn webhook() -> (String, Inbox) {
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

pub struct Process {
    pub child: Child,
    pub port: u16,
    /// The admin port (`/metrics`, health, the operators' AdminService where auth runs).
    pub admin_port: u16,
    /// The internal port (internal contracts, service credential only).
    pub internal_port: u16,
    /// Where the child's output goes (unless `TEST_LOG` shows it): read when it exits early.
    log: Option<std::path::PathBuf>,
}

pub fn spawn(target: &str, env: &[(String, String)], data_dir: &std::path::Path) -> Process {
    let (port, admin_port, internal_port) = (free_port(), free_port(), free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo"));
    command
        .args(["--target", target])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--internal-listen", &format!("127.0.0.1:{internal_port}")])
        .args(["--data-dir", &data_dir.join(target).display().to_string()])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("ECHO_LOG_FORMAT", "text")
        .kill_on_drop(true);
    let log = if std::env::var("TEST_LOG").is_ok() {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        None
    } else {
        // Appended to: a restarted instance (same directory) keeps the earlier run's lines.
        std::fs::create_dir_all(data_dir).expect("create the data directory");
        let path = data_dir.join(format!("{target}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the log file");
        command
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        Some(path)
    };
    Process {
        child: command.spawn().expect("start echo"),
        port,
        admin_port,
        internal_port,
        log,
    }
}

pub async fn serving(process: &mut Process) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{}", process.port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            // Say why: a failure at start-up (a port, the database's connection limit) is
            // otherwise invisible.
            let tail = process
                .log
                .as_ref()
                .and_then(|path| std::fs::read_to_string(path).ok())
                .map(|text| {
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(20)..].join("\n")
                })
                .unwrap_or_else(|| "(TEST_LOG shows the output)".to_owned());
            panic!("echo exited early with {status}; its last lines:\n{tail}");
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

/// The shared backends with a schema, subject and key prefix of this test's own; `None` when
/// the servers are absent.
pub fn backends() -> Option<Vec<(String, String)>> {
    let isolation = unique_name("t");
    let env = [
        ("ECHO_DATABASE_URL", url(Server::Postgres)?),
        ("ECHO_DATABASE_SCHEMA_PREFIX", format!("{isolation}_")),
        // As TestMesh does: tests run several processes side by side on one PostgreSQL whose
        // connection limit is 100, and a whole mesh at the default (32 per service) could
        // take it all under load.
        ("ECHO_DATABASE_MAX_CONNECTIONS", "8".to_owned()),
        ("ECHO_BUS_URL", url(Server::Nats)?),
        ("ECHO_BUS_SUBJECT_PREFIX", format!("{isolation}.")),
        ("ECHO_CACHE_URL", url(Server::Redis)?),
        ("ECHO_CACHE_KEY_PREFIX", format!("{isolation}:")),
    ];
    Some(env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// `backends` plus what the auth target alone holds: the signing key, the OTP key, the webhook.
pub fn auth_env(
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
pub async fn sign_up(channel: Channel, inbox: &Inbox) -> pb::TokenPair {
    sign_up_with_phone(channel, inbox).await.1
}

/// [`sign_up`], also giving the user's phone number (for [`another_device`]).
pub async fn sign_up_with_phone(channel: Channel, inbox: &Inbox) -> (String, pb::TokenPair) {
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
        phone_number: phone.clone(),
        code,
        device: Some(test_device()),
    };
    let tokens = client
        .verify_phone(verify)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    (phone, tokens)
}

/// Another device of the user with `phone`: a new sign-in with the test password.
pub async fn another_device(channel: Channel, phone: &str) -> pb::TokenPair {
    let request = pb::LoginWithPasswordRequest {
        phone_number: phone.into(),
        password: PASSWORD.into(),
        device: Some(test_device()),
    };
    pb::auth_service_client::AuthServiceClient::new(channel)
        .login_with_password(request)
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
}
