//! PresenceService and UserService as the `presence` scenario calls them: heartbeats, manual
//! status, reads, contacts (presence's visibility), and WatchPresence streams read up to their
//! snapshot.

use anyhow::{Context as _, bail};
use echo_proto::echo::presence::v1 as pb;
use echo_proto::echo::presence::v1::presence_service_client::PresenceServiceClient;
use echo_proto::echo::user::v1::AddContactRequest;
use echo_proto::echo::user::v1::user_service_client::UserServiceClient;
use tonic::Status;
use tonic::Streaming;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{Bearer, STREAM_SLOTS_HINT, live, users};

/// A PresenceService client acting as one device.
pub type PresenceClient = PresenceServiceClient<InterceptedService<Channel, Bearer>>;
/// A UserService client acting as one user.
pub type UserClient = UserServiceClient<InterceptedService<Channel, Bearer>>;

/// A PresenceService client on `channel` acting as `bearer`'s device.
pub fn presence_client(channel: &Channel, bearer: &Bearer) -> PresenceClient {
    PresenceServiceClient::new(InterceptedService::new(channel.clone(), bearer.clone()))
}

/// A UserService client on `channel` acting as `bearer`'s user.
pub fn user_client(channel: &Channel, bearer: &Bearer) -> UserClient {
    UserServiceClient::new(InterceptedService::new(channel.clone(), bearer.clone()))
}

/// ONLINE or AWAY, as a heartbeat reports it or SetStatus sets it.
pub fn status(away: bool) -> pb::PresenceStatus {
    if away {
        pb::PresenceStatus::Away
    } else {
        pb::PresenceStatus::Online
    }
}

/// One heartbeat of the client's device (no retry: a RATE_LIMITED answer is counted).
pub async fn heartbeat(client: &mut PresenceClient, away: bool) -> Result<(), Status> {
    let request = pb::HeartbeatRequest {
        status: status(away) as i32,
    };
    client.heartbeat(request).await.map(|_| ())
}

/// Set the manual status to AWAY, or clear it (ONLINE).
pub async fn set_status(client: &mut PresenceClient, away: bool) -> Result<(), Status> {
    let request = pb::SetStatusRequest {
        status: status(away) as i32,
        clear_after: None,
    };
    client.set_status(request).await.map(|_| ())
}

/// The caller's view of `user_ids`.
pub async fn get(
    client: &mut PresenceClient,
    user_ids: &[String],
) -> Result<Vec<pb::Presence>, Status> {
    let request = pb::GetPresenceRequest {
        user_ids: user_ids.to_vec(),
    };
    Ok(client.get_presence(request).await?.into_inner().presences)
}

/// Add `user_id` to the client's user's contacts, waiting while the user service has not yet
/// heard of that account.
pub async fn add_contact(client: &UserClient, user_id: &str) -> anyhow::Result<()> {
    let request = AddContactRequest {
        user_id: user_id.to_owned(),
        alias: String::new(),
    };
    users::once_known("add a contact", || {
        let mut client = client.clone();
        let request = request.clone();
        async move { client.add_contact(request).await }
    })
    .await?;
    Ok(())
}

/// A WatchPresence stream of one user, read up to its snapshot.
pub struct Watching {
    /// The rest of the stream: changes and heartbeats.
    pub stream: Streaming<pb::WatchPresenceResponse>,
    /// The snapshot's entry for the watched user.
    pub snapshot: pb::Presence,
}

/// Open a watch of `user_id` and read its snapshot (one Presence), within
/// [`live::OPEN_WITHIN`].
pub async fn watch(client: &mut PresenceClient, user_id: &str) -> anyhow::Result<Watching> {
    match tokio::time::timeout(live::OPEN_WITHIN, watch_unbounded(client, user_id)).await {
        Ok(watching) => watching,
        Err(_) => bail!(
            "a WatchPresence stream did not reach its snapshot within {} s ({STREAM_SLOTS_HINT})",
            live::OPEN_WITHIN.as_secs()
        ),
    }
}

async fn watch_unbounded(client: &mut PresenceClient, user_id: &str) -> anyhow::Result<Watching> {
    let request = pb::WatchPresenceRequest {
        user_ids: vec![user_id.to_owned()],
    };
    // The status itself is the error (no context), so callers can read its code.
    let mut stream = client.watch_presence(request).await?.into_inner();
    while let Some(item) = stream.message().await.context("WatchPresence snapshot")? {
        if let Some(pb::watch_presence_response::Event::Presence(snapshot)) = item.event {
            return Ok(Watching { stream, snapshot });
        }
    }
    bail!("the watch ended before its snapshot")
}
