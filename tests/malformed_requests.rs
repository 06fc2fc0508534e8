//! What an outside client gets for requests it got wrong (issue 17): INVALID_ARGUMENT naming
//! the field, the same on both backends, in an answer any stock client can read.
//! - text with NUL or other control characters (PostgreSQL refuses NUL, SQLite stores it);
//! - thousands of bad list elements: the error details stay under the 8 KiB metadata limit of
//!   grpcio and friends (past it they report RESOURCE_EXHAUSTED instead of our answer);
//! - bodies that are not valid gRPC: truncated frames and invalid UTF-8, over grpc-web.

mod common;

use common::frames::{frame, grpc_web, message_frame};
use common::messages::{direct, send, send_request, text};
use common::users::{avatar, known_user, mask};
use common::violated_fields;
use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testkit::{Backend, SignedIn, TestMesh};
use prost::Message as _;
use tonic::Code;
use tonic::transport::Endpoint;

/// grpcio's (and grpc-go's) default limit on received metadata.
const METADATA_LIMIT: u32 = 8 * 1024;

/// The refusal's `field` violations, with its code, for one assertion.
fn refused(status: tonic::Status) -> (Code, Vec<String>) {
    (status.code(), violated_fields(&status))
}

fn invalid(fields: &[&str]) -> (Code, Vec<String>) {
    let fields = fields.iter().map(|f| (*f).to_owned()).collect();
    (Code::InvalidArgument, fields)
}

#[tokio::test]
async fn control_characters_in_text_are_invalid_argument_on_both_backends() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let key = || uuid::Uuid::now_v7().to_string();
        for bad in ["a\u{0}b", "\u{1b}[2J", "bell\u{7}"] {
            let request = send_request(&chat, &key(), text(bad));
            let sent = mesh.message_as(&ada).send_message(request).await;
            let status = sent.expect_err("control characters are refused");
            assert_eq!(
                refused(status),
                invalid(&["content.text"]),
                "{backend:?} {bad:?}"
            );
        }
        // Line breaks and tabs are text.
        let sent = send(&mesh, &ada, &chat, "two\nlines\r\n\tand a tab").await;
        let edit = pb::EditMessageRequest {
            conversation_id: sent.conversation_id.clone(),
            message_id: sent.message_id.clone(),
            content: Some(text("a\u{0}b")),
            update_mask: mask(&["text"]),
        };
        let status = mesh.message_as(&ada).edit_message(edit).await.unwrap_err();
        assert_eq!(refused(status), invalid(&["content.text"]), "{backend:?}");
        // Attachment metadata is text too.
        let content = pb::MessageContent {
            attachments: vec![echo_proto::echo::common::v1::Media {
                url: "https://cdn.example/report.pdf".into(),
                mime_type: "application/pdf".into(),
                file_name: "report\u{0}.pdf".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let request = send_request(&chat, &key(), content);
        let status = mesh.message_as(&ada).send_message(request).await;
        assert_eq!(
            refused(status.unwrap_err()),
            invalid(&["content.attachments[0].file_name"]),
            "{backend:?}"
        );
        // A profile's avatar type reaches a text column.
        let profile = user_pb::Profile {
            avatar: Some(echo_proto::echo::common::v1::Media {
                mime_type: "image/\u{0}jpeg".into(),
                ..avatar()
            }),
            ..Default::default()
        };
        let update = user_pb::UpdateProfileRequest {
            profile: Some(profile),
            update_mask: mask(&["avatar"]),
        };
        let status = mesh.user_as(&ada).update_profile(update).await.unwrap_err();
        assert_eq!(
            refused(status),
            invalid(&["profile.avatar.mime_type"]),
            "{backend:?}"
        );
        mesh.shutdown().await;
    }
}

/// A MessageService client acting as `user` that, like grpcio, refuses answers whose metadata
/// exceeds 8 KiB.
async fn strict_client(
    mesh: &TestMesh,
    user: &SignedIn,
) -> pb::message_service_client::MessageServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor + use<>,
    >,
> {
    let channel = Endpoint::from_shared(format!("http://{}", mesh.addr()))
        .expect("endpoint")
        .http2_max_header_list_size(METADATA_LIMIT)
        .connect()
        .await
        .expect("connect");
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", user.tokens.access_token)
        .parse()
        .expect("ascii");
    let with_token = move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        Ok(request)
    };
    pb::message_service_client::MessageServiceClient::with_interceptor(channel, with_token)
}

