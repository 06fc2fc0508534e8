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
        jail.set_env("ECHO_AUTH__OTP_SENDER", "https://otp.example/send");
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
        jail.set_env("ECHO_AUTH__OTP_SENDER", "https://otp.example/send");
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
        jail.set_env("ECHO_AUTH__OTP_SENDER", "https://otp.example/send");
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

/// Production on shared backends with everything auth needs, so only the service secret is
/// in question.
fn production_except_the_service_secret(jail: &mut figment::Jail) {
    jail.set_env("ECHO_DATABASE_URL", "postgres://postgres@127.0.0.1/echo");
    jail.set_env("ECHO_BUS_URL", "nats://127.0.0.1:4222");
    jail.set_env("ECHO_CACHE_URL", "redis://127.0.0.1:6379");
    jail.set_env(
        "ECHO_AUTH__JWT_SIGNING_KEY",
        "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
    );
    jail.set_env(
        "ECHO_AUTH__OTP_HMAC_KEY",
        "q8Z3xV0pL5mN2bC7kJ4hG9fD1sA6wE0r",
    );
    jail.set_env("ECHO_AUTH__OTP_SENDER", "https://otp.example/send");
}

fn load_error(args: &[&str]) -> String {
    Config::load(&cli(args))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn production_refuses_a_missing_or_weak_service_secret_where_internal_contracts_run() {
    figment::Jail::expect_with(|jail| {
        production_except_the_service_secret(jail);
        for target in ["all", "message", "presence", "notification"] {
            let error = load_error(&["--target", target]);
            assert!(error.contains("needs service_secret"), "{target}: {error}");
        }
        // Auth and the edge neither serve nor call internal contracts.
        assert!(Config::load(&cli(&["--target", "auth,edge"])).is_ok());
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
        production_except_the_service_secret(jail);
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
