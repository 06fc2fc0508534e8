//! The serving kit through real clients: health, reflection v1 and v1alpha, grpc-web and CORS,
//! google.rpc details decoded by the client, size limits, admin endpoints, shutdown that ends
//! an open stream within the deadline, and a lone target that refuses an in-process bus.

use std::time::Duration;

use echo_testkit::{Backend, TestMesh};
use futures::StreamExt;
use prost::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::StatusExt;

const SERVICES: [&str; 5] = [
    "echo.auth.v1.AuthService",
    "echo.user.v1.UserService",
    "echo.message.v1.MessageService",
    "echo.presence.v1.PresenceService",
    "echo.notification.v1.NotificationService",
];

async fn health_status(mesh: &TestMesh, service: &str) -> ServingStatus {
    let mut health = HealthClient::new(mesh.channel());
    let request = HealthCheckRequest {
        service: service.into(),
    };
    // Readiness is checked right after start; give the first check a moment.
    for _ in 0..50 {
        let status = health
            .check(request.clone())
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    health.check(request).await.unwrap().into_inner().status()
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_every_service_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        assert_eq!(
            health_status(&mesh, "").await,
            ServingStatus::Serving,
            "{backend:?}"
        );
        for service in SERVICES {
            assert_eq!(
                health_status(&mesh, service).await,
                ServingStatus::Serving,
                "{service}"
            );
        }
        let ready = reqwest::get(format!("{}/readyz", mesh.admin_url()))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let metrics = reqwest::get(format!("{}/metrics", mesh.admin_url()))
            .await
            .unwrap();
        let metrics = metrics.text().await.unwrap();
        assert!(metrics.contains("echo_rpc_requests_total"), "{metrics}");
        mesh.shutdown().await;
    }
}

