//! Which services the edge forwards, and where: from `upstreams.*` in the configuration, each
//! one `http://host:port` or several comma-separated (one per instance, or per host name that
//! resolves to several).

use echo_config::{Target, Targets, Upstreams};
use echo_proto::service_names;
use http::Uri;

use crate::{ForwardOptions, Forwarder};

/// Why the forwarding table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A service runs in another process but no upstream says where.
    #[error(
        "target `{target}` runs in another process, but upstreams.{target} is not set; set \
         ECHO_UPSTREAMS__{upper} (e.g. http://{target}:8080, or several comma-separated: \
         http://{target}-1:8080,http://{target}-2:8080) or run {target} in this process",
        upper = env_suffix(*.target)
    )]
    Missing {
        /// The target without an upstream.
        target: Target,
    },
    /// An upstream is not an `http://host:port` address (or a comma-separated list of them).
    #[error(
        "upstream `{upstream}` for {service} is not an http://host:port address (or a \
         comma-separated list of them): {why}"
    )]
    Invalid {
        /// The gRPC service it was meant for.
        service: &'static str,
        /// The configured value.
        upstream: String,
        /// What is wrong with it.
        why: String,
    },
}

fn env_suffix(target: Target) -> String {
    target.name().to_uppercase()
}

/// The full gRPC service name a service target serves (`None` for the edge).
pub fn service_name(target: Target) -> Option<&'static str> {
    match target {
        Target::Auth => Some(service_names::AUTH),
        Target::User => Some(service_names::USER),
        Target::Message => Some(service_names::MESSAGE),
        Target::Presence => Some(service_names::PRESENCE),
        Target::Notification => Some(service_names::NOTIFICATION),
        Target::Edge => None,
    }
}

impl Forwarder {
    /// Forward every service target that `local` does not run to its configured upstreams;
    /// a service running elsewhere without an upstream is a configuration error.
    pub fn from_upstreams(upstreams: &Upstreams, local: &Targets) -> Result<Self, UpstreamError> {
        Self::from_upstreams_with(upstreams, local, ForwardOptions::default())
    }

    /// [`Forwarder::from_upstreams`] with the resolver, timings and body cap given.
    pub fn from_upstreams_with(
        upstreams: &Upstreams,
        local: &Targets,
        options: ForwardOptions,
    ) -> Result<Self, UpstreamError> {
        let mut routes = Vec::new();
        for target in Target::SERVICES.into_iter().filter(|t| !local.contains(*t)) {
            let Some(service) = service_name(target) else {
                continue;
            };
            let configured = upstreams
                .get(target)
                .ok_or(UpstreamError::Missing { target })?;
            let invalid = |why: String| UpstreamError::Invalid {
                service,
                upstream: configured.to_owned(),
                why,
            };
            let mut any = false;
            for upstream in configured.split(',').map(str::trim) {
                if upstream.is_empty() {
                    return Err(invalid("an empty entry in the list".into()));
                }
                let uri = upstream
                    .parse::<Uri>()
                    .map_err(|error| invalid(format!("`{upstream}`: {error}")))?;
                routes.push((service, uri));
                any = true;
            }
            if !any {
                return Err(invalid("no address".into()));
            }
        }
        Self::with_options(routes, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_what_runs_elsewhere() {
        let upstreams = Upstreams {
            auth: Some("http://auth:8080".into()),
            user: Some("http://user:8080".into()),
            message: Some("http://message:8080".into()),
            presence: Some("http://presence:8080".into()),
            notification: None,
        };
        let local: Targets = "edge,notification".parse().unwrap();
        let forwarder = Forwarder::from_upstreams(&upstreams, &local).unwrap();
        let mut names: Vec<_> = forwarder.service_names().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                service_names::AUTH,
                service_names::MESSAGE,
                service_names::PRESENCE,
                service_names::USER,
            ]
        );
    }

    #[test]
    fn a_missing_or_malformed_upstream_is_refused() {
        let local: Targets = "edge".parse().unwrap();
        let error = Forwarder::from_upstreams(&Upstreams::default(), &local).unwrap_err();
        assert!(
            error.to_string().contains("ECHO_UPSTREAMS__AUTH"),
            "{error}"
        );

        let upstreams = Upstreams {
            auth: Some("https://auth:8443".into()),
            ..Upstreams::default()
        };
        let local: Targets = "edge,user,message,presence,notification".parse().unwrap();
        let error = Forwarder::from_upstreams(&upstreams, &local).unwrap_err();
        assert!(matches!(error, UpstreamError::Invalid { .. }), "{error}");

        for list in [
            "http://auth-1:8080,,http://auth-2:8080",
            "http://auth-1:8080, https://auth-2:8443",
            " , ",
        ] {
            let upstreams = Upstreams {
                auth: Some(list.into()),
                ..Upstreams::default()
            };
            let error = Forwarder::from_upstreams(&upstreams, &local).unwrap_err();
            assert!(
                matches!(error, UpstreamError::Invalid { .. }),
                "{list}: {error}"
            );
            assert!(error.to_string().contains("comma-separated"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_list_of_upstreams_balances_over_each() {
        let upstreams = Upstreams {
            message: Some("http://127.0.0.1:7001, http://127.0.0.1:7002,http://[::1]:7003".into()),
            ..Upstreams::default()
        };
        let local: Targets = "edge,auth,user,presence,notification".parse().unwrap();
        let forwarder = Forwarder::from_upstreams(&upstreams, &local).unwrap();
        forwarder.resolve().await;
        let addrs: Vec<String> = forwarder
            .instances(service_names::MESSAGE)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addrs, ["127.0.0.1:7001", "127.0.0.1:7002", "[::1]:7003"]);
    }
}
