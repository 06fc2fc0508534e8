//! Dependency outages under load (issue 17, R2), on the real backends, while four users send
//! to one group without pause: PostgreSQL, NATS and Redis cut through a TCP proxy the test owns
//! in front of the shared servers (`cuts`), PostgreSQL blackholed through it (`blackhole`), and
//! private PostgreSQL, NATS and Redis servers the test starts killed outright and restarted
//! (`kills`). The shared servers other tests use are never stopped.
//!
//! What must hold: no acknowledged message is lost; while the database is away a send fails
//! with UNAVAILABLE and RetryInfo (never INTERNAL), in bounded time (the pool's acquire timeout,
//! or `send.commit_timeout` when the database stops answering, for its batch and the one ahead
//! of it in its lane), and `/readyz` says 503; sends succeed again within 5 s of its return; a
//! refused send retried with its key is stored once; the live stream from a cursor taken
//! before the outage holds every seq once, in order (the outbox drained); the notification
//! consumers catch up with exactly one inbox entry per message; with NATS away sends go on; a
//! revoked session stays revoked when Redis comes back empty.
//!
//! Modules by concept: `load` (the senders, the readiness poller), `checks` (the verdicts),
//! then one per kind of outage.

mod common;

#[path = "outages/blackhole.rs"]
mod blackhole;
#[path = "outages/checks.rs"]
mod checks;
#[path = "outages/cuts.rs"]
mod cuts;
#[path = "outages/kills.rs"]
mod kills;
#[path = "outages/load.rs"]
mod load;

/// How long the pool waits for a connection before a call fails (crates/store).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
