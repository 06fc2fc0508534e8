#![allow(clippy::result_large_err)] // figment::Jail closures must return figment::Error.

use clap::Parser;

use super::*;

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
fn production_refuses_weak_or_default_secrets() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("ECHO_ENV", "production");
        jail.set_env(
            "ECHO_AUTH__JWT_SIGNING_KEY",
            "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
        );
        jail.set_env("ECHO_AUTH__OTP_SENDER", "http://otp.example/send");
        for weak in [
            "short",
            "changeme-changeme-changeme-changeme",
            &"a".repeat(40),
        ] {
            jail.set_env("ECHO_AUTH__OTP_HMAC_KEY", weak);
            let error = Config::load(&cli(&[]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("weak auth.otp_hmac_key"), "{weak}: {error}");
        }
        jail.set_env(
            "ECHO_AUTH__OTP_HMAC_KEY",
            "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r",
        );
        jail.set_env("ECHO_AUTH__OTP_SENDER", "log");
        let error = Config::load(&cli(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("otp_sender = log"), "{error}");
        jail.set_env("ECHO_AUTH__OTP_SENDER", "http://otp.example/send");
        jail.set_env("ECHO_SERVICE_SECRET", "Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT");
        let config = Config::load(&cli(&[])).map_err(|e| e.to_string())?;
        let shown = config.redacted().to_string();
        assert!(
            !shown.contains("q8Z3xV0p") && !shown.contains("BEGIN PRIVATE"),
            "{shown}"
        );
        assert!(!shown.contains("Zr8wQ2nV"), "{shown}");
        Ok(())
    });
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

/// Production on shared backends with everything each target needs (auth's secrets when
/// `target` runs auth, a public key otherwise), so only the service secret is in question.
fn production_except_the_service_secret(jail: &mut figment::Jail, target: &str) {
    production_backends(jail);
    if target == "all" || target.contains("auth") {
        auth_secrets(jail);
    } else {
        jail.set_env("ECHO_AUTH__JWT_PUBLIC_KEYS", PUBLIC_PEM);
    }
}

/// Shared backends, so production mode.
fn production_backends(jail: &mut figment::Jail) {
    jail.set_env("ECHO_DATABASE_URL", "postgres://postgres@127.0.0.1/echo");
    jail.set_env("ECHO_BUS_URL", "nats://127.0.0.1:4222");
    jail.set_env("ECHO_CACHE_URL", "redis://127.0.0.1:6379");
}

/// What the auth target needs in production.
fn auth_secrets(jail: &mut figment::Jail) {
    jail.set_env("ECHO_AUTH__JWT_SIGNING_KEY", PRIVATE_PEM);
    jail.set_env(
        "ECHO_AUTH__OTP_HMAC_KEY",
        "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r",
    );
    jail.set_env("ECHO_AUTH__OTP_SENDER", "http://otp.example/send");
}

/// Shaped like the keys (configuration checks the shape; the binary parses them).
const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----";
const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----";

