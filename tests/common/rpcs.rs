//! Calling any RPC from its descriptor: the RPCs of every Echo service read from the
//! descriptor set the server is built from, requests encoded from their input descriptors,
//! and a bytes codec to send them and read the status (tests/authorization_matrix.rs,
//! tests/fuzz_requests.rs).
//!
//! One piece: what `targets` builds (Ada's group, message, invite and contact request), the field
//! names `Targets::value`, `values` and `MASKS` fill with it, and the `LAST` order that calls the
//! RPCs destroying those things at the end describe one valid request together; split, a new RPC
//! could get its fields filled in one file and its destructive effect left out of `LAST` in
//! another.

use std::collections::HashMap;
use std::time::Duration;

use echo_proto::echo::message::v1 as msg_pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testkit::{SignedIn, TestMesh};
use prost::Message as _;
use prost::bytes::{Buf, BufMut, Bytes};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::messages::{direct, group, send};

/// RPCs that change how others see the caller (a block of Ada, undone right after), destroy
/// Ada's invite or message, or end the caller's membership, session or account (or would,
/// with the right password) are called last, in this order, so every caller and target is
/// still what its column says for every other row.
pub const LAST: [&str; 10] = [
    "BlockUser",
    "UnblockUser",
    "RevokeInvite",
    "DeleteMessage",
    "LeaveConversation",
    "RevokeOtherSessions",
    "ChangePassword",
    "DeleteAccount",
    "RevokeSession",
    "Logout",
];

/// One RPC, as its service descriptor declares it.
pub struct Rpc {
    /// `echo.message.v1.MessageService/SendMessage`
    pub name: String,
    pub input: String,
    pub streaming: bool,
    pub internal: bool,
}

pub struct Descriptors {
    pub rpcs: Vec<Rpc>,
    /// Every message by full name (`.echo.message.v1.MessageContent`), nested ones included.
    pub messages: HashMap<String, DescriptorProto>,
    /// Each enum's full name and its values' numbers.
    pub enums: HashMap<String, Vec<i32>>,
}

