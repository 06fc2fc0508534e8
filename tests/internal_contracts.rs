//! Internal contracts (DESIGN §9, spec §0.2), on both backends: the public port refuses
//! `PresenceInternalService` and `MessageInternalService` whatever the credentials (gRPC and
//! grpc-web) and its reflection leaves them out; the internal port serves them to service
//! tokens only: one delivery state per distinct user, one notification preview per distinct
//! message; in split mode the edge refuses the paths too. One file: every contract here is
//! checked against the same two ports and the same credentials.
//! The harness at the top (`bearer`, `listed_services`, `describes`, `refused_on`) is that shared
//! check; split per service, each half would carry a copy, and the next internal service could get
//! the public-port and reflection refusals in one file but not in the other.

mod common;

use std::time::Duration;

use echo_proto::echo::message::v1 as msg;
use echo_proto::echo::presence::v1 as pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use futures::StreamExt;
use msg::message_internal_service_client::MessageInternalServiceClient;
use pb::presence_internal_service_client::PresenceInternalServiceClient;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

use common::messages::{direct, send, send_content, send_request, text};
use common::users::mask;
use common::{assert_reason, violated_fields};

const SERVICE: &str = "echo.presence.v1.PresenceInternalService";
const METHOD: &str = "/echo.presence.v1.PresenceInternalService/GetDeliveryState";
const PREVIEWS: &str = "echo.message.v1.MessageInternalService";