macro_rules! list_services {
    ($module:ident, $channel:expr) => {{
        use tonic_reflection::pb::$module::ServerReflectionRequest;
        use tonic_reflection::pb::$module::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$module::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$module::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new($channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.next().await.unwrap().unwrap();
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let v1 = list_services!(v1, mesh.channel());
    let v1alpha = list_services!(v1alpha, mesh.channel());
    for service in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            v1.iter().any(|s| s == service),
            "v1 lacks {service}: {v1:?}"
        );
        assert!(
            v1alpha.iter().any(|s| s == service),
            "v1alpha lacks {service}: {v1alpha:?}"
        );
    }
    mesh.shutdown().await;
}

/// A grpc-web frame: flag byte, big-endian length, payload.
fn grpc_web_frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![flag];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn grpc_web_over_http1_answers_with_trailers_in_the_body_and_cors_headers() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    health_status(&mesh, "").await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let url = format!("http://{}/grpc.health.v1.Health/Check", mesh.addr());

    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("authorization"),
        "{allowed}"
    );

    let body = grpc_web_frame(
        0,
        &HealthCheckRequest {
            service: String::new(),
        }
        .encode_to_vec(),
    );
    let response = http
        .post(&url)
        .header("origin", "https://app.example")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    assert!(response.headers().contains_key("x-request-id"));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes[0], 0, "first frame is data");
    let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
    let message = HealthCheckResponse::decode(&bytes[5..5 + length]).unwrap();
    assert_eq!(message.status(), ServingStatus::Serving);
    let trailers = &bytes[5 + length..];
    assert_eq!(trailers[0], 0x80, "then a trailer frame");
    let trailers = String::from_utf8_lossy(&trailers[5..]).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_naming_the_field() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let url = format!("http://{}/grpc.health.v1.Health/Check", mesh.addr());
    // Field 1 (`service`, a string) holding bytes that are not UTF-8.
    let body = grpc_web_frame(0, &[0x0a, 0x02, 0xff, 0xfe]);
    let response = http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    let status =
        tonic::Status::from_header_map(response.headers()).expect("a trailers-only status");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .clone();
    assert_eq!(violations[0].field, "service");
    assert!(
        violations[0].description.contains("UTF-8"),
        "{violations:?}"
    );
    mesh.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_with_a_decodable_error_info() {
    let mesh = TestMesh::start_with(Backend::Embedded, "all", |c| c.max_request_bytes = 4096)
        .await
        .unwrap();
    let request = echo_proto::echo::auth::v1::RegisterRequest {
        display_name: "x".repeat(10_000),
        ..Default::default()
    };
    let status = mesh.auth().register(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo detail");
    assert_eq!(info.reason, "PAYLOAD_TOO_LARGE");
    assert_eq!(info.domain, "echo");

    // A small request reaches the service, whose validation answers with field violations.
    let small = echo_proto::echo::auth::v1::RegisterRequest::default();
    let status = mesh.auth().register(small).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(fields, ["phone_number", "password", "display_name"]);
    mesh.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_an_open_stream_with_a_resumable_status_within_the_deadline() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    health_status(&mesh, "").await;
    let grace = mesh.config.shutdown_grace;
    let mut health = HealthClient::new(mesh.channel());
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut stream = health.watch(request).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let started = std::time::Instant::now();
    let stopping = tokio::spawn(mesh.shutdown());
    let ending = tokio::time::timeout(grace + Duration::from_secs(1), async {
        loop {
            match stream.next().await {
                Some(Ok(update)) => assert_eq!(update.status(), ServingStatus::NotServing),
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends within the drain deadline");
    let status = ending.expect("the stream ends with a status, not silently");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "SHUTTING_DOWN"
    );
    tokio::time::timeout(grace + Duration::from_secs(2), stopping)
        .await
        .expect("shutdown completes within the deadline")
        .unwrap();
    assert!(started.elapsed() < grace + Duration::from_secs(2));
}

#[test]
fn a_lone_target_with_the_in_process_bus_refuses_to_start_and_says_why() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_echo"))
        .args([
            "--target",
            "auth",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env(
            "ECHO_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .env("ECHO_CACHE_URL", "redis://127.0.0.1:6379")
        .env_remove("ECHO_BUS_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in-process bus cannot carry events between processes"),
        "{stderr}"
    );
    assert!(stderr.contains("ECHO_BUS_URL"), "{stderr}");
}

#[tokio::test]
async fn every_service_requires_a_token_and_a_signed_in_client_reaches_it() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let anonymous = mesh
        .user()
        .get_me(echo_proto::echo::user::v1::GetMeRequest {})
        .await;
    let status = anonymous.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "TOKEN_MISSING"
    );
    // Signed in, the calls reach the services.
    let me = mesh.sign_up().await;
    let request = echo_proto::echo::user::v1::GetMeRequest {};
    let profile = mesh
        .user_as(&me)
        .get_me(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(profile.profile.unwrap().user_id, me.tokens.user_id);
    let request = echo_proto::echo::message::v1::ListConversationsRequest::default();
    let conversations = mesh
        .message_as(&me)
        .list_conversations(request)
        .await
        .unwrap();
    assert!(conversations.into_inner().conversations.is_empty());
    mesh.shutdown().await;
}

#[tokio::test]
async fn junk_paths_share_one_unknown_metrics_series_and_served_methods_keep_theirs() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    health_status(&mesh, "").await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let junk = [
        "/junk.Scanner/Probe1",
        "/echo.auth.v1.AuthService/NoSuchMethod",
        "/wp-login.php",
    ];
    for path in junk {
        let response = http
            .post(format!("http://{}{path}", mesh.addr()))
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .body(grpc_web_frame(0, &[]))
            .send()
            .await
            .unwrap();
        // UNIMPLEMENTED, or UNAUTHENTICATED for an unknown method of a known service.
        let status = response.headers()["grpc-status"].to_str().unwrap();
        assert!(status == "12" || status == "16", "{path}: {status}");
    }
    let metrics = reqwest::get(format!("{}/metrics", mesh.admin_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for path in junk {
        assert!(!metrics.contains(path), "{path} has a series:\n{metrics}");
    }
    let unknown = r#"echo_rpc_requests_total{method="unknown","#;
    assert!(metrics.contains(unknown), "{metrics}");
    let check = r#"echo_rpc_requests_total{method="/grpc.health.v1.Health/Check""#;
    assert!(metrics.contains(check), "{metrics}");
    mesh.shutdown().await;
}
