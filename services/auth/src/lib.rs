//! AuthService (DESIGN §5): phone-first accounts verified by one-time codes, argon2id
//! passwords, EdDSA access tokens with rotating refresh tokens, sessions per server-issued
//! device, password change and reset, account deletion, and the public signing keys.
//!
//! Layout: `api` parses and maps; `accounts` holds the journeys; `domain` the parsed types and
//! secrets handling; `store` the storage seam with its PostgreSQL and SQLite implementations.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod domain;
pub mod error;
mod events;
pub mod store;

use std::sync::Arc;

use echo_authn::{KeySet, Revocations, TokenIssuer};
use echo_bus::Outbox;
use echo_cache::Cache;
use echo_proto::echo::auth::v1::auth_service_server::AuthServiceServer;

pub use accounts::Policy;
pub use api::AuthApi;
pub use domain::otp::{CapturingOtpSender, LogOtpSender, OtpSender};
pub use domain::webhook::WebhookOtpSender;
pub use store::OtpPurpose;

/// The AuthService methods callable without an access token (everything that gets one).
pub const PUBLIC_METHODS: &[&str] = &[
    "/echo.auth.v1.AuthService/Register",
    "/echo.auth.v1.AuthService/VerifyPhone",
    "/echo.auth.v1.AuthService/LoginWithPassword",
    "/echo.auth.v1.AuthService/RequestLoginOtp",
    "/echo.auth.v1.AuthService/LoginWithOtp",
    "/echo.auth.v1.AuthService/RefreshTokens",
    "/echo.auth.v1.AuthService/RequestPasswordReset",
    "/echo.auth.v1.AuthService/ResetPassword",
    "/echo.auth.v1.AuthService/GetSigningKeys",
];

/// Everything AuthService needs, built by the binary (or a test).
pub struct AuthDeps {
    /// The service's outbox; its database is the service's own.
    pub outbox: Outbox,
    /// Rate limits.
    pub cache: Arc<dyn Cache>,
    /// Signing key (required) and accepted public keys.
    pub keys: KeySet,
    /// The `iss` claim.
    pub issuer: String,
    /// Shared revocations (started by the caller).
    pub revocations: Revocations,
    /// Code delivery.
    pub otp_sender: Arc<dyn OtpSender>,
    /// Secret for OTP hashes and refresh-token derivation (≥ 32 bytes in production).
    pub secret: Vec<u8>,
    /// Token lifetimes and code rules.
    pub policy: Policy,
    /// Peers whose `x-forwarded-for` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// An AuthService instance.
#[derive(Clone)]
pub struct Auth {
    api: AuthApi,
    accounts: Arc<accounts::Accounts>,
}

impl Auth {
    /// The instance: its store on the outbox's database; it announces the revocations it
    /// holds again whenever the cache returns (in the background).
    pub fn start(deps: AuthDeps) -> Result<Self, echo_authn::AuthnError> {
        // Only auth signs: a key set without a signing key (a verifier's) cannot serve it.
        let signing = deps.keys.signing_key().ok_or_else(|| {
            echo_authn::AuthnError::Key("the auth service needs a token-signing key".to_owned())
        })?;
        let issuer = TokenIssuer::new(signing, deps.issuer)?;
        let parallelism = std::thread::available_parallelism().map_or(2, usize::from);
        let accounts = accounts::Accounts {
            store: store::for_database(deps.outbox.database(), deps.outbox.clone()),
            hasher: domain::password::PasswordHasher::new(parallelism),
            codes: domain::otp::OtpCodes::new(&deps.secret),
            sender: deps.otp_sender,
            limits: domain::limits::Limits::new(deps.cache),
            refresh: domain::refresh::RefreshTokens::new(&deps.secret),
            issuer,
            keys: deps.keys,
            revocations: deps.revocations,
            policy: deps.policy,
        };
        let accounts = Arc::new(accounts);
        accounts.announce_revocations_after_cache_returns();
        Ok(Self {
            api: AuthApi::new(accounts.clone(), deps.trusted_proxies),
            accounts,
        })
    }

    /// The AuthService server, refusing request messages over `max_request_bytes`.
    pub fn service(&self, max_request_bytes: usize) -> AuthServiceServer<AuthApi> {
        AuthServiceServer::new(self.api.clone()).max_decoding_message_size(max_request_bytes)
    }

    /// The AdminService handlers over these accounts and, through `messages`, the message
    /// service's reports and messages, letting `operators` in (docs/admin.md); served on the
    /// admin port, never the public one.
    pub fn admin(
        &self,
        operators: admin::Operators,
        messages: std::sync::Arc<dyn admin::MessageControl>,
    ) -> admin::AdminApi {
        let store = self.accounts.store.clone();
        admin::AdminApi::new(self.accounts.clone(), messages, store, operators)
    }
}

/// AuthService's migrations for both backends.
pub fn migrations() -> echo_store::Migrations {
    echo_store::Migrations::new(
        "auth",
        sqlx::migrate!("../../migrations/postgres/auth"),
        sqlx::migrate!("../../migrations/sqlite/auth"),
    )
}