/// An interceptor adding `authorization: Bearer <token>` when a token is given.
fn bearer(
    token: Option<&str>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    let authorization: Option<tonic::metadata::MetadataValue<_>> =
        token.map(|token| format!("Bearer {token}").parse().expect("ascii token"));
    move |mut request: tonic::Request<()>| {
        if let Some(value) = &authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// GetDeliveryState of `user_ids` on `channel`, with `authorization: Bearer <token>` when a
/// token is given.
async fn delivery_state(
    channel: Channel,
    token: Option<&str>,
    user_ids: Vec<String>,
) -> Result<pb::GetDeliveryStateResponse, tonic::Status> {
    let mut client = PresenceInternalServiceClient::with_interceptor(channel, bearer(token));
    let request = pb::GetDeliveryStateRequest { user_ids };
    client
        .get_delivery_state(request)
        .await
        .map(tonic::Response::into_inner)
}

/// `answer` is INVALID_ARGUMENT with exactly one violation, on `field`.
fn refused_on(answer: Result<(), tonic::Status>, field: &str, context: &str) {
    let refused = answer.expect_err(context);
    assert_eq!(
        refused.code(),
        Code::InvalidArgument,
        "{context}: {refused:?}"
    );
    assert_eq!(violated_fields(&refused), [field], "{context}");
}

/// The service names reflection v1 lists on `channel`.
async fn listed_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses.next().await.expect("a response").expect("ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Whether reflection v1alpha on `channel` can describe `symbol` (grpcurl 1.8's `describe`).
async fn describes(channel: Channel, symbol: &str) -> bool {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    match responses.next().await.expect("a response") {
        Ok(response) => matches!(
            response.message_response,
            Some(MessageResponse::FileDescriptorResponse(_))
        ),
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("reflection failed: {status:?}"),
    }
}

/// A grpc-web frame (flag byte, big-endian length, payload).
fn grpc_web_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// GetDeliveryState over grpc-web (HTTP/1.1, as a browser sends it) to the public port.
async fn over_grpc_web(mesh: &TestMesh, token: Option<&str>, user: &str) -> tonic::Status {
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let request = pb::GetDeliveryStateRequest {
        user_ids: vec![user.to_owned()],
    };
    let mut call = http
        .post(format!("http://{}{METHOD}", mesh.addr()))
        .header("origin", "https://app.example")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_web_frame(&request.encode_to_vec()));
    if let Some(token) = token {
        call = call.header("authorization", format!("Bearer {token}"));
    }
    let response = call.send().await.expect("grpc-web call");
    assert_eq!(response.status(), 200);
    tonic::Status::from_header_map(response.headers()).expect("a trailers-only status")
}

#[tokio::test]
async fn the_public_port_refuses_internal_contracts_whatever_the_credentials() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let ids = vec![ada.tokens.user_id.clone()];
        let service_token = mesh.service_token("notification");
        for token in [
            None,
            Some(ada.tokens.access_token.as_str()),
            Some(service_token.as_str()),
        ] {
            let refused = delivery_state(mesh.channel(), token, ids.clone())
                .await
                .expect_err("refused on the public port");
            assert_reason(&refused, Code::PermissionDenied, "SERVICE_ONLY");
        }
        for token in [None, Some(ada.tokens.access_token.as_str())] {
            let refused = over_grpc_web(&mesh, token, &ada.tokens.user_id).await;
            assert_reason(&refused, Code::PermissionDenied, "SERVICE_ONLY");
        }

        // Reflection neither lists nor describes it; the internal port's reflection does.
        let public = listed_services(mesh.channel()).await;
        assert!(
            public
                .iter()
                .any(|s| s == "echo.presence.v1.PresenceService"),
            "{backend:?}: {public:?}"
        );
        assert!(
            !public.iter().any(|s| s.ends_with("InternalService")),
            "{backend:?}: {public:?}"
        );
        assert!(!describes(mesh.channel(), SERVICE).await, "{backend:?}");
        let internal = listed_services(mesh.internal_channel()).await;
        assert!(
            internal.iter().any(|s| s == SERVICE),
            "{backend:?}: {internal:?}"
        );
        assert!(
            !internal
                .iter()
                .any(|s| s == "echo.presence.v1.PresenceService"),
            "{backend:?}: {internal:?}"
        );
        assert!(describes(mesh.internal_channel(), SERVICE).await);
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn the_internal_port_admits_only_service_tokens() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let ids = vec![ada.tokens.user_id.clone()];
        let refused = delivery_state(mesh.internal_channel(), None, ids.clone())
            .await
            .expect_err("no token");
        assert_reason(&refused, Code::Unauthenticated, "TOKEN_MISSING");
        let refused = delivery_state(
            mesh.internal_channel(),
            Some(&ada.tokens.access_token),
            ids.clone(),
        )
        .await
        .expect_err("a user's access token");
        assert_reason(&refused, Code::Unauthenticated, "TOKEN_INVALID");
        let stranger = echo_authn::ServiceSecret::new([9u8; 32]).expect("secret");
        let foreign = echo_authn::ServiceTokens::new(&stranger, "notification").bearer();
        let refused = delivery_state(mesh.internal_channel(), Some(&foreign), ids.clone())
            .await
            .expect_err("another deployment's service token");
        assert_reason(&refused, Code::Unauthenticated, "TOKEN_INVALID");

        let token = mesh.service_token("notification");
        delivery_state(mesh.internal_channel(), Some(&token), ids)
            .await
            .unwrap_or_else(|status| panic!("{backend:?}: {status:?}"));
        mesh.shutdown().await;
    }
}

/// The delivery states of `users` (in request order, duplicates included) as the
/// notification service would read them.
async fn states_of(mesh: &TestMesh, users: &[&SignedIn]) -> Vec<pb::DeliveryState> {
    let ids = users.iter().map(|u| u.tokens.user_id.clone()).collect();
    let token = mesh.service_token("notification");
    delivery_state(mesh.internal_channel(), Some(&token), ids)
        .await
        .expect("delivery state")
        .states
}

