//! A second instance beside a running test mesh: what scale-out looks like in one test
//! process (DESIGN §7.5). Both instances share the Postgres schemas, the NATS subject prefix
//! and the Redis key prefix, and the development signing key in the first's data dir, so a
//! token from either is accepted by both; each has its own ports and its own shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::TestMesh;

impl TestMesh {
    /// Start another instance with this mesh's configuration on new ports: a second process
    /// of the same deployment. Only for the real backends (an embedded database and bus
    /// belong to one process). The sibling never deletes this mesh's data dir, which holds
    /// the shared signing key: keep this mesh alive while the sibling runs.
    pub async fn start_sibling(&self) -> TestMesh {
        assert!(
            self.config.database_url.is_some(),
            "a sibling shares the real backends; the embedded ones belong to one process"
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind public port");
        let admin = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin port");
        let internal = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind internal port");
        let shutdown = CancellationToken::new();
        let overrides = ::echo::Overrides {
            otp_sender: Some(Arc::new(self.otp.clone())),
        };
        let mesh = ::echo::Mesh::start_with(
            &self.config,
            listener,
            admin,
            Some(internal),
            shutdown.clone(),
            overrides,
        )
        .await
        .expect("sibling starts");
        TestMesh {
            mesh,
            config: self.config.clone(),
            otp: self.otp.clone(),
            shutdown,
            // The configuration points at the first mesh's data dir; this one is the
            // sibling's own, empty and unused, so dropping it removes nothing shared.
            _data_dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

impl TestMesh {
    /// Start an edge (`--target edge`, split mode) forwarding every service to this mesh's
    /// public port, sharing its data dir (so the same signing key and service secret). Only
    /// for the real backends (split mode needs a bus between processes).
    pub async fn start_edge(&self) -> TestMesh {
        let upstream = format!("http://{}", self.addr());
        let data_dir = self.config.data_dir.clone();
        TestMesh::start_with(crate::Backend::Real, "edge", |config| {
            config.data_dir = data_dir;
            config.upstreams = echo_config::Upstreams {
                auth: Some(upstream.clone()),
                user: Some(upstream.clone()),
                message: Some(upstream.clone()),
                presence: Some(upstream.clone()),
                notification: Some(upstream),
            };
        })
        .await
        .expect("the real backends are up")
    }
}
