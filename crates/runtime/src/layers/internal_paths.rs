//! What the public port does about internal contracts (DESIGN §9): it refuses them and hides
//! them.
//!
//! Every path whose service name ends in `InternalService`
//! (`/echo.<domain>.v1.<Name>InternalService/<Method>`) is answered PERMISSION_DENIED with
//! ErrorInfo `SERVICE_ONLY`, whatever the credentials, before routing, authentication or
//! forwarding. So an internal contract is unreachable through the public port in whole-mesh
//! mode (where it is not even mounted: UNIMPLEMENTED would hide nothing but tell less), in
//! split mode (the edge forwards no such path) and over grpc-web alike. And the public port's
//! reflection serves the API without their files ([`public_api`]).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use prost::Message as _;
use prost_types::FileDescriptorSet;
use tonic::Code;
use tower::{Layer, Service};

use crate::Failure;

/// The package of the operators' API, which only the admin port serves and reflects.
const OPERATOR_PACKAGE: &str = "echo.admin.";

/// The suffix that marks a gRPC service as internal.
const INTERNAL_SUFFIX: &str = "InternalService";

/// Whether `service` (a full gRPC service name) is an internal contract.
pub fn is_internal_service(service: &str) -> bool {
    service.ends_with(INTERNAL_SUFFIX)
}

/// Whether the request `path` (`/<service>/<method>`) calls an internal contract.
pub fn is_internal_path(path: &str) -> bool {
    let service = path.trim_start_matches('/');
    let service = service.split('/').next().unwrap_or_default();
    is_internal_service(service)
}

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct InternalPathsLayer;

impl<S> Layer<S> for InternalPathsLayer {
    type Service = InternalPaths<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InternalPaths { inner }
    }
}

/// See [`InternalPathsLayer`].
#[derive(Clone, Debug)]
pub struct InternalPaths<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for InternalPaths<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !is_internal_path(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        tracing::debug!(method = %request.uri().path(), "internal contract refused on the public port");
        let status = tonic::Status::from(Failure::reason(
            Code::PermissionDenied,
            "SERVICE_ONLY",
            "internal contracts are served only to Echo's own services, on the internal port",
        ));
        Box::pin(std::future::ready(Ok(status.into_http())))
    }
}

/// The public port's view of the API: the descriptor set without the files of internal
/// contracts (so reflection can neither list nor describe them), and the services it lists.
pub(crate) struct PublicApi {
    /// The encoded descriptor set reflection serves.
    pub descriptors: Vec<u8>,
    /// The full names of the services it lists.
    pub services: Vec<String>,
}

/// [`PublicApi`] of Echo's API, computed once.
pub(crate) fn public_api() -> &'static PublicApi {
    static API: OnceLock<PublicApi> = OnceLock::new();
    API.get_or_init(|| public_api_of(echo_proto::FILE_DESCRIPTOR_SET))
}

fn public_api_of(encoded: &[u8]) -> PublicApi {
    let mut set = FileDescriptorSet::decode(encoded).expect("the embedded descriptor set is valid");
    let internal_files: HashSet<String> = set
        .file
        .iter()
        // The operators' API (served on the admin port only, docs/admin.md) is left out too.
        .filter(|file| {
            file.service.iter().any(|s| is_internal_service(s.name()))
                || file.package().starts_with(OPERATOR_PACKAGE)
        })
        .map(|file| file.name().to_owned())
        .collect();
    // A file that a public file imports stays (reflection must resolve every import); its
    // internal services are then only unlisted.
    let imported: HashSet<String> = set
        .file
        .iter()
        .filter(|file| !internal_files.contains(file.name()))
        .flat_map(|file| file.dependency.iter().cloned())
        .collect();
    set.file
        .retain(|file| !internal_files.contains(file.name()) || imported.contains(file.name()));
    let services = set
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| format!("{}.{}", file.package(), service.name()))
        })
        .filter(|name| !is_internal_service(name) && !name.starts_with(OPERATOR_PACKAGE))
        .collect();
    PublicApi {
        descriptors: set.encode_to_vec(),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_paths_are_recognised_by_their_service_name() {
        for path in [
            "/echo.presence.v1.PresenceInternalService/GetDeliveryState",
            "/echo.message.v1.MessageInternalService/GetNotificationPreviews",
            "echo.x.v1.InternalService/Y",
            "/echo.presence.v1.PresenceInternalService/",
        ] {
            assert!(is_internal_path(path), "{path}");
        }
        for path in [
            "/echo.presence.v1.PresenceService/Heartbeat",
            "/echo.presence.v1.PresenceService/InternalService",
            "/grpc.health.v1.Health/Check",
            "/",
            "",
        ] {
            assert!(!is_internal_path(path), "{path}");
        }
    }

    #[test]
    fn the_public_api_leaves_internal_contracts_out() {
        let api = public_api();
        assert!(
            api.services
                .iter()
                .any(|s| s == "echo.presence.v1.PresenceService"),
            "{:?}",
            api.services
        );
        assert!(
            !api.services.iter().any(|s| is_internal_service(s)),
            "{:?}",
            api.services
        );
        let set = FileDescriptorSet::decode(api.descriptors.as_slice()).unwrap();
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert!(
            names.contains(&"echo/presence/v1/presence.proto"),
            "{names:?}"
        );
        assert!(
            !names.contains(&"echo/presence/v1/presence_internal.proto"),
            "{names:?}"
        );
        // Every import of a file still described resolves.
        for file in &set.file {
            for dependency in &file.dependency {
                assert!(
                    dependency.starts_with("google/") || names.contains(&dependency.as_str()),
                    "{} imports {dependency}, which is gone",
                    file.name()
                );
            }
        }
    }

    #[test]
    fn an_internal_file_that_a_public_file_imports_stays_but_unlisted() {
        use prost_types::{FileDescriptorProto, ServiceDescriptorProto};
        let service = |name: &str| ServiceDescriptorProto {
            name: Some(name.into()),
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![
                FileDescriptorProto {
                    name: Some("a/internal.proto".into()),
                    package: Some("a".into()),
                    service: vec![service("AInternalService")],
                    ..Default::default()
                },
                FileDescriptorProto {
                    name: Some("a/public.proto".into()),
                    package: Some("a".into()),
                    dependency: vec!["a/internal.proto".into()],
                    service: vec![service("AService")],
                    ..Default::default()
                },
            ],
        };
        let api = public_api_of(&set.encode_to_vec());
        assert_eq!(api.services, ["a.AService"]);
        let kept = FileDescriptorSet::decode(api.descriptors.as_slice()).unwrap();
        assert_eq!(kept.file.len(), 2);
    }
}