/// Poll until `user`'s delivery state satisfies `check` (presence applies writes at once, but
/// nothing in the contract promises that to another service's read).
async fn eventually(
    mesh: &TestMesh,
    user: &SignedIn,
    check: impl Fn(&pb::DeliveryState) -> bool,
) -> pb::DeliveryState {
    let mut last = None;
    for _ in 0..100 {
        let state = states_of(mesh, &[user]).await.remove(0);
        if check(&state) {
            return state;
        }
        last = Some(state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never reached: last {last:?}");
}

#[tokio::test]
async fn delivery_state_reports_online_devices_and_the_manual_status() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let bob = mesh.sign_up().await;
        mesh.presence_as(&ada)
            .heartbeat(pb::HeartbeatRequest {
                status: pb::PresenceStatus::Online as i32,
            })
            .await
            .expect("heartbeat");

        let ada_device = ada.tokens.device_id.clone();
        let online = eventually(&mesh, &ada, |s| s.online_device_ids.contains(&ada_device)).await;
        assert_eq!(
            online.online_device_ids,
            std::slice::from_ref(&ada_device),
            "{backend:?}"
        );
        assert_eq!(online.manual_status(), pb::PresenceStatus::Unspecified);

        // One state per distinct id: duplicates collapse; a silent user has no device online.
        let states = states_of(&mesh, &[&ada, &bob, &ada]).await;
        assert_eq!(states.len(), 2, "{backend:?}: {states:?}");
        let of = |user: &SignedIn| {
            states
                .iter()
                .find(|s| s.user_id == user.tokens.user_id)
                .cloned()
                .unwrap_or_else(|| panic!("no state for {}", user.tokens.user_id))
        };
        assert_eq!(
            of(&ada).online_device_ids,
            std::slice::from_ref(&ada_device)
        );
        assert!(of(&bob).online_device_ids.is_empty(), "{:?}", of(&bob));

        mesh.presence_as(&ada)
            .set_status(pb::SetStatusRequest {
                status: pb::PresenceStatus::Dnd as i32,
                clear_after: None,
            })
            .await
            .expect("set status");
        let dnd = eventually(&mesh, &ada, |s| {
            s.manual_status() == pb::PresenceStatus::Dnd
        })
        .await;
        assert!(dnd.clears_at.is_none(), "{backend:?}: {dnd:?}");
        // DND is a manual status, not an absence: the device is still online.
        assert_eq!(dnd.online_device_ids, [ada_device], "{backend:?}");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_requests_name_the_field() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let token = mesh.service_token("notification");
        let valid = uuid::Uuid::now_v7().to_string();
        let cases = [
            (Vec::new(), "user_ids"),
            (vec![valid.clone(); 1001], "user_ids"),
            (vec![valid.clone(), "not-a-uuid".to_owned()], "user_ids[1]"),
        ];
        for (ids, field) in cases {
            let count = ids.len();
            let answer = delivery_state(mesh.internal_channel(), Some(&token), ids).await;
            refused_on(
                answer.map(drop),
                field,
                &format!("{backend:?}, {count} ids"),
            );
        }
        // Exactly 1,000 is allowed.
        let thousand = vec![valid; 1000];
        delivery_state(mesh.internal_channel(), Some(&token), thousand)
            .await
            .expect("1,000 ids");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn in_split_mode_the_edge_refuses_internal_contracts_too() {
    // The services in one process, the edge in another (sharing the data dir, so the same
    // signing key and service secret), the edge forwarding to the services' public port.
    let Some(services) = TestMesh::start_with(
        Backend::Real,
        "auth,user,message,presence,notification",
        |_| {},
    )
    .await
    else {
        return;
    };
    let edge = services.start_edge().await;
    let ada = services.sign_up().await;

    // Presence itself is forwarded...
    edge.presence_as(&ada)
        .heartbeat(pb::HeartbeatRequest {
            status: pb::PresenceStatus::Online as i32,
        })
        .await
        .expect("heartbeat through the edge");
    // ...its internal contract is not, whatever the credentials.
    let service_token = services.service_token("notification");
    for token in [
        None,
        Some(ada.tokens.access_token.as_str()),
        Some(service_token.as_str()),
    ] {
        let refused = delivery_state(edge.channel(), token, vec![ada.tokens.user_id.clone()])
            .await
            .expect_err("refused at the edge");
        assert_reason(&refused, Code::PermissionDenied, "SERVICE_ONLY");
    }
    let public = listed_services(edge.channel()).await;
    assert!(
        !public.iter().any(|s| s.ends_with("InternalService")),
        "{public:?}"
    );
    // The services' own internal port serves it.
    let states = delivery_state(
        services.internal_channel(),
        Some(&service_token),
        vec![ada.tokens.user_id.clone()],
    )
    .await
    .expect("the internal port");
    assert_eq!(states.states.len(), 1);
    edge.shutdown().await;
    services.shutdown().await;
}

/// GetNotificationPreviews of `message_ids` on `channel`, with `authorization: Bearer <token>`
/// when a token is given.
async fn previews(
    channel: Channel,
    token: Option<&str>,
    message_ids: Vec<String>,
) -> Result<Vec<msg::NotificationPreview>, tonic::Status> {
    let mut client = MessageInternalServiceClient::with_interceptor(channel, bearer(token));
    let request = msg::GetNotificationPreviewsRequest { message_ids };
    let response = client.get_notification_previews(request).await?;
    Ok(response.into_inner().previews)
}

/// The previews of `ids` as the notification service reads them.
async fn previews_of(mesh: &TestMesh, ids: &[&str]) -> Vec<msg::NotificationPreview> {
    let token = mesh.service_token("notification");
    let ids = ids.iter().map(|id| (*id).to_owned()).collect();
    previews(mesh.internal_channel(), Some(&token), ids)
        .await
        .expect("previews")
}

#[tokio::test]
async fn notification_previews_are_served_to_services_on_the_internal_port_only() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let bob = mesh.sign_up().await;
        let chat = direct(&mesh, &ada, &bob).await;
        let hello = send(&mesh, &ada, &chat, "hello").await;
        let ids = vec![hello.message_id.clone()];
        let service_token = mesh.service_token("notification");
        for token in [
            None,
            Some(ada.tokens.access_token.as_str()),
            Some(service_token.as_str()),
        ] {
            let refused = previews(mesh.channel(), token, ids.clone())
                .await
                .expect_err("refused on the public port");
            assert_reason(&refused, Code::PermissionDenied, "SERVICE_ONLY");
        }
        // A member's access token is no service credential on the internal port either.
        let refused = previews(
            mesh.internal_channel(),
            Some(&ada.tokens.access_token),
            ids.clone(),
        )
        .await
        .expect_err("a user's access token");
        assert_reason(&refused, Code::Unauthenticated, "TOKEN_INVALID");
        let refused = previews(mesh.internal_channel(), None, ids.clone())
            .await
            .expect_err("no token");
        assert_reason(&refused, Code::Unauthenticated, "TOKEN_MISSING");

        // Only the internal port's reflection knows it.
        assert!(!describes(mesh.channel(), PREVIEWS).await, "{backend:?}");
        let internal = listed_services(mesh.internal_channel()).await;
        assert!(
            internal.iter().any(|s| s == PREVIEWS),
            "{backend:?}: {internal:?}"
        );
        assert!(
            !internal
                .iter()
                .any(|s| s == "echo.message.v1.MessageService"),
            "{backend:?}: {internal:?}"
        );
        assert!(describes(mesh.internal_channel(), PREVIEWS).await);

        let seen = previews(mesh.internal_channel(), Some(&service_token), ids)
            .await
            .unwrap_or_else(|status| panic!("{backend:?}: {status:?}"));
        assert_eq!(seen.len(), 1, "{backend:?}: {seen:?}");
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn previews_show_the_current_text_or_why_there_is_none() {
    use msg::NotificationPreviewState::{Available, Deleted, NotFound};
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = mesh.sign_up().await;
        let bob = mesh.sign_up().await;
        let chat = direct(&mesh, &ada, &bob).await;
        let hello = send(&mesh, &ada, &chat, "hello Bob").await;
        let long_text = "0123456789".repeat(30);
        let long = send(&mesh, &ada, &chat, &long_text).await;
        let typo = send(&mesh, &ada, &chat, "helo").await;
        mesh.message_as(&ada)
            .edit_message(msg::EditMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: typo.message_id.clone(),
                content: Some(text("hello")),
                update_mask: mask(&["text"]),
            })
            .await
            .expect("edit");
        let regret = send(&mesh, &ada, &chat, "something I regret").await;
        mesh.message_as(&ada)
            .delete_message(msg::DeleteMessageRequest {
                conversation_id: chat.conversation_id.clone(),
                message_id: regret.message_id.clone(),
                scope: msg::DeleteScope::ForEveryone.into(),
            })
            .await
            .expect("delete for everyone");
        let photo = msg::MessageContent {
            attachments: vec![echo_proto::echo::common::v1::Media {
                url: "https://cdn.example/cat.jpg".into(),
                mime_type: "image/jpeg".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let photo = send_content(&mesh, &bob, &chat, photo).await;
        let mut answer = send_request(&chat, &uuid::Uuid::now_v7().to_string(), text("yes!"));
        answer.reply_to_message_id = hello.message_id.clone();
        let reply = mesh.message_as(&bob).send_message(answer).await;
        let reply = reply.expect("reply").into_inner().message.unwrap();
        let unknown = uuid::Uuid::now_v7().to_string();

        let ids = [
            &hello, &long, &typo, &regret, &photo, &reply, &hello, // a duplicate
        ]
        .map(|m| m.message_id.as_str());
        let mut asked = ids.to_vec();
        asked.insert(6, &unknown);
        let seen = previews_of(&mesh, &asked).await;
        let order: Vec<&str> = seen.iter().map(|p| p.message_id.as_str()).collect();
        assert_eq!(
            order,
            asked[..7],
            "{backend:?}: one per distinct id, first-seen order"
        );
        let of = |message: &msg::Message| {
            seen.iter()
                .find(|p| p.message_id == message.message_id)
                .unwrap_or_else(|| panic!("no preview of {}", message.message_id))
        };

        let shown = of(&hello);
        assert_eq!(
            (shown.state(), shown.preview.as_str()),
            (Available, "hello Bob"),
            "{backend:?}"
        );
        assert_eq!(shown.conversation_id, chat.conversation_id);
        assert_eq!(shown.sender_user_id, ada.tokens.user_id);
        assert_eq!(shown.seq, hello.seq);
        assert_eq!(shown.created_at, hello.created_at);
        assert_eq!(shown.reply_to_sender_user_id, "");

        let cut = &of(&long).preview;
        assert_eq!(cut.chars().count(), 120, "{backend:?}");
        assert!(long_text.starts_with(cut.as_str()));
        assert_eq!(of(&typo).preview, "hello", "{backend:?}: the latest text");
        assert_eq!(of(&photo).preview, "📷 Photo");

        let gone = of(&regret);
        assert_eq!(
            (gone.state(), gone.preview.as_str()),
            (Deleted, ""),
            "{backend:?}"
        );
        assert_eq!(gone.sender_user_id, ada.tokens.user_id);
        assert_eq!(gone.conversation_id, chat.conversation_id);

        let answered = of(&reply);
        assert_eq!(answered.preview, "yes!");
        assert_eq!(answered.sender_user_id, bob.tokens.user_id);
        assert_eq!(answered.reply_to_sender_user_id, ada.tokens.user_id);

        let missing = seen
            .iter()
            .find(|p| p.message_id == unknown)
            .expect("listed");
        assert_eq!(missing.state(), NotFound, "{backend:?}");
        assert_eq!(
            (
                missing.conversation_id.as_str(),
                missing.sender_user_id.as_str(),
                missing.seq,
                missing.created_at
            ),
            ("", "", 0, None)
        );
        mesh.shutdown().await;
    }
}

#[tokio::test]
async fn malformed_preview_requests_name_the_field() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let token = mesh.service_token("notification");
        let valid = uuid::Uuid::now_v7().to_string();
        let cases = [
            (Vec::new(), "message_ids"),
            (vec![valid.clone(); 501], "message_ids"),
            // Too many is refused before any element is looked at.
            (vec!["not-a-uuid".to_owned(); 501], "message_ids"),
            (
                vec![valid.clone(), "not-a-uuid".to_owned()],
                "message_ids[1]",
            ),
        ];
        for (ids, field) in cases {
            let count = ids.len();
            let answer = previews(mesh.internal_channel(), Some(&token), ids).await;
            refused_on(
                answer.map(drop),
                field,
                &format!("{backend:?}, {count} ids"),
            );
        }
        // Exactly 500 is allowed (and collapses to one unknown message).
        let five_hundred = vec![valid; 500];
        let seen = previews(mesh.internal_channel(), Some(&token), five_hundred)
            .await
            .expect("500 ids");
        assert_eq!(seen.len(), 1, "{backend:?}");
        assert_eq!(seen[0].state(), msg::NotificationPreviewState::NotFound);
        mesh.shutdown().await;
    }
}