fn load_error(args: &[&str]) -> String {
    Config::load(&cli(args))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn production_refuses_a_missing_or_weak_service_secret_where_internal_contracts_run() {
    figment::Jail::expect_with(|jail| {
        for target in ["all", "message", "presence", "notification"] {
            production_except_the_service_secret(jail, target);
            let error = load_error(&["--target", target]);
            assert!(error.contains("needs service_secret"), "{target}: {error}");
            jail.clear_env();
        }
        // Auth and the edge neither serve nor call internal contracts.
        production_except_the_service_secret(jail, "auth,edge");
        assert!(Config::load(&cli(&["--target", "auth,edge"])).is_ok());
        jail.clear_env();
        production_except_the_service_secret(jail, "presence");
        for weak in [
            "short",
            "development-development-development",
            &"s".repeat(40),
        ] {
            jail.set_env("ECHO_SERVICE_SECRET", weak);
            let error = load_error(&["--target", "presence"]);
            assert!(error.contains("weak service_secret"), "{weak}: {error}");
        }
        jail.set_env("ECHO_SERVICE_SECRET", "Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT");
        assert!(Config::load(&cli(&["--target", "presence"])).is_ok());
        Ok(())
    });
}

#[test]
fn the_service_secret_can_come_from_a_file_but_not_from_both() {
    figment::Jail::expect_with(|jail| {
        production_except_the_service_secret(jail, "presence");
        jail.set_env("ECHO_SERVICE_SECRET_FILE", "missing-file");
        let error = load_error(&["--target", "presence"]);
        assert!(error.contains("missing-file"), "{error}");

        jail.create_file("service-secret", "Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT\n")?;
        jail.set_env("ECHO_SERVICE_SECRET_FILE", "service-secret");
        let config = Config::load(&cli(&["--target", "presence"])).map_err(|e| e.to_string())?;
        assert_eq!(
            config.service_secret.as_deref(),
            Some("Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT")
        );
        let shown = config.redacted().to_string();
        assert!(!shown.contains("Zr8wQ2nV"), "{shown}");

        jail.set_env("ECHO_SERVICE_SECRET", "Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT");
        let error = load_error(&["--target", "presence"]);
        assert!(error.contains("both set"), "{error}");
        Ok(())
    });
}

#[test]
fn production_auth_refuses_each_missing_or_wrong_secret() {
    figment::Jail::expect_with(|jail| {
        production_backends(jail);
        let auth = ["--target", "auth"];
        let cases: [(&str, Option<&str>, &str); 5] = [
            (
                "ECHO_AUTH__JWT_SIGNING_KEY",
                None,
                "needs auth.jwt_signing_key",
            ),
            (
                "ECHO_AUTH__JWT_SIGNING_KEY",
                Some(PUBLIC_PEM),
                "PKCS#8 PEM Ed25519 private key",
            ),
            ("ECHO_AUTH__OTP_HMAC_KEY", None, "needs auth.otp_hmac_key"),
            ("ECHO_AUTH__OTP_SENDER", Some("log"), "otp_sender = log"),
            (
                "ECHO_AUTH__OTP_SENDER",
                Some("https://gateway:s3cret@sms.example/otp"),
                "http:// webhook URL",
            ),
        ];
        for (variable, value, expected) in cases {
            jail.clear_env();
            production_backends(jail);
            auth_secrets(jail);
            match value {
                Some(value) => jail.set_env(variable, value),
                None => unset(jail, variable),
            }
            let error = load_error(&auth);
            assert!(error.contains(expected), "{variable}={value:?}: {error}");
            assert!(
                !error.contains("s3cret"),
                "the webhook password is not shown: {error}"
            );
        }
        jail.clear_env();
        production_backends(jail);
        auth_secrets(jail);
        let config = Config::load(&cli(&auth)).map_err(|e| e.to_string())?;
        assert!(config.is_production());
        Ok(())
    });
}

/// Remove `variable` from the jail's environment: clear it and set the rest again (the jail
/// only sets and clears; an empty value would still be a value).
fn unset(jail: &mut figment::Jail, variable: &str) {
    let rest: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("ECHO_") && name != variable)
        .collect();
    jail.clear_env();
    for (name, value) in rest {
        jail.set_env(name, value);
    }
}

#[test]
fn production_verifiers_need_a_public_key_and_refuse_auths_secrets() {
    figment::Jail::expect_with(|jail| {
        for target in [
            "user",
            "message",
            "presence",
            "notification",
            "edge",
            "user,edge",
        ] {
            jail.clear_env();
            production_backends(jail);
            jail.set_env("ECHO_SERVICE_SECRET", "Zr8wQ2nV5cX1mB7kL4jH9gF3dS6aP0eT");
            let args = ["--target", target];
            let error = load_error(&args);
            assert!(
                error.contains("needs a public key to verify access tokens")
                    && error.contains("ECHO_AUTH__JWT_PUBLIC_KEYS")
                    && error.contains("ECHO_UPSTREAMS__AUTH"),
                "{target}: {error}"
            );
            // Configured public keys are enough (one PEM string in the variable).
            jail.set_env("ECHO_AUTH__JWT_PUBLIC_KEYS", PUBLIC_PEM);
            let config = Config::load(&cli(&args)).map_err(|e| format!("{target}: {e}"))?;
            assert_eq!(config.auth.jwt_public_keys.len(), 1);
            // So is auth's address, where the keys are fetched from...
            unset(jail, "ECHO_AUTH__JWT_PUBLIC_KEYS");
            jail.set_env("ECHO_UPSTREAMS__AUTH", "http://auth:8080");
            assert!(Config::load(&cli(&args)).is_ok(), "{target}");
            // ...unless fetching is switched off.
            jail.set_env("ECHO_AUTH__FETCH_SIGNING_KEYS", "false");
            let error = load_error(&args);
            assert!(error.contains("needs a public key"), "{target}: {error}");
            jail.set_env("ECHO_AUTH__JWT_PUBLIC_KEYS", PUBLIC_PEM);
            assert!(Config::load(&cli(&args)).is_ok(), "{target}");
            // Auth's secrets have no business here.
            for (variable, value) in [
                ("ECHO_AUTH__JWT_SIGNING_KEY", PRIVATE_PEM),
                (
                    "ECHO_AUTH__OTP_HMAC_KEY",
                    "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r",
                ),
            ] {
                jail.set_env(variable, value);
                let error = load_error(&args);
                assert!(
                    error.contains("only the auth target holds them"),
                    "{target} with {variable}: {error}"
                );
                unset(jail, variable);
            }
        }
        Ok(())
    });
}

