//! Test users: unique phone numbers, the device and password every test account uses, and
//! signing up through the API (or minting a token with no account behind it).

use echo_proto::echo::auth::v1::{
    DeviceInfo, DevicePlatform, RegisterRequest, TokenPair, VerifyPhoneRequest,
};

use crate::{OtpPurpose, TestMesh};

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-up, signed-in test user.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// Their E.164 phone number.
    pub phone: String,
    /// The tokens from verification.
    pub tokens: TokenPair,
}

/// A fresh valid phone number (a fictional +1 415 555 range), unique within this process by
/// construction: a counter, not a random draw. Every test mesh has its own database (its own
/// schemas or SQLite files), so numbers only need to differ within one process; a random draw
/// from 10,000 numbers collided (a second sign-up with a known number signs into the existing
/// account, and two "different" users were one).
pub fn phone_number() -> String {
    // From 1000: tests name a few low numbers (e.g. +14155550000) as ones nobody has.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(n < 10_000, "a test process signs up at most 9,000 users");
    format!("+1415555{n:04}")
}

impl TestMesh {
    /// The last code sent to `phone` for `purpose`, waiting briefly for it to arrive.
    pub async fn code_for(&self, phone: &str, purpose: OtpPurpose) -> String {
        for _ in 0..100 {
            if let Some(code) = self.otp.last_code(phone, purpose) {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no {purpose:?} code was sent to {phone}");
    }

    /// Register and verify a new account through the API; returns its tokens.
    pub async fn sign_up(&self) -> SignedIn {
        let phone = phone_number();
        let register = RegisterRequest {
            phone_number: phone.clone(),
            password: PASSWORD.into(),
            display_name: format!("Test {}", &phone[phone.len() - 4..]),
        };
        self.auth().register(register).await.expect("register");
        let code = self.code_for(&phone, OtpPurpose::Register).await;
        let verify = VerifyPhoneRequest {
            phone_number: phone.clone(),
            code,
            device: Some(test_device()),
        };
        let tokens = self
            .auth()
            .verify_phone(verify)
            .await
            .expect("verify")
            .into_inner()
            .tokens;
        SignedIn {
            phone,
            tokens: tokens.expect("tokens"),
        }
    }

    /// A valid access token for `user_id` on a new session, signed with the mesh's key as auth
    /// would sign it, without any account behind it: for a user that services have not heard
    /// of yet (their registration event not applied).
    pub fn mint_token(&self, user_id: uuid::Uuid) -> String {
        let key = echo_authn::SigningKey::load_or_generate(&self.config.data_dir)
            .expect("the mesh's development signing key");
        let issuer = echo_authn::TokenIssuer::new(&key, self.config.auth.jwt_issuer.clone())
            .expect("issuer");
        let (token, _) = issuer
            .issue(
                user_id,
                uuid::Uuid::now_v7(),
                uuid::Uuid::now_v7(),
                std::time::Duration::from_secs(300),
            )
            .expect("token");
        token
    }
}

/// The device every test signs in on.
pub fn test_device() -> DeviceInfo {
    DeviceInfo {
        name: "test device".into(),
        platform: DevicePlatform::Other as i32,
        app_version: "1.0.0".into(),
    }
}
