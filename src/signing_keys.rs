//! Following auth's token-signing keys from a process that does not run auth (DESIGN §5):
//! fetch GetSigningKeys at `upstreams.auth`, accept those keys beside the configured ones, and
//! fetch again when the answer's `cache_ttl` runs out, so a rotation reaches every verifier
//! without a restart. A token naming an unknown `kid` (a key that started signing since the
//! last fetch) brings the next fetch forward, at most once a minute as auth.proto allows.
//!
//! A failed fetch keeps the keys already held; only a process with no key at all waits for the
//! first answer at start (and gives up after [`Timings::startup_wait`], to be restarted).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use echo_authn::{KeySet, PublicKey, Verifier};
use echo_proto::echo::auth::v1 as pb;
use pb::auth_service_client::AuthServiceClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// How the follower paces itself ([`Timings::DEFAULT`] in production; tests shrink it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timings {
    /// How long a verifier without configured keys waits for auth's first answer at start.
    pub(crate) startup_wait: Duration,
    /// Fetches prompted by unknown `kid`s are at least this far apart.
    pub(crate) min_refetch: Duration,
    /// Bounds on the `cache_ttl` auth answers with.
    pub(crate) ttl: (Duration, Duration),
    /// Retry delays after a failed fetch: doubling from the first to the last.
    pub(crate) retry: (Duration, Duration),
    /// Each call to auth gives up after this.
    pub(crate) call_timeout: Duration,
}

impl Timings {
    /// Production pacing: auth.proto allows a refetch on an unknown `kid` once a minute.
    pub(crate) const DEFAULT: Timings = Timings {
        startup_wait: Duration::from_secs(60),
        min_refetch: Duration::from_secs(60),
        ttl: (Duration::from_secs(5), Duration::from_secs(3600)),
        retry: (Duration::from_secs(1), Duration::from_secs(30)),
        call_timeout: Duration::from_secs(5),
    };
}

/// Fetch auth's keys into `verifier` (beside `configured`) and keep them current until
/// `shutdown`. Returns once the verifier holds at least one key.
pub(crate) async fn follow(
    auth: &str,
    configured: KeySet,
    verifier: Arc<Verifier>,
    shutdown: CancellationToken,
    timings: Timings,
) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(auth.to_owned())
        .with_context(|| format!("upstreams.auth `{auth}` is not a URL"))?
        .connect_timeout(timings.call_timeout)
        .timeout(timings.call_timeout)
        .connect_lazy();
    let mut follower = Follower {
        auth: auth.to_owned(),
        client: AuthServiceClient::new(channel),
        configured,
        verifier,
        last_fetch: None,
        timings,
    };
    let mut next = follower.first_fetch(&shutdown).await?;
    tokio::spawn(async move {
        loop {
            next = match follower.wait(next, &shutdown).await {
                Some(()) => follower.fetch_or_retry(next).await,
                None => return,
            };
        }
    });
    Ok(())
}

/// When to fetch next: after `ttl` when the last fetch worked, after a growing delay when not.
#[derive(Clone, Copy)]
enum Next {
    Refresh(Duration),
    Retry(Duration),
}

struct Follower {
    auth: String,
    client: AuthServiceClient<Channel>,
    configured: KeySet,
    verifier: Arc<Verifier>,
    last_fetch: Option<Instant>,
    timings: Timings,
}

