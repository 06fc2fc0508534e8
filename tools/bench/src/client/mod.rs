//! The load's side of the wire: connections, authenticated clients, sends with the rate-limit
//! etiquette a real client follows, sign-ups, conversations and Subscribe streams.

pub mod live;
pub mod presence;
pub mod users;

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use echo_proto::echo::message::v1 as pb;
use echo_proto::echo::message::v1::message_service_client::MessageServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Adds `authorization: Bearer <token>` to every call. Clones share the token, so a refresh
/// ([`Bearer::set`]) reaches every client built from it: runs longer than the access token's
/// lifetime (about 15 minutes) refresh it (`users::refresh_all`).
#[derive(Clone, Debug)]
pub struct Bearer(Arc<RwLock<MetadataValue<Ascii>>>);

impl Bearer {
    /// The header for `access_token`.
    pub fn new(access_token: &str) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(RwLock::new(Self::header(access_token)?))))
    }

    /// From now on, every call carries `access_token`.
    pub fn set(&self, access_token: &str) -> anyhow::Result<()> {
        let header = Self::header(access_token)?;
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = header;
        Ok(())
    }

    fn header(access_token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
        Ok(format!("Bearer {access_token}").parse()?)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let header = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        request.metadata_mut().insert("authorization", header);
        Ok(request)
    }
}

/// A MessageService client acting as one user.
pub type MessageClient = MessageServiceClient<InterceptedService<Channel, Bearer>>;

/// A MessageService client on `channel` acting as `bearer`'s user.
pub fn message_client(channel: &Channel, bearer: &Bearer) -> MessageClient {
    MessageServiceClient::new(InterceptedService::new(channel.clone(), bearer.clone()))
}

/// Open one HTTP/2 connection to `endpoint`, from `local` if given (a 127.0.0.x source
/// address spreads many connections over several address pairs).
pub async fn connect(endpoint: &str, local: Option<IpAddr>) -> anyhow::Result<Channel> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .local_address(local)
        .connect()
        .await?;
    Ok(channel)
}

/// A few connections that calls and streams take turns on, grown for the long-lived streams a
/// scenario holds: a server takes a fixed number of concurrent streams per connection (Echo's
/// public port: `public.max_concurrent_streams`, 100 by default), and a call past it waits for
/// a free one, so the bench puts at most `streams_per_connection` streams on each connection
/// ([`Pool::for_streams`]) as a well-behaved client does.
#[derive(Clone, Debug)]
pub struct Pool {
    endpoint: String,
    channels: Vec<Channel>,
    streams_per_connection: usize,
}

impl Pool {
    /// `connections` connections to `endpoint` (at least one), for calls and for at most
    /// `streams_per_connection` long-lived streams on each.
    pub async fn connect(
        endpoint: &str,
        connections: usize,
        streams_per_connection: usize,
    ) -> anyhow::Result<Self> {
        let mut channels = Vec::new();
        for _ in 0..connections.max(1) {
            channels.push(connect(endpoint, None).await?);
        }
        Ok(Self {
            endpoint: endpoint.to_owned(),
            channels,
            streams_per_connection: streams_per_connection.max(1),
        })
    }

    /// This pool's connections and as many new ones as `streams` long-lived streams need, so
    /// that the `i`th stream on [`Pool::get`]`(i)` shares its connection with at most
    /// `streams_per_connection - 1` others. The new connections close when the returned pool
    /// and everything made from it are dropped.
    pub async fn for_streams(&self, streams: usize) -> anyhow::Result<Self> {
        let mut grown = self.clone();
        let wanted = connections_for(streams, self.len(), self.streams_per_connection);
        while grown.channels.len() < wanted {
            grown.channels.push(connect(&self.endpoint, None).await?);
        }
        Ok(grown)
    }

    /// How many connections.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// The most long-lived streams it puts on one connection.
    pub fn streams_per_connection(&self) -> usize {
        self.streams_per_connection
    }

