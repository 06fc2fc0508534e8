#![allow(clippy::result_large_err)] // figment::Jail closures must return figment::Error.

use clap::Parser;

use super::*;

mod production;

fn cli(args: &[&str]) -> Cli {
    Cli::parse_from(std::iter::once("echo").chain(args.iter().copied()))
}

#[test]
fn defaults_run_the_whole_mesh_embedded() {
    figment::Jail::expect_with(|_jail| {
        let config = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert!(config.target.is_whole_mesh());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url(), "sqlite://data/echo.db");
        assert!(!config.is_production());
        Ok(())
    });
}

#[test]
fn flags_beat_env_which_beats_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "echo.toml",
            "listen = \"127.0.0.1:1111\"\nlog_format = \"text\"",
        )?;
        jail.set_env("ECHO_LISTEN", "127.0.0.1:2222");
        jail.set_env("ECHO_UPSTREAMS__AUTH", "http://auth:8080");
        let from_env = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(from_env.listen.to_string(), "127.0.0.1:2222");
        assert_eq!(from_env.log_format, LogFormat::Text);
        assert_eq!(from_env.upstreams.auth.as_deref(), Some("http://auth:8080"));
        let from_flag =
            Config::load(&cli(&["--listen", "127.0.0.1:3333"])).map_err(|e| e.to_string())?;
        assert_eq!(from_flag.listen.to_string(), "127.0.0.1:3333");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    figment::Jail::expect_with(|jail| {
        // The test suite's own variables are not configuration and never stop the server.
        jail.set_env("ECHO_TEST_POSTGRES_URL", "postgres://elsewhere");
        jail.set_env("ECHO_REQUIRE_SERVICES", "1");
        assert!(Config::load(&cli(&[])).is_ok());
        jail.set_env("ECHO_LISTN", "127.0.0.1:1");
        let error = Config::load(&cli(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("listn"), "{error}");
        jail.set_env("ECHO_LISTN", "");
        jail.create_file("echo.toml", "lisen = \"127.0.0.1:1111\"")?;
        let error = Config::load(&cli(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("lisen"), "{error}");
        Ok(())
    });
}

#[test]
fn a_lone_target_refuses_the_in_process_bus_and_says_why() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("ECHO_DATABASE_URL", "postgres://postgres@127.0.0.1/echo");
        jail.set_env("ECHO_CACHE_URL", "redis://127.0.0.1:6379");
        let error = Config::load(&cli(&["--target", "auth"]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("in-process bus cannot carry events"),
            "{error}"
        );
        assert!(error.contains("ECHO_BUS_URL"), "{error}");
        jail.set_env("ECHO_BUS_URL", "nats://127.0.0.1:4222");
        let error = Config::load(&cli(&["--target", "auth"]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("jwt_signing_key"),
            "production needs keys: {error}"
        );
        jail.set_env(
            "ECHO_AUTH__JWT_SIGNING_KEY",
            "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
        );
        jail.set_env(
            "ECHO_AUTH__OTP_HMAC_KEY",
            "0123456789abcdef0123456789abcdef",
        );
        jail.set_env("ECHO_AUTH__OTP_SENDER", "http://otp.example/send");
        assert!(Config::load(&cli(&["--target", "auth"])).is_ok());
        Ok(())
    });
}

#[test]
fn targets_parse_and_print() {
    let targets: Targets = "message,auth,auth".parse().unwrap();
    assert_eq!(targets.to_string(), "auth,message");
    assert!("all".parse::<Targets>().unwrap().is_whole_mesh());
    assert!(
        "mesage"
            .parse::<Targets>()
            .unwrap_err()
            .contains("unknown target")
    );
}

#[test]
fn passwords_in_urls_are_redacted() {
    assert_eq!(
        redact_url("postgres://echo:s3cret@db:5432/echo"),
        "postgres://echo:***@db:5432/echo"
    );
    assert_eq!(
        redact_url("redis://127.0.0.1:6379"),
        "redis://127.0.0.1:6379"
    );
}

#[test]
fn the_internal_listen_address_is_layered_like_the_others() {
    figment::Jail::expect_with(|jail| {
        let config = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(config.internal_listen.to_string(), "127.0.0.1:9091");
        jail.set_env("ECHO_INTERNAL_LISTEN", "0.0.0.0:7001");
        let from_env = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(from_env.internal_listen.to_string(), "0.0.0.0:7001");
        let from_flag = Config::load(&cli(&["--internal-listen", "127.0.0.1:7002"]))
            .map_err(|e| e.to_string())?;
        assert_eq!(from_flag.internal_listen.to_string(), "127.0.0.1:7002");
        Ok(())
    });
}

#[test]
fn trusted_proxies_take_cidr_ranges_and_bare_addresses() {
    figment::Jail::expect_with(|jail| {
        let ranges = |config: &Config| -> Vec<String> {
            config
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let defaults = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(ranges(&defaults), ["127.0.0.1/32", "::1/128"]);
        jail.create_file(
            "echo.toml",
            r#"trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "fd00::/8", "2001:db8::1"]"#,
        )?;
        let from_file = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(
            ranges(&from_file),
            ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "2001:db8::1/128"]
        );
        assert!(
            from_file.trusted_proxies[0]
                .contains(&"10.200.3.4".parse::<std::net::IpAddr>().unwrap())
        );
        jail.set_env("ECHO_TRUSTED_PROXIES", "[10.0.0.0/8, ::1]");
        let list_env = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(ranges(&list_env), ["10.0.0.0/8", "::1/128"]);
        jail.set_env("ECHO_TRUSTED_PROXIES", "172.16.0.0/12,127.0.0.1");
        let comma_env = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(ranges(&comma_env), ["172.16.0.0/12", "127.0.0.1/32"]);
        jail.set_env("ECHO_TRUSTED_PROXIES", "[]");
        let none = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert!(none.trusted_proxies.is_empty());
        Ok(())
    });
}

