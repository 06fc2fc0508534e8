//! `grpc.health.v1` with readiness from the databases only (DESIGN §8): a bus or cache outage
//! degrades the service, it does not take the pod out of rotation.

use std::sync::Arc;
use std::time::Duration;

use echo_store::Database;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often readiness is re-checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Keeps the health service and `/readyz` in step with the databases.
#[derive(Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    services: Arc<Vec<&'static str>>,
    ready: watch::Sender<bool>,
}

impl Readiness {
    /// Track `services` (full gRPC names) with `reporter`; not ready until the first check.
    pub fn new(reporter: HealthReporter, services: Vec<&'static str>) -> Self {
        Self {
            reporter,
            services: Arc::new(services),
            ready: watch::channel(false).0,
        }
    }

    /// A receiver of the current readiness (for `/readyz`).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Check `databases` now and every few seconds until `shutdown`, then report NOT_SERVING.
    pub async fn run(self, databases: Vec<Database>, shutdown: CancellationToken) {
        loop {
            // All at once: a database that does not answer holds its ping for the ping's
            // timeout, and one after another a mesh's five would take five times that.
            let pings = futures::future::join_all(databases.iter().map(Database::ping)).await;
            let mut ready = true;
            for (db, ping) in databases.iter().zip(pings) {
                if let Err(error) = ping {
                    tracing::warn!(%error, backend = db.backend(), "database not ready");
                    ready = false;
                }
            }
            self.set(ready).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
        self.set(false).await;
    }

    /// Report `ready` for the server as a whole ("") and for every service.
    pub async fn set(&self, ready: bool) {
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        for service in self.services.iter() {
            self.reporter.set_service_status(*service, status).await;
        }
        self.ready
            .send_if_modified(|current| std::mem::replace(current, ready) != ready);
    }
}