pub fn descriptors() -> Descriptors {
    let set = FileDescriptorSet::decode(echo_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut rpcs = Vec::new();
    let mut messages = HashMap::new();
    let mut enums = HashMap::new();
    let numbers = |e: &prost_types::EnumDescriptorProto| -> Vec<i32> {
        e.value.iter().map(|v| v.number()).collect()
    };
    for file in set.file {
        let package = file.package().to_owned();
        for e in &file.enum_type {
            enums.insert(format!(".{package}.{}", e.name()), numbers(e));
        }
        let mut pending: Vec<(String, DescriptorProto)> = file
            .message_type
            .into_iter()
            .map(|m| (format!(".{package}"), m))
            .collect();
        while let Some((scope, message)) = pending.pop() {
            let name = format!("{scope}.{}", message.name());
            for e in &message.enum_type {
                enums.insert(format!("{name}.{}", e.name()), numbers(e));
            }
            for nested in &message.nested_type {
                pending.push((name.clone(), nested.clone()));
            }
            messages.insert(name, message);
        }
        if !package.starts_with("echo.") {
            continue;
        }
        for service in file.service {
            for method in &service.method {
                rpcs.push(Rpc {
                    name: format!("{package}.{}/{}", service.name(), method.name()),
                    input: method.input_type().to_owned(),
                    streaming: method.server_streaming(),
                    internal: service.name().ends_with("InternalService"),
                });
            }
        }
    }
    let last = |rpc: &Rpc| {
        let method = rpc.name.rsplit('/').next().unwrap();
        LAST.iter().position(|m| *m == method)
    };
    rpcs.sort_by(|a, b| (last(a), &a.name).cmp(&(last(b), &b.name)));
    Descriptors {
        rpcs,
        messages,
        enums,
    }
}

/// The things of Ada's that requests name, and the values the other fields get.
pub struct Targets {
    pub user: String,
    pub peer: String,
    pub conversation: String,
    pub message: String,
    pub session: String,
    pub invite: String,
    pub contact_request: String,
}

impl Targets {
    /// The same user ids, every other resource an id that exists nowhere.
    pub fn ghosts(&self) -> Targets {
        let ghost = || uuid::Uuid::now_v7().to_string();
        Targets {
            user: self.user.clone(),
            peer: self.peer.clone(),
            conversation: ghost(),
            message: ghost(),
            session: ghost(),
            invite: ghost(),
            contact_request: ghost(),
        }
    }

    pub fn names_a_resource(&self, descriptors: &Descriptors, input: &str) -> bool {
        descriptors.messages[input].field.iter().any(|field| {
            matches!(
                field.name(),
                "conversation_id"
                    | "message_id"
                    | "session_id"
                    | "invite_id"
                    | "contact_request_id"
                    | "thread_root_message_id"
                    | "root_message_id"
                    | "around_message_id"
            )
        })
    }

    pub fn value(&self, field: &str) -> Option<String> {
        Some(match field {
            "conversation_id" => self.conversation.clone(),
            "message_id"
            | "thread_root_message_id"
            | "root_message_id"
            | "reply_to_message_id"
            | "around_message_id" => self.message.clone(),
            "session_id" => self.session.clone(),
            "invite_id" => self.invite.clone(),
            "contact_request_id" => self.contact_request.clone(),
            "user_id" | "peer_user_id" | "contact_user_id" => self.user.clone(),
            "client_message_id" | "client_request_id" => uuid::Uuid::now_v7().to_string(),
            "text" | "query" => "fox".into(),
            "emoji" => "👍".into(),
            "title" => "Analytical Engine".into(),
            _ => return None,
        })
    }

    pub fn values(&self, field: &str) -> Option<Vec<String>> {
        match field {
            "user_ids" => Some(vec![self.user.clone()]),
            "member_user_ids" => Some(vec![self.peer.clone()]),
            "message_ids" => Some(vec![self.message.clone()]),
            _ => None,
        }
    }

    /// `message`'s encoding, a request of `method`, with the fields above filled in; enums
    /// take their second value when they have one (a DeleteScope of FOR_EVERYONE, a role of
    /// ADMIN), else their first after UNSPECIFIED; a content's text, a conversation's or
    /// contact's ids and an update mask's paths (see [`MASKS`]) are filled in too, so requests
    /// get past validation to the authorization behind it.
    pub fn encode(&self, descriptors: &Descriptors, method: &str, message: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        for field in &descriptors.messages[message].field {
            let number = u32::try_from(field.number()).expect("field number");
            match (field.r#type(), field.label()) {
                (Type::String, Label::Repeated) => {
                    for value in self.values(field.name()).unwrap_or_default() {
                        prost::encoding::string::encode(number, &value, &mut buf);
                    }
                }
                (Type::String, _) => {
                    if let Some(value) = self.value(field.name()) {
                        prost::encoding::string::encode(number, &value, &mut buf);
                    }
                }
                (Type::Enum, Label::Optional) => {
                    let values = &descriptors.enums[field.type_name()];
                    let value = if values.contains(&2) { 2 } else { 1 };
                    prost::encoding::int32::encode(number, &value, &mut buf);
                }
                (Type::Message, Label::Optional) if field.name() == "update_mask" => {
                    let mut mask = Vec::new();
                    for (rpc, path) in MASKS {
                        if rpc == method {
                            prost::encoding::string::encode(1, &path.to_owned(), &mut mask);
                        }
                    }
                    prost::encoding::bytes::encode(number, &mask, &mut buf);
                }
                (Type::Message, Label::Optional)
                    if matches!(field.name(), "content" | "conversation" | "contact") =>
                {
                    let inner = self.encode(descriptors, method, field.type_name());
                    prost::encoding::bytes::encode(number, &inner, &mut buf);
                }
                _ => {}
            }
        }
        buf
    }
}

/// The update mask each partial update names, so the request is valid.
pub const MASKS: [(&str, &str); 4] = [
    ("EditMessage", "text"),
    ("UpdateConversation", "title"),
    ("UpdateMemberSettings", "pinned"),
    ("UpdateContact", "alias"),
];

/// Passes encoded requests and responses through as bytes.
#[derive(Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What one call answered: its code and the ErrorInfo reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: Code,
    pub reason: String,
}

impl Answer {
    pub fn ok() -> Self {
        Answer {
            code: Code::Ok,
            reason: String::new(),
        }
    }

    pub fn of(status: &Status) -> Self {
        Answer {
            code: status.code(),
            reason: super::reason(status),
        }
    }

