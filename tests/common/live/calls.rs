//! The calls live tests make around their streams: second devices, conversations, membership,
//! typing, edits, reactions, read state, and the admin gauges.

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{PASSWORD, SignedIn, TestMesh};
use tonic::Status;

use crate::common::login;

/// Another device of `user`: a second sign-in with its own session and device id.
pub async fn other_device(mesh: &TestMesh, user: &SignedIn) -> SignedIn {
    let tokens = login(mesh, &user.phone, PASSWORD)
        .await
        .expect("second sign-in");
    SignedIn {
        phone: user.phone.clone(),
        tokens,
    }
}

/// A GROUP or CHANNEL, retried while the message service has not yet learnt of a member.
pub async fn conversation_of(
    mesh: &TestMesh,
    owner: &SignedIn,
    kind: pb::ConversationType,
    members: &[&SignedIn],
) -> pb::Conversation {
    crate::common::messages::group(mesh, owner, kind, members).await
}

/// A GROUP of `owner` and `members`.
pub async fn group_of(
    mesh: &TestMesh,
    owner: &SignedIn,
    members: &[&SignedIn],
) -> pb::Conversation {
    conversation_of(mesh, owner, pb::ConversationType::Group, members).await
}

/// Add `users` to `conversation` as `by`.
pub async fn add(mesh: &TestMesh, by: &SignedIn, conversation: &str, users: &[&SignedIn]) {
    crate::common::messages::add_members(mesh, by, conversation, users).await;
}

/// Remove `user` from `conversation` as `by`; the seq of the MemberRemoved event.
pub async fn remove(mesh: &TestMesh, by: &SignedIn, conversation: &str, user: &SignedIn) -> i64 {
    mesh.message_as(by)
        .remove_member(pb::RemoveMemberRequest {
            conversation_id: conversation.into(),
            user_id: user.tokens.user_id.clone(),
        })
        .await
        .expect("remove member")
        .into_inner()
        .seq
}

/// Set `user`'s typing indicator in `conversation`.
pub async fn set_typing(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &str,
    typing: bool,
) -> Result<pb::SetTypingResponse, Status> {
    mesh.message_as(user)
        .set_typing(pb::SetTypingRequest {
            conversation_id: conversation.into(),
            typing,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The conversation's current last seq, as `user` sees it.
pub async fn last_seq(mesh: &TestMesh, user: &SignedIn, conversation: &str) -> i64 {
    mesh.message_as(user)
        .get_conversation(pb::GetConversationRequest {
            conversation_id: conversation.into(),
        })
        .await
        .expect("get conversation")
        .into_inner()
        .conversation
        .expect("conversation")
        .last_seq
}

/// The sum of every series of the gauge `name` on the mesh's admin `/metrics`; `None` when
/// the gauge is not exported at all.
pub async fn gauge(mesh: &TestMesh, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", mesh.admin_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(value) = value {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// Replace `message`'s text as its sender.
pub async fn edit_text(mesh: &TestMesh, sender: &SignedIn, message: &pb::Message, text: &str) {
    mesh.message_as(sender)
        .edit_message(pb::EditMessageRequest {
            conversation_id: message.conversation_id.clone(),
            message_id: message.message_id.clone(),
            content: Some(crate::common::messages::text(text)),
            update_mask: crate::common::users::mask(&["text"]),
        })
        .await
        .expect("edit");
}

/// Delete `message` with `scope` as `user`.
pub async fn delete(
    mesh: &TestMesh,
    user: &SignedIn,
    message: &pb::Message,
    scope: pb::DeleteScope,
) -> Result<(), Status> {
    mesh.message_as(user)
        .delete_message(pb::DeleteMessageRequest {
            conversation_id: message.conversation_id.clone(),
            message_id: message.message_id.clone(),
            scope: scope.into(),
        })
        .await
        .map(drop)
}

/// React to `message` with `emoji` as `user`.
pub async fn react(
    mesh: &TestMesh,
    user: &SignedIn,
    message: &pb::Message,
    emoji: &str,
) -> Result<(), Status> {
    mesh.message_as(user)
        .add_reaction(pb::AddReactionRequest {
            conversation_id: message.conversation_id.clone(),
            message_id: message.message_id.clone(),
            emoji: emoji.into(),
        })
        .await
        .map(drop)
}

/// Move `user`'s read marker in `conversation` to `seq`.
pub async fn mark_read(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &str,
    seq: i64,
) -> Result<(), Status> {
    mesh.message_as(user)
        .mark_read(pb::MarkReadRequest {
            conversation_id: conversation.into(),
            last_read_seq: seq,
        })
        .await
        .map(drop)
}

/// Acknowledge delivery up to `seq` on `user`'s device.
pub async fn mark_delivered(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &str,
    seq: i64,
) -> Result<(), Status> {
    mesh.message_as(user)
        .mark_delivered(pb::MarkDeliveredRequest {
            conversation_id: conversation.into(),
            up_to_seq: seq,
        })
        .await
        .map(drop)
}

/// Pin (or unpin) `conversation` in `user`'s list: a per-user settings event.
pub async fn pin_conversation(
    mesh: &TestMesh,
    user: &SignedIn,
    conversation: &str,
    pinned: bool,
) -> Result<(), Status> {
    mesh.message_as(user)
        .update_member_settings(pb::UpdateMemberSettingsRequest {
            conversation_id: conversation.into(),
            settings: Some(pb::MemberSettings {
                pinned,
                ..Default::default()
            }),
            update_mask: crate::common::users::mask(&["pinned"]),
        })
        .await
        .map(drop)
}
