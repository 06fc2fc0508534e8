//! The command line as users type it: defaults, flags, refusals.

use super::*;

fn parse(args: &[&str]) -> Cli {
    let mut argv = vec!["echo-bench"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("valid command line")
}

#[test]
fn no_scenario_means_all_on_embedded_in_process() {
    let cli = parse(&[]);
    assert!(cli.scenario.is_none());
    assert_eq!(cli.global.backend, BackendKind::Embedded);
    assert_eq!(cli.global.server, None);
    assert_eq!(cli.global.target, None);
    assert_eq!(cli.global.connections, 4);
}

#[test]
fn defaults_of_all_match_the_parsed_defaults() {
    // `all` builds its arguments with Default; they must equal what clap would parse.
    let Some(Scenario::Latency(latency)) = parse(&["latency"]).scenario else {
        panic!("latency")
    };
    let default = LatencyArgs::default();
    assert_eq!(
        (
            latency.rate,
            latency.duration,
            latency.warmup,
            latency.senders
        ),
        (
            default.rate,
            default.duration,
            default.warmup,
            default.senders
        )
    );
    let Some(Scenario::Throughput(throughput)) = parse(&["throughput"]).scenario else {
        panic!("throughput")
    };
    let default = ThroughputArgs::default();
    assert_eq!(
        (throughput.senders, throughput.messages),
        (default.senders, default.messages)
    );
    let Some(Scenario::Fanout(fanout)) = parse(&["fanout"]).scenario else {
        panic!("fanout")
    };
    let default = FanoutArgs::default();
    assert_eq!(
        (
            fanout.members,
            fanout.messages,
            fanout.rate,
            fanout.duration,
            fanout.senders
        ),
        (
            default.members,
            default.messages,
            default.rate,
            default.duration,
            default.senders
        )
    );
    let Some(Scenario::Connections(connections)) = parse(&["connections"]).scenario else {
        panic!("connections")
    };
    let default = ConnectionsArgs::default();
    assert_eq!(
        (
            connections.streams,
            connections.per_address,
            connections.mux_connections,
            connections.open_concurrency,
            connections.settle
        ),
        (
            default.streams,
            default.per_address,
            default.mux_connections,
            default.open_concurrency,
            default.settle
        )
    );
    let Some(Scenario::Baseline(baseline)) = parse(&["baseline"]).scenario else {
        panic!("baseline")
    };
    let default = BaselineArgs::default();
    assert_eq!(
        (baseline.concurrency, baseline.duration, baseline.payload),
        (default.concurrency, default.duration, default.payload)
    );
    let Some(Scenario::Presence(presence)) = parse(&["presence"]).scenario else {
        panic!("presence")
    };
    let default = PresenceArgs::default();
    assert_eq!(
        (
            presence.devices,
            presence.heartbeat_callers,
            presence.heartbeat_duration,
            presence.heartbeat_rate,
            presence.rate_duration,
            presence.get_rate,
            presence.get_duration,
        ),
        (
            default.devices,
            default.heartbeat_callers,
            default.heartbeat_duration,
            default.heartbeat_rate,
            default.rate_duration,
            default.get_rate,
            default.get_duration,
        )
    );
    assert_eq!(
        (
            presence.watchers,
            presence.changes,
            presence.change_every_ms,
            presence.open_concurrency,
            presence.settle,
            presence.no_cross
        ),
        (
            default.watchers,
            default.changes,
            default.change_every_ms,
            default.open_concurrency,
            default.settle,
            default.no_cross
        )
    );
}

#[test]
fn global_flags_go_before_or_after_the_scenario() {
    let before = parse(&["--backend", "real", "--json", "out.json", "fanout"]);
    let after = parse(&["fanout", "--backend", "real", "--json", "out.json"]);
    for cli in [before, after] {
        assert_eq!(cli.global.backend, BackendKind::Real);
        assert_eq!(cli.global.json, Some(PathBuf::from("out.json")));
        assert!(matches!(cli.scenario, Some(Scenario::Fanout(_))));
    }
}

#[test]
fn fanout_sizes_are_a_comma_separated_list() {
    let cli = parse(&["fanout", "--members", "10,20,30", "--rate", "50"]);
    let Some(Scenario::Fanout(fanout)) = cli.scenario else {
        panic!("fanout")
    };
    assert_eq!(fanout.members, vec![10, 20, 30]);
    assert_eq!(fanout.rate, 50);
}

#[test]
fn fanout_is_a_burst_unless_given_a_duration() {
    let Some(Scenario::Fanout(burst)) = parse(&["fanout"]).scenario else {
        panic!("fanout")
    };
    assert_eq!((burst.duration, burst.senders), (None, None));
    let cli = parse(&[
        "fanout",
        "--members",
        "1000",
        "--rate",
        "300",
        "--duration",
        "10",
        "--senders",
        "20",
    ]);
    let Some(Scenario::Fanout(sustained)) = cli.scenario else {
        panic!("fanout")
    };
    assert_eq!(
        (sustained.duration, sustained.senders),
        (Some(10), Some(20))
    );
    // --senders only means something for a sustained run.
    assert!(Cli::try_parse_from(["echo-bench", "fanout", "--senders", "3"]).is_err());
}

#[test]
fn server_settings_default_to_the_servers_and_parse_anywhere() {
    let cli = parse(&["latency"]);
    assert_eq!(cli.global.tuning(), crate::tuning::ServerTuning::default());
    assert_eq!(cli.global.profile, None);
    let cli = parse(&[
        "--send-max-batch",
        "512",
        "fanout",
        "--send-committers",
        "8",
        "--send-queue",
        "4096",
        "--send-commit-timeout",
        "2.5",
        "--profile",
        "/tmp/fanout.perf",
    ]);
    assert_eq!(
        cli.global.tuning(),
        crate::tuning::ServerTuning {
            send_queue: Some(4096),
            send_max_batch: Some(512),
            send_committers: Some(8),
            send_commit_timeout: Some(2.5),
        }
    );
    assert_eq!(cli.global.profile, Some(PathBuf::from("/tmp/fanout.perf")));
}

#[test]
fn server_kind_and_target_parse() {
    let cli = parse(&[
        "connections",
        "--server",
        "child",
        "--streams",
        "500",
        "--echo-bin",
        "/opt/echo",
    ]);
    assert_eq!(cli.global.server, Some(ServerKind::Child));
    assert_eq!(cli.global.echo_bin, PathBuf::from("/opt/echo"));
    let cli = parse(&[
        "--target",
        "http://127.0.0.1:8080",
        "latency",
        "--rate",
        "10",
    ]);
    assert_eq!(cli.global.target.as_deref(), Some("http://127.0.0.1:8080"));
}

#[test]
fn unknown_scenarios_and_bad_numbers_are_refused() {
    assert!(Cli::try_parse_from(["echo-bench", "sauna"]).is_err());
    assert!(Cli::try_parse_from(["echo-bench", "latency", "--rate", "fast"]).is_err());
    assert!(Cli::try_parse_from(["echo-bench", "--backend", "mysql"]).is_err());
}

#[test]
fn all_runs_every_scenario_once() {
    let names: Vec<_> = Scenario::every().iter().map(Scenario::name).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "latency",
            "throughput",
            "fanout",
            "connections",
            "presence",
            "push"
        ]
    );
}
