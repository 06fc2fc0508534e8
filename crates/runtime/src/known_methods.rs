//! The methods a port serves, so the RPC metrics label a call by its method and put every other
//! path in one `unknown` series: a client inventing paths (a scanner, a stale app) then cannot
//! create series without bound.

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message as _;
use prost_types::FileDescriptorSet;

/// The label of every path that is not a served method.
pub const UNKNOWN: &str = "unknown";

/// Health and reflection, served on every port beside the services.
const PROTOCOL_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The paths (`/package.Service/Method`) of the methods one port serves.
#[derive(Clone, Debug)]
pub struct KnownMethods(Arc<HashSet<String>>);

impl KnownMethods {
    /// Every method of `services` (full gRPC names, as in Echo's descriptor set), plus health
    /// and reflection.
    pub fn of(services: &[&str]) -> Self {
        let set = FileDescriptorSet::decode(echo_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set is valid");
        let mut paths: HashSet<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.service.iter().flat_map(move |service| {
                    let name = format!("{}.{}", file.package(), service.name());
                    service
                        .method
                        .iter()
                        .map(move |method| format!("/{name}/{}", method.name()))
                })
            })
            .filter(|path| {
                let service = path[1..].split('/').next().unwrap_or_default();
                services.contains(&service)
            })
            .collect();
        paths.extend(PROTOCOL_METHODS.map(str::to_owned));
        Self(Arc::new(paths))
    }

    /// The metrics label of a request to `path`: the path itself when it is a served method,
    /// [`UNKNOWN`] otherwise.
    pub fn label(&self, path: &str) -> String {
        if self.0.contains(path) {
            path.to_owned()
        } else {
            UNKNOWN.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_keep_their_path_and_everything_else_is_unknown() {
        let known = KnownMethods::of(&["echo.auth.v1.AuthService"]);
        let register = "/echo.auth.v1.AuthService/Register";
        assert_eq!(known.label(register), register);
        let check = "/grpc.health.v1.Health/Check";
        assert_eq!(known.label(check), check);
        for other in [
            "/echo.auth.v1.AuthService/NoSuchMethod",
            "/echo.user.v1.UserService/GetMe", // not served on this port
            "/wp-login.php",
            "/",
            "",
        ] {
            assert_eq!(known.label(other), UNKNOWN, "{other}");
        }
    }
}
