//! Every instance of one upstream service, and the choice among them.
//!
//! Each configured `http://host:port` stands for every address its host resolves to (an IP
//! literal for itself), resolved again every `resolve_every` so the pods behind a Kubernetes
//! headless Service are followed. A call goes to the less loaded of two instances drawn at
//! random (power of two choices, on calls and streams in flight through this edge); an
//! instance whose connection failed is skipped for `down_for`. One piece: the set, its
//! refresh and the choice share the instance records (load and failures survive a refresh).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use http::uri::Authority;
use tokio::time::Instant;

/// Where the addresses of an upstream host come from: DNS in production, a test double in
/// tests (DNS itself cannot be faked).
pub trait Resolver: Send + Sync + 'static {
    /// Every address `host:port` stands for now.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct Dns;

impl Resolver for Dns {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// One address serving the service: its load and whether it is skipped.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: Authority,
    in_flight: AtomicUsize,
    down_until: Mutex<Option<Instant>>,
    down_for: Duration,
}

impl Instance {
    fn new(addr: SocketAddr, down_for: Duration) -> Arc<Self> {
        let authority = addr
            .to_string()
            .parse()
            .expect("a socket address is an authority");
        Arc::new(Self {
            addr,
            authority,
            in_flight: AtomicUsize::new(0),
            down_until: Mutex::new(None),
            down_for,
        })
    }

    /// Count a call or stream on this instance until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Skip this instance for `down_for`: its connection failed.
    pub(crate) fn mark_down(&self) {
        let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        *down = Some(Instant::now() + self.down_for);
    }

    fn is_up(&self, now: Instant) -> bool {
        let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        down.is_none_or(|until| until <= now)
    }

    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A call or stream in flight on an instance (dropped when its response ends).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Instance>);

impl InFlight {
    /// The instance this call is on.
    pub(crate) fn instance(&self) -> &Arc<Instance> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A configured upstream: an address, or a host name to resolve.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Fixed(SocketAddr),
    Named { host: String, port: u16 },
}

impl Target {
    pub(crate) fn new(host: &str, port: u16) -> Self {
        // `[::1]` in a URI is the IPv6 literal `::1`.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Target::Fixed(SocketAddr::new(ip, port)),
            Err(_) => Target::Named {
                host: host.to_owned(),
                port,
            },
        }
    }
}

/// Every instance of one service and when they were last resolved.
pub(crate) struct Pool {
    service: &'static str,
    targets: Vec<Target>,
    resolver: Arc<dyn Resolver>,
    resolve_every: Duration,
    down_for: Duration,
    instances: RwLock<Arc<Vec<Arc<Instance>>>>,
    resolved_at: Mutex<Option<Instant>>,
    resolving: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("service", &self.service)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(
        service: &'static str,
        targets: Vec<Target>,
        resolver: Arc<dyn Resolver>,
        resolve_every: Duration,
        down_for: Duration,
    ) -> Self {
        Self {
            service,
            targets,
            resolver,
            resolve_every,
            down_for,
            instances: RwLock::new(Arc::new(Vec::new())),
            resolved_at: Mutex::new(None),
            resolving: AtomicBool::new(false),
        }
    }