    /// The connection for the `index`th user, call or stream.
    pub fn get(&self, index: usize) -> &Channel {
        &self.channels[index % self.channels.len()]
    }

    /// How `streams` streams spread round robin over this pool, for errors.
    pub fn layout(&self, streams: usize) -> String {
        layout(streams, self.len())
    }
}

/// Connections for `streams` long-lived streams with at most `per_connection` on each, and at
/// least `minimum` (the calls' connections, `--connections`).
pub fn connections_for(streams: usize, minimum: usize, per_connection: usize) -> usize {
    streams.div_ceil(per_connection.max(1)).max(minimum).max(1)
}

/// "1000 streams over 4 connections (up to 250 on one)": what an error about opening them says.
pub fn layout(streams: usize, connections: usize) -> String {
    let connections = connections.max(1);
    format!(
        "{streams} streams over {connections} connections (up to {} on one)",
        streams.div_ceil(connections)
    )
}

/// Why a stream that did not open within its deadline may not have.
pub const STREAM_SLOTS_HINT: &str = "a connection carries at most the server's \
     max_concurrent_streams (Echo's public.max_concurrent_streams, default 100) at once and \
     queues the rest; keep --streams-per-connection below it";

/// The ErrorInfo reason of `status` (empty if it has none).
pub fn reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// How a failed call is counted: its code, and its reason when it has one.
pub fn failure_label(status: &Status) -> String {
    let reason = reason(status);
    if reason.is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}/{reason}", status.code())
    }
}

/// The text message a bench sends.
pub fn text(body: String) -> pb::MessageContent {
    pb::MessageContent {
        text: body,
        ..Default::default()
    }
}

/// What one send cost.
#[derive(Debug)]
pub struct Sent {
    /// The stored message (seq assigned).
    pub message: pb::Message,
    /// RESOURCE_EXHAUSTED answers waited out before it went through.
    pub rate_limited: u32,
}

/// Send `body` into `conversation` as a well-behaved client does: one idempotency key, and on
/// RESOURCE_EXHAUSTED a wait of the server's RetryInfo delay before retrying the same key.
pub async fn send_text(
    client: &mut MessageClient,
    conversation: &str,
    body: String,
) -> Result<Sent, Status> {
    let request = pb::SendMessageRequest {
        conversation_id: conversation.to_owned(),
        client_message_id: uuid::Uuid::now_v7().to_string(),
        content: Some(text(body)),
        ..Default::default()
    };
    let mut rate_limited = 0;
    loop {
        match client.send_message(request.clone()).await {
            Ok(answer) => {
                let message = answer
                    .into_inner()
                    .message
                    .ok_or_else(|| Status::internal("SendMessage answered no message"))?;
                return Ok(Sent {
                    message,
                    rate_limited,
                });
            }
            Err(status) if status.code() == Code::ResourceExhausted && rate_limited < 100 => {
                rate_limited += 1;
                let delay = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay)
                    .unwrap_or(Duration::from_millis(100));
                tokio::time::sleep(delay).await;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_get_enough_connections() {
        // The fan-out of 1,000 members over --connections 4 at 90 a connection.
        assert_eq!(connections_for(1_000, 4, 90), 12);
        assert_eq!(connections_for(10_000, 4, 90), 112);
        assert_eq!(connections_for(90, 4, 90), 4);
        assert_eq!(connections_for(100, 1, 90), 2);
        assert_eq!(connections_for(0, 0, 90), 1);
        assert_eq!(connections_for(5, 1, 0), 5);
        // Round robin over that many puts at most 90 on one.
        for streams in [1, 89, 90, 91, 999, 1_000, 10_000] {
            let connections = connections_for(streams, 4, 90);
            assert!(streams.div_ceil(connections) <= 90, "{streams}");
        }
    }

    #[test]
    fn the_layout_names_streams_and_connections() {
        assert_eq!(
            layout(1_000, 4),
            "1000 streams over 4 connections (up to 250 on one)"
        );
        assert_eq!(
            layout(3, 0),
            "3 streams over 1 connections (up to 3 on one)"
        );
    }
}
