//! Accounts and conversations for a run, made through the public API as an app makes them.
//!
//! Sign-up is rate-limited per client IP (20 codes an hour) and per number range (100 an
//! hour). The bench connects from 127.0.0.1, which Echo trusts as a proxy by default, and
//! names a different client per ten sign-ups in `x-forwarded-for`, from 198.18.0.0/15 (the
//! range RFC 2544 sets aside for benchmarks: no such client exists); numbers come from a
//! counter with a random start, spread over the exchanges (so none repeats within a process).

use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use echo_proto::echo::auth::v1::auth_service_client::AuthServiceClient;
use echo_proto::echo::auth::v1::{RefreshTokensRequest, RegisterRequest, VerifyPhoneRequest};
use echo_proto::echo::message::v1 as pb;
use futures::{StreamExt as _, TryStreamExt as _};
use rand::Rng as _;
use tonic::Status;

use super::{Bearer, MessageClient, Pool, message_client, reason};
use crate::report::Progress;
use crate::server::Echo;

/// Sign-ups in flight at once (the server hashes passwords a core at a time anyway).
const SIGN_UP_CONCURRENCY: usize = 16;
/// Sign-ups named as one client IP (the limit is 20 codes per IP an hour).
const SIGN_UPS_PER_CLIENT_IP: u32 = 10;
/// Members CreateConversation takes besides the caller.
const CREATE_MAX_MEMBERS: usize = 256;
/// Users AddMembers takes per call.
const ADD_MAX_MEMBERS: usize = 100;

/// Where the one-time codes of sign-ups arrive: an [`Echo`] the bench started or reaches, or
/// an in-process mesh of a scenario's own.
pub trait Codes {
    /// The code the server sent to `phone`, waiting up to `within` for it.
    fn code_for(&self, phone: &str, within: Duration) -> impl Future<Output = Option<String>>;
}

impl Codes for Echo {
    fn code_for(&self, phone: &str, within: Duration) -> impl Future<Output = Option<String>> {
        Echo::code_for(self, phone, within)
    }
}

/// A signed-up user and their first device's token.
#[derive(Clone, Debug)]
pub struct User {
    /// Their id.
    pub user_id: String,
    /// Their access token as a header (shared by every client made from it).
    pub bearer: Bearer,
    /// Their latest refresh token (single use: each refresh replaces it).
    refresh_token: Arc<Mutex<String>>,
}

impl User {
    /// A MessageService client on `pool`'s `index`th connection acting as this user.
    pub fn messages(&self, pool: &Pool, index: usize) -> MessageClient {
        message_client(pool.get(index), &self.bearer)
    }
}

/// Sign up `count` users through AuthService (Register, then VerifyPhone with the code).
pub async fn sign_up(
    echo: &impl Codes,
    pool: &Pool,
    count: usize,
    progress: &Progress,
) -> anyhow::Result<Vec<User>> {
    let bar = progress.bar(count as u64, "signing users up");
    // A random start, so runs against one --target within the hour use different clients.
    let first_client = rand::rng().random_range(0..100_000u32);
    let users = futures::stream::iter(0..count)
        .map(|index| {
            let auth = AuthServiceClient::new(pool.get(index).clone());
            let client_ip = client_ip(first_client, index as u32);
            let bar = &bar;
            async move {
                let user = sign_up_one(echo, auth, index, client_ip).await;
                bar.inc(1);
                user
            }
        })
        .buffered(SIGN_UP_CONCURRENCY)
        .try_collect()
        .await;
    bar.finish_and_clear();
    users
}

/// Refreshes every user's tokens (RefreshTokens), so runs longer than an access token's
/// lifetime keep calling as them: every client made from a user's [`Bearer`] carries the new
/// access token from then on.
pub async fn refresh_all(pool: &Pool, users: &[User]) -> anyhow::Result<()> {
    let calls: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let auth = AuthServiceClient::new(pool.get(index).clone());
            refresh_one(auth, user.clone())
        })
        .collect();
    futures::stream::iter(calls)
        .buffer_unordered(SIGN_UP_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn refresh_one(
    mut auth: AuthServiceClient<tonic::transport::Channel>,
    user: User,
) -> anyhow::Result<()> {
    let refresh_token = user
        .refresh_token
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let tokens = auth
        .refresh_tokens(RefreshTokensRequest { refresh_token })
        .await
        .with_context(|| format!("refresh the tokens of {}", user.user_id))?
        .into_inner()
        .tokens
        .context("RefreshTokens answered no tokens")?;
    user.bearer.set(&tokens.access_token)?;
    *user
        .refresh_token
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = tokens.refresh_token;
    Ok(())
}

async fn sign_up_one(
    echo: &impl Codes,
    mut auth: AuthServiceClient<tonic::transport::Channel>,
    index: usize,
    client_ip: Ipv4Addr,
) -> anyhow::Result<User> {
    // Against a --target a number may already be taken: Register then answers as if it sent a
    // code (it never tells who is registered), and no code comes. Try another.
    for _ in 0..3 {
        let phone = phone_number(next_number());
        let mut register = tonic::Request::new(RegisterRequest {
            phone_number: phone.clone(),
            password: echo_testkit::PASSWORD.into(),
            display_name: format!("Bench {index}"),
        });
        register
            .metadata_mut()
            .insert("x-forwarded-for", client_ip.to_string().parse()?);
        auth.register(register)
            .await
            .with_context(|| format!("register {phone}"))?;
        let Some(code) = echo.code_for(&phone, Duration::from_secs(10)).await else {
            continue;
        };
        let verify = VerifyPhoneRequest {
            phone_number: phone.clone(),
            code,
            device: Some(echo_testkit::test_device()),
        };
        let tokens = auth
            .verify_phone(verify)
            .await
            .with_context(|| format!("verify {phone}"))?
            .into_inner()
            .tokens
            .context("VerifyPhone answered no tokens")?;
        return Ok(User {
            user_id: tokens.user_id,
            bearer: Bearer::new(&tokens.access_token)?,
            refresh_token: Arc::new(Mutex::new(tokens.refresh_token)),
        });
    }
    bail!(
        "no OTP code arrived for three sign-ups (is the server's otp_sender the bench's webhook?)"
    )
}

/// Numbers of the 415 area the bench uses: exchanges 200–999, lines 0000–9999.
const NUMBERS: u64 = 800 * 10_000;

/// This process's next number: a counter from a random start (so runs against one --target
/// use different numbers), never the same twice within 8 million sign-ups. Random numbers
/// collided (10,000 draws from 8 million repeat one with probability ~99.8 %), and a repeated
/// number gets no new code.
fn next_number() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| rand::rng().random_range(0..NUMBERS));
    (start + NEXT.fetch_add(1, Ordering::Relaxed)) % NUMBERS
}