impl Follower {
    /// The first fetch. With configured keys, a failure is logged and the process starts on
    /// them; without, nothing could be verified, so it retries until `startup_wait`.
    async fn first_fetch(&mut self, shutdown: &CancellationToken) -> anyhow::Result<Next> {
        let deadline = Instant::now() + self.timings.startup_wait;
        let mut delay = self.timings.retry.0;
        loop {
            match self.fetch().await {
                Ok(ttl) => return Ok(Next::Refresh(ttl)),
                Err(error) if !self.verifier.kids().is_empty() => {
                    tracing::warn!(auth = %self.auth, error = format!("{error:#}"), "cannot fetch the token-signing keys; verifying with the configured ones until auth answers");
                    return Ok(Next::Retry(delay));
                }
                Err(error) if Instant::now() + delay > deadline => {
                    return Err(error.context(format!(
                        "no key to verify access tokens with: auth at {} did not answer \
                         GetSigningKeys within {}s (set auth.jwt_public_keys to start without it)",
                        self.auth,
                        self.timings.startup_wait.as_secs()
                    )));
                }
                Err(error) => {
                    tracing::warn!(auth = %self.auth, error = format!("{error:#}"), "waiting for auth's token-signing keys");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => anyhow::bail!("shut down while waiting for auth's token-signing keys"),
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.timings.retry.1);
        }
    }

    /// Wait until the next fetch is due, or a token names an unknown key (no sooner than
    /// `min_refetch` after the last fetch); `None` on shutdown.
    async fn wait(&self, next: Next, shutdown: &CancellationToken) -> Option<()> {
        let delay = match next {
            Next::Refresh(delay) | Next::Retry(delay) => delay,
        };
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => return Some(()),
            () = self.verifier.unknown_kid() => {}
        }
        let earliest = self
            .last_fetch
            .map_or_else(Instant::now, |at| at + self.timings.min_refetch);
        tokio::select! {
            () = shutdown.cancelled() => None,
            () = tokio::time::sleep_until(earliest) => Some(()),
        }
    }

    async fn fetch_or_retry(&mut self, previous: Next) -> Next {
        match self.fetch().await {
            Ok(ttl) => Next::Refresh(ttl),
            Err(error) => {
                let delay = match previous {
                    Next::Refresh(_) => self.timings.retry.0,
                    Next::Retry(delay) => (delay * 2).min(self.timings.retry.1),
                };
                tracing::warn!(auth = %self.auth, error = format!("{error:#}"), retry_in_s = delay.as_secs(), "cannot refresh the token-signing keys; keeping the ones held");
                Next::Retry(delay)
            }
        }
    }

    /// One GetSigningKeys call: accept the configured keys plus the answer's, and return how
    /// long the answer may be cached.
    async fn fetch(&mut self) -> anyhow::Result<Duration> {
        self.last_fetch = Some(Instant::now());
        let answer = self
            .client
            .get_signing_keys(pb::GetSigningKeysRequest {})
            .await
            .context("GetSigningKeys")?
            .into_inner();
        let fetched = parse(&answer.keys)?;
        let mut keys = self.configured.clone();
        for key in fetched {
            keys = keys.with_verifying(key);
        }
        let before = self.verifier.kids();
        self.verifier.set_keys(keys.public_keys());
        let after = self.verifier.kids();
        if before != after {
            tracing::info!(auth = %self.auth, kids = ?after, "token-signing keys updated");
        }
        let ttl = answer
            .cache_ttl
            .and_then(|ttl| u64::try_from(ttl.seconds).ok())
            .map_or(self.timings.min_refetch, Duration::from_secs);
        Ok(ttl.clamp(self.timings.ttl.0, self.timings.ttl.1))
    }
}

