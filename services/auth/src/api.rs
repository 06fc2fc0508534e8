//! The AuthService gRPC handlers: parse and validate → take the caller → call the domain →
//! map the result. No rules live here.
//!
//! One file because it is the one proto service's boundary (STYLE 4): fifteen short handlers
//! over the same few parsing checks (`AuthCheck`) and protobuf builders, which a split by
//! method would only scatter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use echo_authn::Caller;
use echo_ids::SessionId;
use echo_proto::echo::auth::v1 as pb;
use echo_proto::echo::auth::v1::auth_service_server::AuthService;
use echo_runtime::{Check, PageSize};
use tonic::{Request, Response, Status};

use crate::accounts::{Accounts, Challenge, Client, Issued, SignedIn};
use crate::domain::password::Password;
use crate::domain::phone::PhoneNumber;
use crate::error::AuthError;
use crate::store::{Device, Session};

/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 64;
/// Longest device name, in characters.
const MAX_DEVICE_NAME: usize = 64;
/// Default and largest page of sessions (larger requests are capped, as on every list).
const SESSIONS_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// The AuthService handlers.
#[derive(Clone)]
pub struct AuthApi {
    accounts: Arc<Accounts>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl AuthApi {
    pub(crate) fn new(accounts: Arc<Accounts>, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self {
            accounts,
            trusted_proxies: trusted_proxies.into(),
        }
    }

    fn client<T>(&self, request: &Request<T>) -> Client {
        let ip = echo_runtime::client_ip(request, &self.trusted_proxies).map(|ip| ip.to_string());
        Client { ip }
    }

    /// The phone, code and device of a request that proves a code, and who sent it.
    fn code_proof<T>(
        &self,
        request: &Request<T>,
        phone: &str,
        code: &str,
        device: Option<pb::DeviceInfo>,
    ) -> Result<(PhoneNumber, String, Device, Client), Status> {
        let mut check = Check::default();
        let phone = check.phone("phone_number", phone);
        let code = check.code("code", code);
        let device = check.device(device);
        check.done()?;
        Ok((phone.expect("checked"), code, device, self.client(request)))
    }

    /// The phone number of a request that carries nothing else, and who sent it.
    fn phone_only<T>(
        &self,
        request: &Request<T>,
        phone: &str,
    ) -> Result<(PhoneNumber, Client), Status> {
        let mut check = Check::default();
        let phone = check.phone("phone_number", phone);
        check.done()?;
        Ok((phone.expect("checked"), self.client(request)))
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// AuthService's own field rules, on top of the platform's [`Check`].
trait AuthCheck {
    fn phone(&mut self, field: &str, input: &str) -> Option<PhoneNumber>;
    fn password(&mut self, field: &str, input: &str) -> Option<Password>;
    fn code(&mut self, field: &str, input: &str) -> String;
    fn device(&mut self, device: Option<pb::DeviceInfo>) -> Device;
    fn done(self) -> Result<(), Status>;
}

impl AuthCheck for Check {
    fn phone(&mut self, field: &str, input: &str) -> Option<PhoneNumber> {
        self.parse(field, PhoneNumber::parse(input))
    }

    fn password(&mut self, field: &str, input: &str) -> Option<Password> {
        self.parse(field, Password::parse(input))
    }

    fn code(&mut self, field: &str, input: &str) -> String {
        let code = input.trim();
        if code.len() != crate::domain::otp::CODE_LENGTH
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            self.push(field, "must be the 6-digit code that was sent");
        }
        code.to_owned()
    }

    /// The required `device` (auth.proto `DeviceInfo`): a known platform other than
    /// UNSPECIFIED and a 1-64 character name; a missing device is one `device` violation.
    fn device(&mut self, device: Option<pb::DeviceInfo>) -> Device {
        let Some(device) = device else {
            self.push("device", "is required");
            return Device::default();
        };
        match pb::DevicePlatform::try_from(device.platform) {
            Ok(pb::DevicePlatform::Unspecified) => {
                self.push("device.platform", "is required (not UNSPECIFIED)")
            }
            Ok(_) => {}
            Err(_) => self.push("device.platform", "is not a known platform"),
        }
        Device {
            name: self.text("device.name", &device.name, MAX_DEVICE_NAME, true),
            platform: device.platform,
            app_version: self.text("device.app_version", &device.app_version, 32, false),
        }
    }

    fn done(self) -> Result<(), Status> {
        self.finish().map_err(Status::from)
    }
}

/// The signed-in caller: the account and session of the authenticated [`Caller`].
fn caller<T>(request: &Request<T>) -> Result<SignedIn, Status> {
    let caller = Caller::of(request).map_err(echo_runtime::Failure::from)?;
    Ok(SignedIn {
        user_id: caller.user_id,
        session_id: caller.session_id,
    })
}

fn timestamp(at: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(at)
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn token_pair(issued: Issued) -> pb::TokenPair {
    pb::TokenPair {
        access_token: issued.access_token,
        access_token_expires_at: Some(timestamp(issued.access_expires_at)),
        refresh_token: issued.refresh_token,
        refresh_token_expires_at: Some(timestamp(issued.refresh_expires_at.into())),
        session_id: issued.session_id.to_string(),
        device_id: issued.device_id.to_string(),
        user_id: issued.user_id.to_string(),
    }
}

fn challenge(challenge: Challenge) -> pb::OtpChallenge {
    pb::OtpChallenge {
        code_ttl: Some(duration(challenge.code_ttl)),
        resend_after: Some(duration(challenge.resend_after)),
        code_length: challenge.code_length as i32,
    }
}

fn session(session: Session, current: SessionId) -> pb::Session {
    pb::Session {
        session_id: session.session_id.to_string(),
        device_id: session.device_id.to_string(),
        device: Some(pb::DeviceInfo {
            name: session.device.name,
            platform: session.device.platform,
            app_version: session.device.app_version,
        }),
        created_at: Some(timestamp(session.created_at.into())),
        last_active_at: Some(timestamp(session.last_active_at.into())),
        last_ip: session.last_ip.unwrap_or_default(),
        current: session.session_id == current,
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Reply<pb::RegisterResponse> {
        let client = self.client(&request);
        let body = request.into_inner();
        let mut check = Check::default();
        let phone = check.phone("phone_number", &body.phone_number);
        let password = check.password("password", &body.password);
        let name = check.text("display_name", &body.display_name, MAX_DISPLAY_NAME, true);
        check.done()?;
        let (Some(phone), Some(password)) = (phone, password) else {
            unreachable!()
        };
        let sent = self
            .accounts
            .register(&phone, &password, name, &client)
            .await?;
        Ok(Response::new(pb::RegisterResponse {
            challenge: Some(challenge(sent)),
        }))
    }

    async fn verify_phone(
        &self,
        request: Request<pb::VerifyPhoneRequest>,
    ) -> Reply<pb::VerifyPhoneResponse> {
        let body = request.get_ref();
        let (phone, code, device, client) = self.code_proof(
            &request,
            &body.phone_number,
            &body.code,
            body.device.clone(),
        )?;
        let (issued, created) = self
            .accounts
            .verify_phone(&phone, &code, device, &client)
            .await?;
        Ok(Response::new(pb::VerifyPhoneResponse {
            tokens: Some(token_pair(issued)),
            account_created: created,
        }))
    }

    async fn login_with_password(
        &self,
        request: Request<pb::LoginWithPasswordRequest>,
    ) -> Reply<pb::LoginWithPasswordResponse> {
        let client = self.client(&request);
        let body = request.into_inner();
        let mut check = Check::default();
        let phone = check.phone("phone_number", &body.phone_number);
        check.required("password", &body.password);
        let device = check.device(body.device);
        check.done()?;
        let phone = phone.expect("checked");
        let issued = self
            .accounts
            .login_with_password(&phone, &body.password, device, &client)
            .await?;
        Ok(Response::new(pb::LoginWithPasswordResponse {
            tokens: Some(token_pair(issued)),
        }))
    }

    async fn request_login_otp(
        &self,
        request: Request<pb::RequestLoginOtpRequest>,
    ) -> Reply<pb::RequestLoginOtpResponse> {
        let (phone, client) = self.phone_only(&request, &request.get_ref().phone_number)?;
        let sent = self.accounts.request_login_code(&phone, &client).await?;
        Ok(Response::new(pb::RequestLoginOtpResponse {
            challenge: Some(challenge(sent)),
        }))
    }

    async fn login_with_otp(
        &self,
        request: Request<pb::LoginWithOtpRequest>,
    ) -> Reply<pb::LoginWithOtpResponse> {
        let body = request.get_ref();
        let (phone, code, device, client) = self.code_proof(
            &request,
            &body.phone_number,
            &body.code,
            body.device.clone(),
        )?;
        let issued = self
            .accounts
            .login_with_code(&phone, &code, device, &client)
            .await?;
        Ok(Response::new(pb::LoginWithOtpResponse {
            tokens: Some(token_pair(issued)),
        }))
    }

    async fn refresh_tokens(
        &self,
        request: Request<pb::RefreshTokensRequest>,
    ) -> Reply<pb::RefreshTokensResponse> {
        let client = self.client(&request);
        let token = request.into_inner().refresh_token;
        let mut check = Check::default();
        check.required("refresh_token", &token);
        if token.len() > 256 {
            check.push("refresh_token", "is not a refresh token");
        }
        check.done()?;
        let issued = self.accounts.refresh(&token, &client).await?;
        Ok(Response::new(pb::RefreshTokensResponse {
            tokens: Some(token_pair(issued)),
        }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        self.accounts.logout(&caller(&request)?).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Reply<pb::ListSessionsResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::default();
        let page = check.page::<SessionId>(body.page_size, &body.page_token, SESSIONS_PAGE);
        check.done()?;
        let sessions = self
            .accounts
            .sessions(&caller, page.after, page.fetch_limit() as i64)
            .await?;
        let (sessions, next_page_token) = page.finish(sessions, |s| s.session_id);
        let sessions = sessions
            .into_iter()
            .map(|s| session(s, caller.session_id))
            .collect();
        Ok(Response::new(pb::ListSessionsResponse {
            sessions,
            next_page_token,
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Reply<pb::RevokeSessionResponse> {
        let caller = caller(&request)?;
        let id: SessionId = request
            .get_ref()
            .session_id
            .parse()
            .map_err(|_| AuthError::invalid("session_id", "must be a session id (UUID)"))?;
        self.accounts.revoke_session(&caller, id).await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn revoke_other_sessions(
        &self,
        request: Request<pb::RevokeOtherSessionsRequest>,
    ) -> Reply<pb::RevokeOtherSessionsResponse> {
        let count = self
            .accounts
            .revoke_other_sessions(&caller(&request)?)
            .await?;
        let revoked_count = i32::try_from(count).unwrap_or(i32::MAX);
        Ok(Response::new(pb::RevokeOtherSessionsResponse {
            revoked_count,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Reply<pb::ChangePasswordResponse> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut check = Check::default();
        check.required("current_password", &body.current_password);
        let new = check.password("new_password", &body.new_password);
        check.done()?;
        let new = new.expect("checked");
        let revoke = body.revoke_other_sessions;
        self.accounts
            .change_password(&caller, &body.current_password, &new, revoke)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Reply<pb::RequestPasswordResetResponse> {
        let (phone, client) = self.phone_only(&request, &request.get_ref().phone_number)?;
        let sent = self
            .accounts
            .request_password_reset(&phone, &client)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {
            challenge: Some(challenge(sent)),
        }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Reply<pb::ResetPasswordResponse> {
        let body = request.into_inner();
        let mut check = Check::default();
        let phone = check.phone("phone_number", &body.phone_number);
        let code = check.code("code", &body.code);
        let new = check.password("new_password", &body.new_password);
        check.done()?;
        let (Some(phone), Some(new)) = (phone, new) else {
            unreachable!()
        };
        self.accounts.reset_password(&phone, &code, &new).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Reply<pb::DeleteAccountResponse> {
        let caller = caller(&request)?;
        let mut check = Check::default();
        check.required("password", &request.get_ref().password);
        check.done()?;
        self.accounts
            .delete_account(&caller, &request.get_ref().password)
            .await?;
        Ok(Response::new(pb::DeleteAccountResponse {}))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<pb::GetSigningKeysRequest>,
    ) -> Reply<pb::GetSigningKeysResponse> {
        let keys = self
            .accounts
            .signing_keys()
            .into_iter()
            .map(|jwk| pb::SigningKey {
                kid: jwk.kid,
                kty: jwk.kty.into(),
                alg: jwk.alg.into(),
                crv: jwk.crv.into(),
                x: jwk.x,
                not_after: None,
            })
            .collect();
        let cache_ttl = Some(duration(Duration::from_secs(300)));
        Ok(Response::new(pb::GetSigningKeysResponse {
            keys,
            cache_ttl,
        }))
    }
}