/// The size of `status`'s metadata as tonic encodes it (grpc-message and
/// grpc-status-details-bin), counted as HTTP/2 counts a header list (RFC 7541: +32 each).
fn metadata_bytes(status: &tonic::Status) -> usize {
    let mut headers = http::HeaderMap::new();
    status.add_header(&mut headers).expect("encodable");
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Asserts `answer` is INVALID_ARGUMENT whose metadata fits the limit.
fn assert_bounded<T: std::fmt::Debug>(what: &str, answer: Result<T, tonic::Status>) {
    let status = answer.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let size = metadata_bytes(&status);
    assert!(size < METADATA_LIMIT as usize, "{what}: {size} bytes");
    let violations = violated_fields(&status).len();
    assert!((1..=21).contains(&violations), "{what}: {violations}");
}

#[tokio::test]
async fn thousands_of_bad_list_elements_answer_within_the_metadata_limit() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let ada = known_user(&mesh).await;
    let bob = known_user(&mesh).await;
    let chat = direct(&mesh, &ada, &bob).await;
    let mut client = strict_client(&mesh, &ada).await;
    let mentions = |n: usize| pb::MessageContent {
        text: "hi".into(),
        mentions: vec![
            pb::Mention {
                user_id: "not a uuid".into(),
                offset: 7,
                length: 9,
            };
            n
        ],
        ..Default::default()
    };
    for n in [50, 60, 10_000] {
        let key = uuid::Uuid::now_v7().to_string();
        let request = send_request(&chat, &key, mentions(n));
        assert_bounded(
            &format!("{n} bad mentions"),
            client.send_message(request).await,
        );
    }
    let create = |n: usize| pb::CreateConversationRequest {
        r#type: pb::ConversationType::Group.into(),
        title: "Analytical Engine".into(),
        member_user_ids: (0..n).map(|i| format!("{i}{}", "é".repeat(40))).collect(),
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    for n in [256, 257, 5_000] {
        let answer = client.create_conversation(create(n)).await;
        assert_bounded(&format!("{n} malformed member ids"), answer);
    }
    let add = |n: usize| pb::AddMembersRequest {
        conversation_id: chat.conversation_id.clone(),
        user_ids: vec!["nope".into(); n],
    };
    for n in [100, 101, 5_000] {
        let answer = client.add_members(add(n)).await;
        assert_bounded(&format!("{n} malformed user ids"), answer);
    }
    mesh.shutdown().await;
}

#[tokio::test]
async fn undecodable_grpc_web_bodies_are_invalid_argument() {
    let mesh = TestMesh::start(Backend::Embedded).await.unwrap();
    let request = echo_proto::echo::auth::v1::RegisterRequest {
        phone_number: "+14155550123".into(),
        password: "correct horse battery staple".into(),
        display_name: "Ada".into(),
    }
    .encode_to_vec();
    // The frame announces the whole message; the body ends ten bytes into it.
    let truncated = frame(0, request.len() as u32, &request[..10]);
    let path = "/echo.auth.v1.AuthService/Register";
    let (status, request_id) = grpc_web(mesh.addr(), path, None, truncated).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(!request_id.is_empty(), "the answer carries a request id");
    // Invalid UTF-8 one level down is named outermost first: VerifyPhoneRequest.device (3)
    // → DeviceInfo.name (1).
    let mut device = Vec::new();
    prost::encoding::bytes::encode(1, &b"\xffphone".to_vec(), &mut device);
    let mut verify = Vec::new();
    prost::encoding::bytes::encode(3, &device, &mut verify);
    let path = "/echo.auth.v1.AuthService/VerifyPhone";
    let (status, request_id) = grpc_web(mesh.addr(), path, None, message_frame(&verify)).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["device.name"]);
    assert!(!request_id.is_empty(), "the answer carries a request id");
    mesh.shutdown().await;
}
