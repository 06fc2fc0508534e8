//! Production mode: the secrets each target must hold (and must not), where they may come
//! from (values, `_FILE`s), and what startup refuses, naming the setting.

#![allow(clippy::result_large_err)] // figment::Jail closures must return figment::Error.

use super::*;

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
        // Auth and the edge neither serve nor call internal contracts...
        production_except_the_service_secret(jail, "auth,edge");
        assert!(Config::load(&cli(&["--target", "auth,edge"])).is_ok());
        // ...unless auth's admin API is pointed at the message service's internal port.
        jail.set_env("ECHO_ADMIN__MESSAGE_INTERNAL_URL", "http://message:9091");
        let error = load_error(&["--target", "auth"]);
        assert!(error.contains("needs service_secret"), "auth: {error}");
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