    /// The code as the table spells it: `PERMISSION_DENIED`.
    pub fn cell(&self) -> String {
        let mut name = String::new();
        for (i, c) in format!("{:?}", self.code).chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        name
    }
}

/// What calling `rpc` with `body` answers: its status (`None` for OK). A streaming call is OK
/// when the stream opens and neither an item nor an error comes within `stream_wait`.
pub async fn status(
    channel: Channel,
    token: Option<&str>,
    rpc: &Rpc,
    body: Vec<u8>,
    stream_wait: Duration,
) -> Option<Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        request.metadata_mut().insert("authorization", value);
    }
    let path = format!("/{}", rpc.name).parse().expect("path");
    if !rpc.streaming {
        return grpc.unary(request, path, Raw).await.err();
    }
    match grpc.server_streaming(request, path, Raw).await {
        Err(status) => Some(status),
        Ok(response) => {
            let mut stream = response.into_inner();
            match tokio::time::timeout(stream_wait, stream.message()).await {
                Ok(Err(status)) => Some(status),
                Ok(Ok(_)) | Err(_) => None,
            }
        }
    }
}

/// The code and reason calling `rpc` with `body` answers (a stream: within a second).
pub async fn call(channel: Channel, token: Option<&str>, rpc: &Rpc, body: Vec<u8>) -> Answer {
    match status(channel, token, rpc, body, Duration::from_secs(1)).await {
        None => Answer::ok(),
        Some(status) => Answer::of(&status),
    }
}

/// Ada's things: a group of Ada, Bob, `member` and `removed` holding a message, after which
/// Ada removed `removed` and made Bob an ADMIN; an invite; a contact request to Bob.
pub async fn targets(
    mesh: &TestMesh,
    ada: &SignedIn,
    bob: &SignedIn,
    member: &SignedIn,
    removed: &SignedIn,
) -> Targets {
    direct(mesh, ada, bob).await;
    let kind = msg_pb::ConversationType::Group;
    let room = group(mesh, ada, kind, &[bob, member, removed]).await;
    let message = send(mesh, ada, &room, "the quick brown fox").await;
    mesh.message_as(ada)
        .remove_member(msg_pb::RemoveMemberRequest {
            conversation_id: room.conversation_id.clone(),
            user_id: removed.tokens.user_id.clone(),
        })
        .await
        .expect("remove");
    mesh.message_as(ada)
        .update_member_role(msg_pb::UpdateMemberRoleRequest {
            conversation_id: room.conversation_id.clone(),
            user_id: bob.tokens.user_id.clone(),
            role: msg_pb::MemberRole::Admin.into(),
        })
        .await
        .expect("Bob made an admin");
    let invite = mesh
        .message_as(ada)
        .create_invite(msg_pb::CreateInviteRequest {
            conversation_id: room.conversation_id.clone(),
            ..Default::default()
        })
        .await
        .expect("invite")
        .into_inner()
        .invite
        .expect("invite");
    let request = mesh
        .user_as(ada)
        .send_contact_request(user_pb::SendContactRequestRequest {
            user_id: bob.tokens.user_id.clone(),
            message: String::new(),
        })
        .await
        .expect("contact request")
        .into_inner()
        .contact_request
        .expect("contact request");
    Targets {
        user: ada.tokens.user_id.clone(),
        peer: bob.tokens.user_id.clone(),
        conversation: room.conversation_id,
        message: message.message_id,
        session: ada.tokens.session_id.clone(),
        invite: invite.invite_id,
        contact_request: request.contact_request_id,
    }
}

/// The end of a fuzz run (tests/fuzz_requests.rs, tests/fuzz_frames.rs): the server still
/// answers `user` afterwards, and no answer was left unconsidered.
pub async fn assert_survived(
    mesh: &TestMesh,
    user: &SignedIn,
    backend: echo_testkit::Backend,
    faults: &[String],
) {
    let alive = mesh.user_as(user).get_me(user_pb::GetMeRequest {}).await;
    assert!(
        alive.is_ok(),
        "{backend:?}: the server answers afterwards: {alive:?}"
    );
    assert!(
        faults.is_empty(),
        "{backend:?}: {} unconsidered answers:\n{}",
        faults.len(),
        faults.join("\n")
    );
}