    /// The current instances.
    pub(crate) fn instances(&self) -> Arc<Vec<Arc<Instance>>> {
        self.instances
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolve every target now and replace the instance set (kept as it was when nothing
    /// resolves: a DNS hiccup must not empty a working set). Records of addresses still
    /// present are kept, with their load and failures.
    pub(crate) async fn resolve(&self) {
        let mut addrs = Vec::new();
        for target in &self.targets {
            match target {
                Target::Fixed(addr) => addrs.push(*addr),
                Target::Named { host, port } => match self.resolver.resolve(host, *port).await {
                    Ok(found) => addrs.extend(found),
                    Err(error) => {
                        tracing::warn!(%error, service = self.service, host, "cannot resolve upstream");
                    }
                },
            }
        }
        *self.resolved_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if addrs.is_empty() {
            return;
        }
        addrs.sort_unstable();
        addrs.dedup();
        let old = self.instances();
        let next: Vec<Arc<Instance>> = addrs
            .into_iter()
            .map(|addr| {
                old.iter()
                    .find(|i| i.addr == addr)
                    .cloned()
                    .unwrap_or_else(|| Instance::new(addr, self.down_for))
            })
            .collect();
        if next.len() != old.len() || next.iter().zip(old.iter()).any(|(a, b)| a.addr != b.addr) {
            let list: Vec<String> = next.iter().map(|i| i.addr.to_string()).collect();
            tracing::info!(service = self.service, instances = ?list, "upstream instances");
        }
        *self.instances.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    /// Resolve when never resolved (waiting for it), or in the background when the set is
    /// older than `resolve_every` (the call goes on with the set it has; an empty set is
    /// refreshed each second).
    pub(crate) async fn refresh(self: &Arc<Self>) {
        let resolved_at = *self.resolved_at.lock().unwrap_or_else(|e| e.into_inner());
        // A name that resolved to nothing yet (pods not ready when the edge started) is tried
        // again within a second, not a whole period later.
        let every = if self.instances().is_empty() {
            self.resolve_every.min(Duration::from_secs(1))
        } else {
            self.resolve_every
        };
        match resolved_at {
            None => self.resolve().await,
            Some(at) if at.elapsed() >= every => {
                if !self.resolving.swap(true, Ordering::AcqRel) {
                    let pool = Arc::clone(self);
                    tokio::spawn(async move {
                        pool.resolve().await;
                        pool.resolving.store(false, Ordering::Release);
                    });
                }
            }
            Some(_) => {}
        }
    }

    /// The instance for the next call: of two up instances drawn at random, the one with less
    /// in flight; none when every instance (but those in `tried`) is down.
    pub(crate) fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Instance>> {
        let now = Instant::now();
        let instances = self.instances();
        let up: Vec<&Arc<Instance>> = instances
            .iter()
            .filter(|i| !tried.contains(&i.addr) && i.is_up(now))
            .collect();
        match up.len() {
            0 => None,
            1 => Some(Arc::clone(up[0])),
            n => {
                let a = rand::random_range(0..n);
                // A second, different draw: shift by 1..n.
                let b = (a + rand::random_range(1..n)) % n;
                let pick = if up[b].load() < up[a].load() {
                    up[b]
                } else {
                    up[a]
                };
                Some(Arc::clone(pick))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addrs: &[&str]) -> Pool {
        let targets = addrs
            .iter()
            .map(|a| {
                let addr: SocketAddr = a.parse().unwrap();
                Target::Fixed(addr)
            })
            .collect();
        Pool::new(
            "s",
            targets,
            Arc::new(Dns),
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    #[tokio::test]
    async fn the_less_loaded_instance_gets_the_call() {
        let pool = pool(&["127.0.0.1:1", "127.0.0.1:2"]);
        pool.resolve().await;
        let busy = pool.instances()[0].clone();
        let _held: Vec<_> = (0..3).map(|_| busy.enter()).collect();
        for _ in 0..50 {
            // With two instances both are always drawn: the idle one wins every time.
            assert_eq!(pool.pick(&[]).unwrap().addr, "127.0.0.1:2".parse().unwrap());
        }
    }

    #[tokio::test]
    async fn a_down_instance_is_skipped_and_none_when_all_are_down() {
        let pool = pool(&["127.0.0.1:1", "127.0.0.1:2"]);
        pool.resolve().await;
        pool.instances()[0].mark_down();
        for _ in 0..20 {
            assert_eq!(pool.pick(&[]).unwrap().addr, "127.0.0.1:2".parse().unwrap());
        }
        pool.instances()[1].mark_down();
        assert!(pool.pick(&[]).is_none());
        // A refresh keeps the records, so the failures with them.
        pool.resolve().await;
        assert!(pool.pick(&[]).is_none());
    }

    #[test]
    fn ip_literals_are_fixed_and_names_are_resolved() {
        assert!(matches!(Target::new("10.0.0.1", 80), Target::Fixed(_)));
        assert!(matches!(Target::new("[::1]", 80), Target::Fixed(_)));
        assert!(matches!(Target::new("message", 80), Target::Named { .. }));
    }
}
