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

/// A few connections that calls and streams take turns on.
#[derive(Clone, Debug)]
pub struct Pool(Vec<Channel>);

impl Pool {
    /// `connections` connections to `endpoint` (at least one).
    pub async fn connect(endpoint: &str, connections: usize) -> anyhow::Result<Self> {
        let mut channels = Vec::new();
        for _ in 0..connections.max(1) {
            channels.push(connect(endpoint, None).await?);
        }
        Ok(Self(channels))
    }

    /// How many connections.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The connection for the `index`th user, call or stream.
    pub fn get(&self, index: usize) -> &Channel {
        &self.0[index % self.0.len()]
    }
}

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
