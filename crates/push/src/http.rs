//! The HTTP client every provider uses and the answers they all read the same way.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

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
    Ok(builder.build()?)
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
