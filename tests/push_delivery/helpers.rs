//! What every push test uses: a mesh pushing to a fake push service, unique tokens, and
//! reads of what the fake received and what the services say.

pub use std::time::Duration;

pub use echo_proto::echo::auth::v1 as auth;
pub use echo_proto::echo::message::v1 as msg;
pub use echo_proto::echo::notification::v1 as pb;
pub use echo_proto::echo::presence::v1 as presence;
pub use echo_proto::echo::user::v1 as user;
pub use echo_push::Platform;
pub use echo_push::fake::{FakePushServer, Recorded, Reply};
pub use echo_testkit::{Backend, SignedIn, TestMesh};

pub(crate) use crate::common;
pub use crate::common::live::eventually;
pub use crate::common::live::mark_delivered;
pub use crate::common::messages::{direct, send};
pub use crate::common::second_device;

use std::sync::atomic::{AtomicU64, Ordering};

/// Long enough for a push that is coming to arrive on a busy machine.
pub const ARRIVES: Duration = Duration::from_secs(15);
/// The recheck delay these meshes use.
pub const RECHECK: Duration = Duration::from_secs(2);
/// The badge push interval these meshes use (10 s by default).
pub const BADGE_INTERVAL: Duration = Duration::from_secs(3);
/// How long these meshes pause a platform that refused our credentials (30 s by default).
pub const CREDENTIAL_PAUSE: Duration = Duration::from_secs(2);

/// A mesh whose notification service sends FCM and APNs pushes to `fake`; the credential
/// files live in the returned directory.
pub async fn start(
    backend: Backend,
    fake: &FakePushServer,
) -> Option<(TestMesh, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mesh = TestMesh::start_with(backend, "all", |config| {
        echo_testkit::push::configure(config, fake, dir.path());
        config.notification.recheck_delay = RECHECK;
        config.notification.badge_interval = BADGE_INTERVAL;
        config.notification.credential_pause = CREDENTIAL_PAUSE;
        config.notification.poll_every = Duration::from_millis(50);
        // Channel posts fan out in several chunks even to a handful of members.
        config.notification.fanout_chunk = 2;
    })
    .await?;
    Some((mesh, dir))
}

/// Ada and Bob in a direct conversation, Bob with an FCM token, on a mesh pushing to a fake.
pub struct Chat {
    pub mesh: TestMesh,
    pub _files: tempfile::TempDir,
    pub ada: SignedIn,
    pub bob: SignedIn,
    pub token: String,
    pub chat: msg::Conversation,
}

pub async fn chat(backend: Backend, fake: &FakePushServer) -> Option<Chat> {
    let (mesh, files) = start(backend, fake).await?;
    let ada = mesh.sign_up().await;
    let bob = mesh.sign_up().await;
    let token = register_fcm(&mesh, &bob).await;
    let chat = direct(&mesh, &ada, &bob).await;
    Some(Chat {
        mesh,
        _files: files,
        ada,
        bob,
        token,
        chat,
    })
}

/// A fresh FCM registration token, unique by construction.
pub fn fcm_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "fcm-{}:{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        "A".repeat(140)
    )
}

/// A fresh APNs device token (64 hex digits), unique by construction.
pub fn apns_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:064x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn register_fcm(mesh: &TestMesh, who: &SignedIn) -> String {
    let token = fcm_token();
    mesh.notification_as(who)
        .register_push_token(pb::RegisterPushTokenRequest {
            platform: pb::PushPlatform::Fcm as i32,
            token: token.clone(),
            app_id: String::new(),
            sandbox: false,
        })
        .await
        .expect("register FCM token");
    token
}

pub fn to(fake: &FakePushServer, token: &str) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.platform == Platform::Fcm && r.key == token)
        .collect()
}

pub fn data<'a>(request: &'a Recorded, field: &str) -> &'a str {
    request.payload["message"]["data"][field]
        .as_str()
        .unwrap_or_default()
}

/// Waits for the `n`th request to `token` and returns them all.
pub async fn nth(fake: &FakePushServer, token: &str, n: usize, what: &str) -> Vec<Recorded> {
    eventually(ARRIVES, what, || async {
        let seen = to(fake, token);
        (seen.len() >= n).then_some(seen)
    })
    .await
}

pub async fn badge(mesh: &TestMesh, who: &SignedIn) -> i32 {
    mesh.notification_as(who)
        .get_badge_count(pb::GetBadgeCountRequest {})
        .await
        .expect("badge")
        .into_inner()
        .badge_count
}

pub async fn inbox(mesh: &TestMesh, who: &SignedIn) -> Vec<pb::InboxEntry> {
    mesh.notification_as(who)
        .list_inbox(pb::ListInboxRequest::default())
        .await
        .expect("inbox")
        .into_inner()
        .entries
}

pub async fn mark_read(
    mesh: &TestMesh,
    who: &SignedIn,
    conversation: &msg::Conversation,
    seq: i64,
) {
    mesh.message_as(who)
        .mark_read(msg::MarkReadRequest {
            conversation_id: conversation.conversation_id.clone(),
            last_read_seq: seq,
        })
        .await
        .expect("mark read");
}

pub async fn heartbeat(mesh: &TestMesh, who: &SignedIn) {
    mesh.presence_as(who)
        .heartbeat(presence::HeartbeatRequest {
            status: presence::PresenceStatus::Online as i32,
        })
        .await
        .expect("heartbeat");
}

pub fn display_name(who: &SignedIn) -> String {
    format!("Test {}", &who.phone[who.phone.len() - 4..])
}

/// Σ unread over `who`'s conversations as the message service counts them.
pub async fn message_unread_total(mesh: &TestMesh, who: &SignedIn) -> i32 {
    let listed = mesh
        .message_as(who)
        .list_conversations(msg::ListConversationsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list conversations")
        .into_inner();
    listed
        .conversations
        .iter()
        .filter_map(|c| c.my_state.as_ref())
        .map(|s| s.unread_count)
        .sum()
}

/// `who`'s push tokens, as ListPushTokens lists them.
pub async fn tokens(mesh: &TestMesh, who: &SignedIn) -> Vec<pb::PushToken> {
    mesh.notification_as(who)
        .list_push_tokens(pb::ListPushTokensRequest::default())
        .await
        .expect("list push tokens")
        .into_inner()
        .push_tokens
}
