//! The authorization matrix (issue 17, R5): every RPC of every Echo service × every kind of
//! caller, each cell's expected gRPC code in one table file, `tests/authorization_matrix.txt`,
//! the same on both backends.
//!
//! The RPCs come from the descriptors the server is built from (`echo_proto`'s file descriptor
//! set), not from a list: a new RPC without a row fails the test, and so does a row for an RPC
//! that no longer exists. Each request is made from its descriptor: every string field named
//! after a resource (`conversation_id`, `message_id`, `session_id`, `invite_id`,
//! `contact_request_id`, user ids …) holds a resource of Ada's, a message's `content` carries
//! text, keys are fresh. So the stranger's column is a stranger aiming at someone else's things.
//!
//! The columns, all through the public port unless named `internal`:
//! - `none`: no credential; `tampered`: the stranger's token with Ada's user id in its claims
//!   under the original signature; `expired`: signed by the real key, an hour old;
//!   `revoked`: a session logged out; `deleted`: a session of a deleted account;
//! - `stranger`: a signed-in user who shares nothing with Ada. Where the request names one of
//!   Ada's conversations, messages, sessions, invites or contact requests, the same call naming
//!   ids that exist nowhere must answer exactly the same (code and reason): a stranger does not
//!   learn that a resource exists;
//! - `blocked`: a user Ada has blocked (and the message service knows it), aiming at Ada's
//!   things; `removed`: a member Ada removed from the group; `member`: a plain MEMBER of the
//!   group, neither owner nor admin, calling on Ada's message, invite and membership;
//! - `internal_none`, `internal_user`, `internal_service`: the internal listener with no
//!   credential, with a user's access token, and with a service token (internal services only:
//!   `-` elsewhere).
//!
//! A streaming RPC's cell is the call's status, or `OK` when the stream opened (an item came,
//! or none within a second). To see the whole observed table after a change, run the test: a
//! mismatch prints it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::messages::{direct, group, send, wait_for_block};
use common::users::{block, known_user};
use echo_proto::echo::auth::v1 as auth_pb;
use echo_proto::echo::message::v1 as msg_pb;
use echo_proto::echo::user::v1 as user_pb;
use echo_testkit::{Backend, PASSWORD, SignedIn, TestMesh};
use prost::Message as _;
use prost::bytes::{Buf, BufMut, Bytes};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

const TABLE: &str = include_str!("authorization_matrix.txt");

const COLUMNS: [&str; 12] = [
    "none",
    "tampered",
    "expired",
    "revoked",
    "deleted",
    "stranger",
    "blocked",
    "removed",
    "member",
    "internal_none",
    "internal_user",
    "internal_service",
];

/// RPCs that change how others see the caller (a block of Ada, undone right after) or end the
/// caller's membership, session or account (or would, with the right password) are called
/// last, in this order, so every caller is still what its column says for every other row.
const LAST: [&str; 7] = [
    "BlockUser",
    "UnblockUser",
    "LeaveConversation",
    "RevokeOtherSessions",
    "ChangePassword",
    "DeleteAccount",
    "Logout",
];

/// One RPC, as its service descriptor declares it.
struct Rpc {
    /// `echo.message.v1.MessageService/SendMessage`
    name: String,
    input: String,
    streaming: bool,
    internal: bool,
}

struct Descriptors {
    rpcs: Vec<Rpc>,
    messages: HashMap<String, DescriptorProto>,
    /// Each enum's full name and its values' numbers.
    enums: HashMap<String, Vec<i32>>,
}

