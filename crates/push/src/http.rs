//! The HTTP client every provider uses and the answers they all read the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::address::{internal_host, internal_ip};
use crate::{ConfigError, HttpConfig, Outcome};

/// A client for one provider: rustls on ring, no redirects (a push endpoint that redirects is
/// refused, never followed), https only, the configured extra roots trusted besides the
/// platform's. `h2_only` is for APNs, which speaks HTTP/2 and nothing else.
pub(crate) fn client(config: &HttpConfig, h2_only: bool) -> Result<reqwest::Client, ConfigError> {
    crate::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .user_agent(concat!("echo-push/", env!("CARGO_PKG_VERSION")));
    for pem in &config.extra_root_pems {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())?;
        if certs.is_empty() {
            return Err(ConfigError::invalid(
                "extra_root_pems",
                "no certificate in a PEM",
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if h2_only {
        builder = builder.http2_prior_knowledge();
    }
    if config.public_only {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    Ok(builder.build()?)
}

/// Why a request to a user's URL was not made: it leads inside our network.
#[derive(Debug, thiserror::Error)]
#[error("the endpoint's address is private, loopback or link-local (refused in production)")]
pub(crate) struct InternalAddress;

/// Resolves names with the system resolver and keeps only public addresses; a name with none
/// left fails with [`InternalAddress`]. (IP literals never reach a resolver: see
/// [`refuse_internal`].)
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| !internal_ip(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(InternalAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// With `public_only`, a URL whose host is written as an internal address (or `localhost`) is
/// dropped before any request: what the resolver cannot see.
pub(crate) fn refuse_internal(public_only: bool, url: &str) -> Option<Outcome> {
    let host = reqwest::Url::parse(url).ok()?.host_str()?.to_owned();
    (public_only && internal_host(&host)).then(|| Outcome::Drop {
        reason: InternalAddress.to_string(),
    })
}

/// Whether `error` came from the [`PublicOnly`] resolver refusing every address.
pub(crate) fn refused_internal(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<InternalAddress>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A request that got no HTTP answer: retry, except when the request could not even be built.
pub(crate) fn transport_outcome(error: &reqwest::Error) -> Outcome {
    if error.is_builder() {
        return Outcome::Drop {
            reason: format!("request not built: {error}"),
        };
    }
    if refused_internal(error) {
        return Outcome::Drop {
            reason: InternalAddress.to_string(),
        };
    }
    tracing::debug!(%error, timeout = error.is_timeout(), "push request failed in transport");
    Outcome::Retry { after: None }
}

/// 429 and 5xx: retry no sooner than the server asked.
pub(crate) fn retry(headers: &HeaderMap) -> Outcome {
    Outcome::Retry {
        after: retry_after(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// The resolver itself (names the literal check lets through reach it): a name with only
    /// internal addresses fails the request, and the failure reads as a drop, not a retry.
    #[tokio::test]
    async fn a_public_only_client_refuses_names_that_resolve_inside() {
        let config = HttpConfig {
            public_only: true,
            ..HttpConfig::default()
        };
        let error = client(&config, false)
            .unwrap()
            .get("https://localhost:9/")
            .send()
            .await
            .unwrap_err();
        assert!(refused_internal(&error), "{error:?}");
        assert!(matches!(transport_outcome(&error), Outcome::Drop { .. }));
        // Without the guard the same request fails in transport (nothing listens): a retry.
        let error = client(&HttpConfig::default(), false)
            .unwrap()
            .get("https://localhost:9/")
            .send()
            .await
            .unwrap_err();
        assert!(!refused_internal(&error));
        assert_eq!(transport_outcome(&error), Outcome::Retry { after: None });
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(1)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let after = retry_after(&headers).unwrap();
        assert!(
            after > Duration::from_secs(100) && after <= Duration::from_secs(120),
            "{after:?}"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