/// The `n`th valid US number (415 area, exchange 200–999). Consecutive numbers go to
/// consecutive exchanges, and a range (all but the last four digits) is one exchange, so
/// 10,000 sign-ups make 13 per range, far below the limit of 100 per range.
fn phone_number(n: u64) -> String {
    let exchange = 200 + n % 800;
    let line = (n / 800) % 10_000;
    format!("+1415{exchange:03}{line:04}")
}

/// The client IP named for the `index`th sign-up of a run starting at client `first`.
fn client_ip(first: u32, index: u32) -> Ipv4Addr {
    const BENCHMARK_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
    const SIZE: u32 = 1 << 17; // 198.18.0.0/15
    Ipv4Addr::from(BENCHMARK_NET + (first + index / SIGN_UPS_PER_CLIENT_IP) % SIZE)
}

/// Retry `call` while a service has not yet applied a user's registration (the message and
/// user services learn of users from auth's events): USER_NOT_FOUND for a few seconds after
/// sign-up.
pub async fn once_known<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status)
                if reason(&status) == "USER_NOT_FOUND"
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => bail!("{what}: {status:?}"),
        }
    }
}

/// The direct conversation of `client`'s user with `peer`.
pub async fn direct(client: &MessageClient, peer: &str) -> anyhow::Result<String> {
    let conversation = once_known("create a direct conversation", || {
        let mut client = client.clone();
        let request = pb::CreateDirectConversationRequest {
            peer_user_id: peer.to_owned(),
        };
        async move { client.create_direct_conversation(request).await }
    })
    .await?
    .into_inner()
    .conversation
    .context("no conversation in the answer")?;
    Ok(conversation.conversation_id)
}

/// A group owned by `client`'s user with `members` (any number: created with the first 256,
/// the rest added 100 at a time).
pub async fn group(client: &MessageClient, members: &[String]) -> anyhow::Result<String> {
    let (first, rest) = members.split_at(members.len().min(CREATE_MAX_MEMBERS));
    let request = pb::CreateConversationRequest {
        r#type: pb::ConversationType::Group.into(),
        title: format!("bench group of {}", members.len()),
        member_user_ids: first.to_vec(),
        client_request_id: uuid::Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let conversation = once_known("create a group", || {
        let mut client = client.clone();
        let request = request.clone();
        async move { client.create_conversation(request).await }
    })
    .await?
    .into_inner()
    .conversation
    .context("no conversation in the answer")?;
    for batch in rest.chunks(ADD_MAX_MEMBERS) {
        let request = pb::AddMembersRequest {
            conversation_id: conversation.conversation_id.clone(),
            user_ids: batch.to_vec(),
        };
        once_known("add members", || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.add_members(request).await }
        })
        .await?;
    }
    Ok(conversation.conversation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_numbers_are_valid_and_spread_over_ranges() {
        let mut ranges = std::collections::HashSet::new();
        let start = next_number();
        for n in start..start + 200 {
            let number = phone_number(n % NUMBERS);
            let parsed = echo_authn::PhoneNumber::parse(&number)
                .unwrap_or_else(|e| panic!("{number} is refused: {e}"));
            ranges.insert(parsed.range().to_owned());
        }
        assert_eq!(ranges.len(), 200);
    }

    #[test]
    fn numbers_do_not_repeat_within_the_numbering() {
        assert_eq!(phone_number(0), "+14152000000");
        assert_eq!(phone_number(1), "+14152010000");
        assert_eq!(phone_number(800), "+14152000001");
        assert_eq!(phone_number(NUMBERS - 1), "+14159999999");
        let drawn: std::collections::HashSet<String> =
            (0..20_000).map(|_| phone_number(next_number())).collect();
        assert_eq!(drawn.len(), 20_000);
    }

    #[test]
    fn client_ips_change_every_ten_sign_ups_inside_the_benchmark_range() {
        assert_eq!(client_ip(0, 0), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(client_ip(0, 9), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(client_ip(0, 10), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(client_ip(300, 0), Ipv4Addr::new(198, 18, 1, 44));
        // It wraps inside 198.18.0.0/15.
        let last = client_ip((1 << 17) - 1, 10);
        assert_eq!(last, Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(
            client_ip((1 << 17) - 1, 0),
            Ipv4Addr::new(198, 19, 255, 255)
        );
    }
}
