//! What the admin API asks of the message service, which owns reports and messages: its
//! internal contract (echo.message.v1.MessageInternalService) over gRPC with the service
//! credential, also in the whole mesh (through the process's own internal port), so the one
//! path tested is the one deployed. The admin API never opens the message service's database.

use std::time::Duration;

use echo_authn::ServiceTokens;
use echo_proto::echo::message::v1 as msg;
use msg::message_internal_service_client::MessageInternalServiceClient;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How long listing or resolving reports may take. A purge has no deadline: it answers when
/// every message is erased.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The message service's side of the operators' actions.
#[tonic::async_trait]
pub trait MessageControl: Send + Sync + 'static {
    /// A page of the report queue.
    async fn reports(
        &self,
        request: msg::ListModerationReportsRequest,
    ) -> Result<Vec<msg::ModerationReport>, Status>;
    /// Resolve a report; the report as it is now.
    async fn resolve(
        &self,
        request: msg::ResolveModerationReportRequest,
    ) -> Result<msg::ModerationReport, Status>;
    /// Purge a conversation's messages before a time; how many were erased.
    async fn purge(&self, request: msg::PurgeMessagesRequest) -> Result<i64, Status>;
}

type Client = MessageInternalServiceClient<InterceptedService<Channel, ServiceTokens>>;

/// [`MessageControl`] over gRPC to MessageService's internal port.
pub struct GrpcMessages {
    client: Client,
}

impl GrpcMessages {
    /// A client of the internal port at `url`, calling as the auth service with `tokens`.
    /// Connects lazily.
    pub fn new(url: &str, tokens: ServiceTokens) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: MessageInternalServiceClient::with_interceptor(channel, tokens),
        })
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

#[tonic::async_trait]
impl MessageControl for GrpcMessages {
    async fn reports(
        &self,
        request: msg::ListModerationReportsRequest,
    ) -> Result<Vec<msg::ModerationReport>, Status> {
        let response = self
            .client
            .clone()
            .list_moderation_reports(timed(request))
            .await?;
        Ok(response.into_inner().reports)
    }

    async fn resolve(
        &self,
        request: msg::ResolveModerationReportRequest,
    ) -> Result<msg::ModerationReport, Status> {
        let response = self
            .client
            .clone()
            .resolve_moderation_report(timed(request))
            .await?;
        response
            .into_inner()
            .report
            .ok_or_else(|| Status::internal("the message service answered no report"))
    }

    async fn purge(&self, request: msg::PurgeMessagesRequest) -> Result<i64, Status> {
        let response = self.client.clone().purge_messages(request).await?;
        Ok(response.into_inner().messages_purged)
    }
}

/// No message service configured (a process running auth without message and without
/// `admin.message_internal_url`): every call answers UNAVAILABLE saying so.
pub struct NoMessages;

fn not_configured() -> Status {
    Status::unavailable(
        "the message service's internal port is not configured here: set \
         admin.message_internal_url (ECHO_ADMIN__MESSAGE_INTERNAL_URL)",
    )
}

#[tonic::async_trait]
impl MessageControl for NoMessages {
    async fn reports(
        &self,
        _: msg::ListModerationReportsRequest,
    ) -> Result<Vec<msg::ModerationReport>, Status> {
        Err(not_configured())
    }

    async fn resolve(
        &self,
        _: msg::ResolveModerationReportRequest,
    ) -> Result<msg::ModerationReport, Status> {
        Err(not_configured())
    }

    async fn purge(&self, _: msg::PurgeMessagesRequest) -> Result<i64, Status> {
        Err(not_configured())
    }
}
