//! Typed gRPC clients of a test mesh: anonymous, acting as a signed-in user, or as another
//! service on the internal port.

use echo_proto::echo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::{SignedIn, TestMesh};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel whose calls carry an access token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// `channel` with every call carrying `access_token` (for servers the test reaches by channel,
/// e.g. child processes; a [`TestMesh`]'s own is [`TestMesh::authed`]).
pub fn authed_on(channel: &Channel, access_token: &str) -> Authed {
    let value = format!("Bearer {access_token}")
        .parse()
        .expect("ascii token");
    InterceptedService::new(channel.clone(), Bearer(value))
}

impl TestMesh {
    /// A lazily connecting channel to the public port.
    pub fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr()))
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// A lazily connecting channel to the internal port (internal contracts).
    pub fn internal_channel(&self) -> Channel {
        let addr = self
            .mesh
            .internal_addr
            .expect("the testkit gives every mesh an internal port");
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// A channel to the internal port whose calls carry `token` (a service token, or anything
    /// a test wants refused).
    pub fn internal_authed(&self, token: &str) -> Authed {
        let value = format!("Bearer {token}").parse().expect("ascii token");
        InterceptedService::new(self.internal_channel(), Bearer(value))
    }

    /// A lazily connecting channel to the admin port (the operators' AdminService).
    pub fn admin_channel(&self) -> Channel {
        Endpoint::from_shared(self.admin_url())
            .expect("valid endpoint")
            .connect_lazy()
    }

    /// An AdminService client whose calls carry `token` (the test operator's
    /// [`OPERATOR_TOKEN`](crate::OPERATOR_TOKEN), or anything a test wants refused).
    pub fn admin_with(
        &self,
        token: &str,
    ) -> echo::admin::v1::admin_service_client::AdminServiceClient<Authed> {
        echo::admin::v1::admin_service_client::AdminServiceClient::new(authed_on(
            &self.admin_channel(),
            token,
        ))
    }

    /// An AdminService client acting as the test operator.
    pub fn admin(&self) -> echo::admin::v1::admin_service_client::AdminServiceClient<Authed> {
        self.admin_with(crate::OPERATOR_TOKEN)
    }

    /// A channel whose calls carry `access_token`.
    pub fn authed(&self, access_token: &str) -> Authed {
        authed_on(&self.channel(), access_token)
    }

    /// An AuthService client acting as `user`.
    pub fn auth_as(
        &self,
        user: &SignedIn,
    ) -> echo::auth::v1::auth_service_client::AuthServiceClient<Authed> {
        echo::auth::v1::auth_service_client::AuthServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A UserService client acting as `user`.
    pub fn user_as(
        &self,
        user: &SignedIn,
    ) -> echo::user::v1::user_service_client::UserServiceClient<Authed> {
        echo::user::v1::user_service_client::UserServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A MessageService client acting as `user`.
    pub fn message_as(
        &self,
        user: &SignedIn,
    ) -> echo::message::v1::message_service_client::MessageServiceClient<Authed> {
        echo::message::v1::message_service_client::MessageServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A PresenceService client acting as `user`.
    pub fn presence_as(
        &self,
        user: &SignedIn,
    ) -> echo::presence::v1::presence_service_client::PresenceServiceClient<Authed> {
        echo::presence::v1::presence_service_client::PresenceServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// A NotificationService client acting as `user`.
    pub fn notification_as(
        &self,
        user: &SignedIn,
    ) -> echo::notification::v1::notification_service_client::NotificationServiceClient<Authed>
    {
        echo::notification::v1::notification_service_client::NotificationServiceClient::new(
            self.authed(&user.tokens.access_token),
        )
    }

    /// An AuthService client.
    pub fn auth(&self) -> echo::auth::v1::auth_service_client::AuthServiceClient<Channel> {
        echo::auth::v1::auth_service_client::AuthServiceClient::new(self.channel())
    }

    /// A UserService client.
    pub fn user(&self) -> echo::user::v1::user_service_client::UserServiceClient<Channel> {
        echo::user::v1::user_service_client::UserServiceClient::new(self.channel())
    }

    /// A MessageService client.
    pub fn message(
        &self,
    ) -> echo::message::v1::message_service_client::MessageServiceClient<Channel> {
        echo::message::v1::message_service_client::MessageServiceClient::new(self.channel())
    }

    /// A PresenceService client.
    pub fn presence(
        &self,
    ) -> echo::presence::v1::presence_service_client::PresenceServiceClient<Channel> {
        echo::presence::v1::presence_service_client::PresenceServiceClient::new(self.channel())
    }

    /// A NotificationService client.
    pub fn notification(
        &self,
    ) -> echo::notification::v1::notification_service_client::NotificationServiceClient<Channel>
    {
        echo::notification::v1::notification_service_client::NotificationServiceClient::new(
            self.channel(),
        )
    }
}