#[test]
fn trusted_proxies_refuse_malformed_ranges_saying_which() {
    for (entry, expected) in [
        ("10.0.0.0/33", "is not a CIDR range"),
        ("fd00::/129", "is not a CIDR range"),
        ("10.0.0.0/", "is not a CIDR range"),
        ("proxy.internal", "is not an IP address or CIDR range"),
        ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.create_file("echo.toml", &format!("trusted_proxies = [\"{entry}\"]"))?;
            let error = Config::load(&cli(&[])).err().expect(entry).to_string();
            assert!(error.contains(entry), "{error}");
            assert!(error.contains(expected), "{error}");
            Ok(())
        });
    }
}

#[test]
fn notification_batches_are_bounded_by_what_one_statement_can_bind() {
    let mut settings = NotificationSettings::default();
    assert_eq!(settings.problem(), None);
    settings.dispatch_batch = 10_000;
    assert_eq!(settings.problem(), None);
    settings.dispatch_batch = 10_001;
    assert!(
        settings
            .problem()
            .is_some_and(|p| p.contains("dispatch_batch"))
    );
    settings.dispatch_batch = 128;
    settings.fanout_chunk = 10_001;
    assert!(
        settings
            .problem()
            .is_some_and(|p| p.contains("fanout_chunk"))
    );
}

// ---- public port (TLS, caps, timeouts) ----

#[test]
fn public_port_settings_come_from_the_file_and_env() {
    figment::Jail::expect_with(|jail| {
        let defaults = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert!(!defaults.public.has_tls());
        assert_eq!(defaults.public.max_connections, 10_000);
        assert_eq!(defaults.public.request_timeout, Duration::from_secs(30));
        jail.create_file(
            "echo.toml",
            "[public]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\nmax_connections = 5",
        )?;
        jail.set_env("ECHO_PUBLIC__IDLE_TIMEOUT", "0.5");
        jail.set_env("ECHO_PUBLIC__MAX_HEADER_BYTES", "9000");
        let config = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert!(config.public.has_tls());
        assert_eq!(config.public.max_connections, 5);
        assert_eq!(config.public.idle_timeout, Duration::from_millis(500));
        assert_eq!(config.public.max_header_bytes, 9000);
        jail.set_env("ECHO_PUBLIC__MAX_STREAMS", "5");
        let error = Config::load(&cli(&[]))
            .err()
            .expect("unknown key")
            .to_string();
        assert!(error.contains("max_streams"), "{error}");
        Ok(())
    });
}

#[test]
fn public_port_refuses_half_a_tls_pair_and_unworkable_caps() {
    let problem = |edit: fn(&mut PublicPortSettings)| {
        let mut settings = PublicPortSettings::default();
        edit(&mut settings);
        settings.problem().unwrap_or_default()
    };
    assert_eq!(PublicPortSettings::default().problem(), None);
    assert!(problem(|s| s.tls_cert_file = Some("cert.pem".into())).contains("go together"));
    assert!(problem(|s| s.tls_key_file = Some("key.pem".into())).contains("go together"));
    assert!(problem(|s| s.max_connections = 0).contains("max_connections"));
    assert!(problem(|s| s.max_concurrent_streams = 0).contains("max_concurrent_streams"));
    assert!(problem(|s| s.max_header_bytes = 8191).contains("max_header_bytes"));
    assert!(problem(|s| s.handshake_timeout = Duration::ZERO).contains("handshake_timeout"));
    assert!(problem(|s| s.idle_timeout = Duration::ZERO).contains("idle_timeout"));
    assert!(problem(|s| s.request_timeout = Duration::ZERO).contains("request_timeout"));
    figment::Jail::expect_with(|jail| {
        jail.set_env("ECHO_PUBLIC__TLS_KEY_FILE", "key.pem");
        let error = Config::load(&cli(&[]))
            .err()
            .expect("half a pair")
            .to_string();
        assert!(error.contains("public.tls_cert_file"), "{error}");
        Ok(())
    });
}

#[test]
fn edge_settings_come_from_the_environment_and_a_bucket_below_its_rate_is_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("ECHO_EDGE__IP_CALLS_PER_SECOND", "30");
        jail.set_env("ECHO_EDGE__IP_BURST", "60");
        jail.set_env("ECHO_EDGE__USER_STREAMS", "4");
        jail.set_env("ECHO_EDGE__RESOLVE_EVERY", "2.5");
        let config = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        assert_eq!(
            (config.edge.ip_calls_per_second, config.edge.ip_burst),
            (30, 60)
        );
        assert_eq!(config.edge.user_streams, 4);
        assert_eq!(config.edge.resolve_every, Duration::from_millis(2500));

        jail.set_env("ECHO_EDGE__USER_CALLS_PER_SECOND", "10");
        jail.set_env("ECHO_EDGE__USER_BURST", "5");
        let error = Config::load(&cli(&[])).err().expect("burst below rate");
        assert!(error.to_string().contains("edge.user_burst"), "{error}");

        jail.set_env("ECHO_EDGE__USER_BURST", "10");
        jail.set_env("ECHO_EDGE__DOWN_FOR", "0");
        let error = Config::load(&cli(&[])).err().expect("no back-off");
        assert!(error.to_string().contains("edge.down_for"), "{error}");
        Ok(())
    });
    // Off is allowed: 0 with any burst.
    let off = EdgeSettings {
        ip_calls_per_second: 0,
        ip_burst: 0,
        user_calls_per_second: 0,
        user_burst: 0,
        user_streams: 0,
        ..EdgeSettings::default()
    };
    assert_eq!(off.problem(), None);
}