fn descriptors() -> Descriptors {
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
        for message in file.message_type {
            let name = format!(".{package}.{}", message.name());
            for e in &message.enum_type {
                enums.insert(format!("{name}.{}", e.name()), numbers(e));
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
struct Targets {
    user: String,
    peer: String,
    conversation: String,
    message: String,
    session: String,
    invite: String,
    contact_request: String,
}

impl Targets {
    /// The same user ids, every other resource an id that exists nowhere.
    fn ghosts(&self) -> Targets {
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

    fn names_a_resource(&self, descriptors: &Descriptors, input: &str) -> bool {
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

    fn value(&self, field: &str) -> Option<String> {
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

    fn values(&self, field: &str) -> Option<Vec<String>> {
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
    fn encode(&self, descriptors: &Descriptors, method: &str, message: &str) -> Vec<u8> {
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
const MASKS: [(&str, &str); 4] = [
    ("EditMessage", "text"),
    ("UpdateConversation", "title"),
    ("UpdateMemberSettings", "pinned"),
    ("UpdateContact", "alias"),
];

/// Passes encoded requests and responses through as bytes.
#[derive(Default)]
struct Raw;

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
struct Answer {
    code: Code,
    reason: String,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            code: Code::Ok,
            reason: String::new(),
        }
    }

    fn of(status: &Status) -> Self {
        Answer {
            code: status.code(),
            reason: common::reason(status),
        }
    }

    /// The code as the table spells it: `PERMISSION_DENIED`.
    fn cell(&self) -> String {
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

async fn call(channel: Channel, token: Option<&str>, rpc: &Rpc, body: Vec<u8>) -> Answer {
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
        return match grpc.unary(request, path, Raw).await {
            Ok(_) => Answer::ok(),
            Err(status) => Answer::of(&status),
        };
    }
    match grpc.server_streaming(request, path, Raw).await {
        Err(status) => Answer::of(&status),
        Ok(response) => {
            let mut stream = response.into_inner();
            match tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
                Ok(Err(status)) => Answer::of(&status),
                Ok(Ok(_)) | Err(_) => Answer::ok(),
            }
        }
    }
}

/// The callers of the columns.
struct Callers {
    stranger: SignedIn,
    blocked: SignedIn,
    removed: SignedIn,
    member: SignedIn,
    tampered: String,
    expired: String,
    revoked: String,
    deleted: String,
    service: String,
}

async fn callers(mesh: &TestMesh, ada: &SignedIn, member: SignedIn, removed: SignedIn) -> Callers {
    let stranger = known_user(mesh).await;
    let blocked = known_user(mesh).await;
    block(mesh, ada, &blocked).await;
    wait_for_block(mesh, &blocked, ada).await;
    let (user, session, device) = ids(&stranger);
    // Ada's id in the stranger's claims, the signature left as it was.
    let parts: Vec<&str> = stranger.tokens.access_token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = serde_json::Value::String(ada.tokens.user_id.clone());
    let forged = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    let key = echo_authn::SigningKey::load_or_generate(&mesh.config.data_dir).unwrap();
    let issuer = echo_authn::TokenIssuer::new(&key, mesh.config.auth.jwt_issuer.clone()).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let (expired, _) = issuer
        .issue_at(
            user,
            session,
            device,
            an_hour_ago,
            Duration::from_secs(60),
            uuid::Uuid::now_v7(),
        )
        .unwrap();
    let revoked = mesh.sign_up().await;
    mesh.auth_as(&revoked)
        .logout(auth_pb::LogoutRequest {})
        .await
        .expect("logout");
    let deleted = known_user(mesh).await;
    mesh.auth_as(&deleted)
        .delete_account(auth_pb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .expect("delete account");
    Callers {
        stranger,
        blocked,
        removed,
        member,
        tampered,
        expired,
        revoked: revoked.tokens.access_token,
        deleted: deleted.tokens.access_token,
        service: mesh.service_token("notification"),
    }
}

fn ids(user: &SignedIn) -> (uuid::Uuid, uuid::Uuid, uuid::Uuid) {
    let t = &user.tokens;
    (
        t.user_id.parse().unwrap(),
        t.session_id.parse().unwrap(),
        t.device_id.parse().unwrap(),
    )
}

/// Ada's things: a group of Ada, Bob, `member` and `removed` holding a message, after which
/// Ada removed `removed`; an invite; a contact request to Bob.
async fn targets(
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

/// Every cell of one backend's matrix, and the existence leaks found on the way.
async fn observe(backend: Backend) -> Option<(BTreeMap<String, Vec<String>>, Vec<String>)> {
    let mesh = TestMesh::start(backend).await?;
    let descriptors = descriptors();
    let ada = known_user(&mesh).await;
    let bob = known_user(&mesh).await;
    let (member, removed) = (known_user(&mesh).await, known_user(&mesh).await);
    let targets = targets(&mesh, &ada, &bob, &member, &removed).await;
    let callers = callers(&mesh, &ada, member, removed).await;
    let (public, internal) = (mesh.channel(), mesh.internal_channel());
    let mut table = BTreeMap::new();
    let mut leaks = Vec::new();
    let mut compared = 0;
    for rpc in &descriptors.rpcs {
        let method = rpc.name.rsplit('/').next().unwrap();
        let body = || targets.encode(&descriptors, method, &rpc.input);
        let mut cells = Vec::new();
        for token in [
            None,
            Some(&callers.tampered),
            Some(&callers.expired),
            Some(&callers.revoked),
            Some(&callers.deleted),
        ] {
            let answer = call(public.clone(), token.map(String::as_str), rpc, body()).await;
            cells.push(answer.cell());
        }
        let token = Some(callers.stranger.tokens.access_token.as_str());
        let answer = call(public.clone(), token, rpc, body()).await;
        if targets.names_a_resource(&descriptors, &rpc.input) {
            compared += 1;
            let ghosts = targets.ghosts().encode(&descriptors, method, &rpc.input);
            let nowhere = call(public.clone(), token, rpc, ghosts).await;
            if nowhere != answer {
                leaks.push(format!(
                    "{backend:?} {}: Ada's resources answer {answer:?}, ids that exist nowhere \
                     {nowhere:?}",
                    rpc.name
                ));
            }
        }
        cells.push(answer.cell());
        for caller in [&callers.blocked, &callers.removed] {
            let token = Some(caller.tokens.access_token.as_str());
            cells.push(call(public.clone(), token, rpc, body()).await.cell());
        }
        let token = Some(callers.member.tokens.access_token.as_str());
        let answer = call(public.clone(), token, rpc, body()).await;
        cells.push(answer.cell());
        if rpc.internal {
            for token in [
                None,
                Some(callers.stranger.tokens.access_token.as_str()),
                Some(callers.service.as_str()),
            ] {
                cells.push(call(internal.clone(), token, rpc, body()).await.cell());
            }
        } else {
            cells.extend(["-".to_owned(), "-".to_owned(), "-".to_owned()]);
        }
        table.insert(rpc.name.clone(), cells);
    }
    mesh.shutdown().await;
    let cells = table.values().flatten().filter(|cell| *cell != "-").count();
    eprintln!(
        "{backend:?}: {} RPCs, {cells} cells called, {compared} existence comparisons",
        table.len()
    );
    Some((table, leaks))
}

fn expected() -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for line in TABLE.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap().to_owned();
        let cells: Vec<String> = words.map(str::to_owned).collect();
        assert_eq!(cells.len(), COLUMNS.len(), "{name}: one cell per column");
        assert!(rows.insert(name.clone(), cells).is_none(), "{name} twice");
    }
    rows
}

fn render(table: &BTreeMap<String, Vec<String>>) -> String {
    let width = table.keys().map(String::len).max().unwrap_or(0);
    let mut out = format!("# {:width$}", "rpc", width = width.saturating_sub(2));
    for column in COLUMNS {
        out.push_str(&format!(" {column:>17}"));
    }
    out.push('\n');
    for (name, cells) in table {
        out.push_str(&format!("{name:width$}"));
        for cell in cells {
            out.push_str(&format!(" {cell:>17}"));
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_as_the_table_says_on_both_backends() {
    let expected = expected();
    for backend in Backend::BOTH {
        let Some((observed, leaks)) = observe(backend).await else {
            continue;
        };
        assert!(
            observed.len() >= 84,
            "the descriptors hold every RPC: {}",
            observed.len()
        );
        let mut wrong = Vec::new();
        for (name, cells) in &observed {
            match expected.get(name) {
                None => wrong.push(format!("{name}: no row in the table")),
                Some(want) => {
                    for ((column, got), want) in COLUMNS.iter().zip(cells).zip(want) {
                        if got != want {
                            wrong.push(format!("{name} {column}: {got}, the table says {want}"));
                        }
                    }
                }
            }
        }
        for name in expected.keys() {
            if !observed.contains_key(name) {
                wrong.push(format!("{name}: in the table, not in the descriptors"));
            }
        }
        assert!(
            wrong.is_empty() && leaks.is_empty(),
            "{backend:?}:\n{}\n{}\nobserved:\n{}",
            wrong.join("\n"),
            leaks.join("\n"),
            render(&observed)
        );
    }
}
