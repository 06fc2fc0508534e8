//! Balancing over several instances of one upstream, through a real tonic client: both
//! instances carry the load, a stopped one is skipped without a lost call, and the set follows
//! what the resolver answers (the DNS seam, with a test double: DNS itself cannot be faked).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Port, served_by, within};
use echo_edge::{ForwardOptions, Forwarder, Resolver};
use echo_proto::echo::user::v1::GetMeRequest;
use echo_proto::echo::user::v1::user_service_client::UserServiceClient;
use echo_proto::service_names::USER;
use echo_runtime::Services;
use futures::future::BoxFuture;
use tonic::Code;
use tonic::transport::Channel;

mod common;

/// An edge forwarding UserService per `forwarder`.
async fn edge(forwarder: &Forwarder) -> Port {
    let mut services = Services::new();
    forwarder.mount(&mut services);
    Port::start(services).await
}

/// `calls` GetMe calls, `at_once` at a time; which instance answered each, counted by name.
async fn spread(channel: &Channel, calls: usize, at_once: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..calls / at_once {
        let batch = (0..at_once).map(|_| {
            let mut client = UserServiceClient::new(channel.clone());
            async move { client.get_me(GetMeRequest::default()).await.unwrap_err() }
        });
        for status in futures::future::join_all(batch).await {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            *counts.entry(served_by(&status)).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn both_instances_carry_calls_and_a_stopped_one_loses_none() {
    let first = Port::stand_in(USER, "first").await;
    let second = Port::stand_in(USER, "second").await;
    let routes =
        [first.addr, second.addr].map(|addr| (USER, format!("http://{addr}").parse().unwrap()));
    let forwarder = Forwarder::new(routes).unwrap();
    let edge = edge(&forwarder).await;
    let channel = edge.channel();

    let counts = within("calls over two instances", spread(&channel, 400, 20)).await;
    assert!(
        counts.get("first").copied().unwrap_or(0) > 40
            && counts.get("second").copied().unwrap_or(0) > 40,
        "both instances carry a fair share: {counts:?}"
    );

    // The second goes away: every call still succeeds, on the first (a refused connection
    // is a call certainly not sent, so it goes to the other instance).
    second.stop().await;
    let counts = within("calls after one stopped", spread(&channel, 200, 20)).await;
    assert_eq!(counts, HashMap::from([("first".to_owned(), 200)]));

    // With no instance left the edge answers UNAVAILABLE with RetryInfo.
    first.stop().await;
    let status = UserServiceClient::new(channel)
        .get_me(GetMeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let retry = tonic_types::StatusExt::get_details_retry_info(&status).expect("RetryInfo");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(5))
    );
    edge.stop().await;
}

/// A resolver whose answer the test sets.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Vec<SocketAddr>>>);

impl Scripted {
    fn answer(&self, addrs: &[SocketAddr]) {
        *self.0.lock().unwrap() = addrs.to_vec();
    }
}

impl Resolver for Scripted {
    fn resolve(
        &self,
        _host: &str,
        _port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let addrs = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// Call through `channel` until `service`'s instances are `expected` (each call lets the
/// forwarder refresh its set), bounded by the patience.
async fn until_instances(forwarder: &Forwarder, channel: &Channel, expected: &[SocketAddr]) {
    let mut want = expected.to_vec();
    want.sort_unstable();
    within("the resolver's new answer to be followed", async {
        while forwarder.instances(USER) != want {
            let _ = UserServiceClient::new(channel.clone())
                .get_me(GetMeRequest::default())
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn instances_follow_the_resolver() {
    let first = Port::stand_in(USER, "first").await;
    let second = Port::stand_in(USER, "second").await;
    let resolver = Scripted::default();
    resolver.answer(&[first.addr]);
    let options = ForwardOptions {
        resolver: Arc::new(resolver.clone()),
        resolve_every: Duration::from_millis(100),
        ..ForwardOptions::default()
    };
    // A name, not an address: only the resolver says where it is.
    let route = (USER, "http://users.echo.internal:8080".parse().unwrap());
    let forwarder = Forwarder::with_options([route], options).unwrap();
    let edge = edge(&forwarder).await;
    let channel = edge.channel();

    let counts = within("calls to the one instance", spread(&channel, 40, 10)).await;
    assert_eq!(counts, HashMap::from([("first".to_owned(), 40)]));

    // A new pod behind the name gets traffic after the refresh.
    resolver.answer(&[first.addr, second.addr]);
    until_instances(&forwarder, &channel, &[first.addr, second.addr]).await;
    let counts = within("calls to both", spread(&channel, 200, 20)).await;
    assert!(
        counts.get("second").copied().unwrap_or(0) > 20,
        "{counts:?}"
    );

    // One that leaves the answer gets none; an empty answer (a DNS hiccup) keeps the set.
    resolver.answer(&[second.addr]);
    until_instances(&forwarder, &channel, &[second.addr]).await;
    resolver.answer(&[]);
    let counts = within("calls after the first left", spread(&channel, 100, 20)).await;
    assert_eq!(counts, HashMap::from([("second".to_owned(), 100)]));
    assert_eq!(forwarder.instances(USER), [second.addr]);

    edge.stop().await;
    first.stop().await;
    second.stop().await;
}