#[test]
fn migrate_needs_no_auth_secrets_or_service_secret() {
    figment::Jail::expect_with(|jail| {
        production_backends(jail);
        jail.set_env("ECHO_ENV", "production");
        let config = Config::load(&cli(&["migrate"])).map_err(|e| e.to_string())?;
        assert!(config.is_production() && config.target.is_whole_mesh());
        // Serving the same configuration is refused.
        assert!(load_error(&[]).contains("jwt_signing_key"));
        Ok(())
    });
}

#[test]
fn auth_secrets_can_come_from_files_but_not_from_both_and_are_never_shown() {
    figment::Jail::expect_with(|jail| {
        production_backends(jail);
        jail.set_env(
            "ECHO_AUTH__OTP_SENDER",
            "http://gateway:s3cret@sms.example/otp",
        );
        jail.create_file("signing.pem", &format!("{PRIVATE_PEM}\n"))?;
        jail.create_file("otp-hmac", "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r\n")?;
        jail.set_env("ECHO_AUTH__JWT_SIGNING_KEY_FILE", "signing.pem");
        jail.set_env("ECHO_AUTH__OTP_HMAC_KEY_FILE", "otp-hmac");
        let config = Config::load(&cli(&["--target", "auth"])).map_err(|e| e.to_string())?;
        assert_eq!(config.auth.jwt_signing_key.as_deref(), Some(PRIVATE_PEM));
        assert_eq!(
            config.auth.otp_hmac_key.as_deref(),
            Some("q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r")
        );
        let shown = config.redacted().to_string();
        for secret in ["PRIVATE KEY", "q8Z3xV0p", "s3cret"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        assert!(shown.contains("signing.pem"), "the path is shown: {shown}");

        jail.set_env(
            "ECHO_AUTH__OTP_HMAC_KEY",
            "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r",
        );
        let error = load_error(&["--target", "auth"]);
        assert!(
            error.contains("auth.otp_hmac_key and auth.otp_hmac_key_file are both set"),
            "{error}"
        );
        unset(jail, "ECHO_AUTH__OTP_HMAC_KEY");
        jail.set_env("ECHO_AUTH__JWT_SIGNING_KEY_FILE", "missing.pem");
        let error = load_error(&["--target", "auth"]);
        assert!(
            error.contains("jwt_signing_key_file missing.pem"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn public_keys_come_from_a_file_of_pem_blocks_and_never_as_private_keys() {
    figment::Jail::expect_with(|jail| {
        production_backends(jail);
        let second = PUBLIC_PEM.replace("MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEB");
        jail.create_file(
            "keys.pem",
            &format!("# current\n{PUBLIC_PEM}\n# next\n{second}\n"),
        )?;
        jail.set_env("ECHO_AUTH__JWT_PUBLIC_KEYS_FILE", "keys.pem");
        let config = Config::load(&cli(&["--target", "edge"])).map_err(|e| e.to_string())?;
        assert_eq!(
            config.auth.jwt_public_keys,
            vec![format!("{PUBLIC_PEM}\n"), format!("{second}\n")]
        );
        jail.set_env("ECHO_AUTH__JWT_PUBLIC_KEYS", PUBLIC_PEM);
        assert!(load_error(&["--target", "edge"]).contains("both set"));
        unset(jail, "ECHO_AUTH__JWT_PUBLIC_KEYS");
        jail.create_file("keys.pem", PRIVATE_PEM)?;
        let error = load_error(&["--target", "edge"]);
        assert!(error.contains("SPKI PEM public keys only"), "{error}");
        jail.create_file("keys.pem", "")?;
        assert!(load_error(&["--target", "edge"]).contains("SPKI PEM public keys only"));

        // A private key given as a public one is refused in every mode, with the way out.
        jail.clear_env();
        jail.set_env("ECHO_AUTH__JWT_PREVIOUS_PUBLIC_KEYS", PRIVATE_PEM);
        let error = load_error(&[]);
        assert!(
            error.contains("auth.jwt_previous_public_keys[0] is a private key")
                && error.contains("-pubout"),
            "{error}"
        );
        jail.set_env("ECHO_AUTH__JWT_PREVIOUS_PUBLIC_KEYS", "not a key");
        assert!(load_error(&[]).contains("is not an SPKI PEM public key"));
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