/// The answer's keys, each checked: Ed25519 only, and its `kid` must be the key's thumbprint
/// (what the tokens it signed name). An empty answer is an error, never "accept nothing".
fn parse(keys: &[pb::SigningKey]) -> anyhow::Result<Vec<PublicKey>> {
    let parsed = keys
        .iter()
        .map(|key| {
            anyhow::ensure!(
                key.kty == "OKP" && key.alg == "EdDSA" && key.crv == "Ed25519",
                "key {:?} is {}/{}/{}, not OKP/EdDSA/Ed25519",
                key.kid,
                key.kty,
                key.alg,
                key.crv
            );
            let public =
                PublicKey::from_jwk_x(&key.x).with_context(|| format!("key {:?}", key.kid))?;
            anyhow::ensure!(
                public.kid() == key.kid,
                "key {:?} is not named by its thumbprint",
                key.kid
            );
            Ok(public)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!parsed.is_empty(), "GetSigningKeys answered no key");
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_authn::{SigningKey, TokenIssuer};
    use echo_config::Config;
    use tokio::net::TcpListener;

    /// Fast pacing: no periodic refresh within a test, an unknown kid refetches at once.
    const FAST: Timings = Timings {
        startup_wait: Duration::from_secs(10),
        min_refetch: Duration::from_millis(100),
        ttl: (Duration::from_secs(600), Duration::from_secs(600)),
        retry: (Duration::from_millis(50), Duration::from_millis(200)),
        call_timeout: Duration::from_secs(2),
    };

    /// An embedded mesh (auth among it) on `port`, signing with `signing` and also publishing
    /// `also`.
    async fn auth_at(
        port: u16,
        dir: &std::path::Path,
        signing: &SigningKey,
        also: &[&SigningKey],
    ) -> crate::Mesh {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        config.auth.jwt_signing_key = Some(signing.to_pkcs8_pem().unwrap().to_string());
        config.auth.jwt_public_keys = also
            .iter()
            .map(|key| key.public_key().to_spki_pem().unwrap())
            .collect();
        let bind = |port: u16| TcpListener::bind(("127.0.0.1", port));
        crate::Mesh::start(
            &config,
            bind(port).await.unwrap(),
            bind(0).await.unwrap(),
            Some(bind(0).await.unwrap()),
            CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    fn token(key: &SigningKey) -> String {
        let id = uuid::Uuid::now_v7;
        TokenIssuer::new(key, "echo")
            .unwrap()
            .issue(id(), id(), id(), Duration::from_secs(60))
            .unwrap()
            .0
    }

    async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < deadline, "{what} within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_follower_picks_up_a_rotation_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, stranger) = (
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
            SigningKey::generate().unwrap(),
        );
        let port = echo_testenv::free_port();
        let auth = auth_at(port, dir.path(), &old, &[]).await;
        let verifier = Arc::new(Verifier::new([], "echo"));
        let shutdown = CancellationToken::new();
        let url = format!("http://127.0.0.1:{port}");
        follow(
            &url,
            KeySet::verify_only(),
            verifier.clone(),
            shutdown.clone(),
            FAST,
        )
        .await
        .unwrap();
        assert_eq!(verifier.kids(), vec![old.kid().to_owned()]);
        assert!(verifier.verify(&token(&old)).is_ok());

        // Auth restarts signing with the new key, the old one still published: the first token
        // of the new key is refused, and brings the refetch that accepts it.
        auth.shutdown().await.unwrap();
        let auth = auth_at(port, dir.path(), &new, &[&old]).await;
        let fresh = token(&new);
        eventually("the new key accepted", || verifier.verify(&fresh).is_ok()).await;
        assert!(
            verifier.verify(&token(&old)).is_ok(),
            "the old key still is"
        );

        // Once auth stops publishing the old key, the next fetch drops it.
        auth.shutdown().await.unwrap();
        let auth = auth_at(port, dir.path(), &new, &[]).await;
        let probe = token(&stranger);
        eventually("the old key dropped", || {
            let _ = verifier.verify(&probe);
            verifier.kids() == vec![new.kid().to_owned()]
        })
        .await;
        assert!(verifier.verify(&token(&old)).is_err());
        assert!(verifier.verify(&fresh).is_ok());
        shutdown.cancel();
        auth.shutdown().await.unwrap();
    }

    fn answer(key: &PublicKey) -> pb::SigningKey {
        let jwk = key.jwk();
        pb::SigningKey {
            kid: jwk.kid,
            kty: jwk.kty.into(),
            alg: jwk.alg.into(),
            crv: jwk.crv.into(),
            x: jwk.x,
            not_after: None,
        }
    }

    #[test]
    fn answers_are_checked_key_by_key() {
        let key = SigningKey::generate().unwrap().public_key().clone();
        let other = SigningKey::generate().unwrap().public_key().clone();
        assert_eq!(parse(&[answer(&key)]).unwrap(), vec![key.clone()]);
        assert!(parse(&[]).is_err(), "an empty set is refused");
        let mut misnamed = answer(&key);
        misnamed.kid = other.kid().to_owned();
        assert!(parse(&[misnamed]).is_err(), "kid must be the thumbprint");
        let mut hmac = answer(&key);
        hmac.alg = "HS256".into();
        assert!(parse(&[hmac]).is_err(), "EdDSA only");
        let mut garbage = answer(&key);
        garbage.x = "not base64!".into();
        assert!(parse(&[answer(&other), garbage]).is_err());
    }
}
