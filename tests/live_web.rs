//! Subscribe over grpc-web, as a browser sends it (HTTP/1.1, `application/grpc-web+proto`):
//! the stream's frames arrive as they happen, not when the call ends, on both backends.

mod common;

use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{Backend, TestMesh};
use pb::conversation_event::Kind;
use pb::subscribe_response::Item;
use prost::Message;

use common::messages::{direct, send};
use common::users::known_user;

const WAIT: Duration = Duration::from_secs(10);

/// Reads grpc-web frames off a streaming HTTP response body.
struct WebFrames {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WebFrames {
    /// The next data frame as a SubscribeResponse; panics on a trailer frame or the end.
    async fn next(&mut self) -> pb::SubscribeResponse {
        loop {
            if self.buffer.len() >= 5 {
                let flag = self.buffer[0];
                let length =
                    u32::from_be_bytes(self.buffer[1..5].try_into().expect("4 bytes")) as usize;
                if self.buffer.len() >= 5 + length {
                    let payload: Vec<u8> = self.buffer.drain(..5 + length).skip(5).collect();
                    assert_eq!(
                        flag,
                        0,
                        "a trailer frame ended the stream: {}",
                        String::from_utf8_lossy(&payload)
                    );
                    return pb::SubscribeResponse::decode(payload.as_slice()).expect("decodes");
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("a frame in time")
                .expect("body readable")
                .expect("the stream stays open");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn subscribe_streams_live_items_over_grpc_web() {
    for backend in Backend::BOTH {
        let Some(mesh) = TestMesh::start(backend).await else {
            continue;
        };
        let ada = known_user(&mesh).await;
        let bob = known_user(&mesh).await;
        let chat = direct(&mesh, &ada, &bob).await;
        let http = reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("client");
        let url = format!(
            "http://{}/echo.message.v1.MessageService/Subscribe",
            mesh.addr()
        );
        let response = http
            .post(url)
            .header("origin", "https://app.example")
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header(
                "authorization",
                format!("Bearer {}", bob.tokens.access_token),
            )
            .body(frame(&pb::SubscribeRequest::default().encode_to_vec()))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(response.status(), 200, "{backend:?}");
        let mut frames = WebFrames {
            response,
            buffer: Vec::new(),
        };
        let first = frames.next().await;
        assert!(
            matches!(first.item, Some(Item::Ready(_))) && !first.cursor.is_empty(),
            "{backend:?}: Ready first: {first:?}"
        );

        // Sent after the stream opened: it must arrive while the call is still open.
        let sent = send(&mesh, &ada, &chat, "over grpc-web").await;
        let delivered = loop {
            let item = frames.next().await;
            if let Some(Item::ConversationEvent(event)) = &item.item
                && let Some(Kind::MessageCreated(created)) = &event.kind
            {
                break (
                    item.cursor.clone(),
                    created.message.clone().expect("snapshot"),
                );
            }
        };
        let (cursor, message) = delivered;
        assert_eq!(message.seq, sent.seq, "{backend:?}");
        assert_eq!(
            message.content.expect("content").text,
            "over grpc-web",
            "{backend:?}"
        );
        assert!(
            !cursor.is_empty(),
            "{backend:?}: durable items carry a cursor"
        );
        mesh.shutdown().await;
    }
}
