//! Token formats per platform (spec §B1), and the URL rule for Web Push, UnifiedPush and
//! webhooks.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

use super::*;

const DEV: bool = false;
const PROD: bool = true;

fn ok(platform: Platform, token: &str) {
    assert!(
        parse_token(platform, token, PROD).is_ok(),
        "{platform:?} should accept {token:?}: {:?}",
        parse_token(platform, token, PROD)
    );
}

fn refused(platform: Platform, token: &str, production: bool) -> String {
    parse_token(platform, token, production)
        .expect_err(&format!("{platform:?} should refuse {token:?}"))
}

fn point() -> String {
    let mut bytes = vec![4u8];
    bytes.extend(1..=64u8);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn secret() -> String {
    URL_SAFE_NO_PAD.encode([7u8; 16])
}

fn subscription(endpoint: &str, p256dh: &str, auth: &str) -> String {
    format!(
        r#"{{"endpoint":"{endpoint}","expirationTime":null,"keys":{{"p256dh":"{p256dh}","auth":"{auth}"}}}}"#
    )
}

#[test]
fn every_platform_requires_a_token_of_at_most_4096_bytes() {
    for platform in Platform::ALL {
        assert_eq!(refused(platform, "", DEV), "is required");
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(refused(platform, &huge, DEV).contains("at most 4096 bytes"));
    }
}

#[test]
fn apns_tokens_are_64_to_200_lowercase_hex() {
    ok(Platform::Apns, &"ab".repeat(32));
    ok(Platform::Apns, &"0f".repeat(100));
    for bad in [
        "ab".repeat(31) + "a",           // 63
        "ab".repeat(100) + "a",          // 201
        "AB".repeat(32),                 // uppercase
        "ag".repeat(32),                 // not hex
        format!(" {}", "ab".repeat(32)), // space
    ] {
        assert!(
            refused(Platform::Apns, &bad, DEV).contains("lowercase hex"),
            "{bad}"
        );
    }
}

#[test]
fn fcm_tokens_are_letters_digits_and_three_marks() {
    ok(Platform::Fcm, "dXo1:APA91bH_x-Yz09");
    ok(Platform::Fcm, &"a".repeat(MAX_TOKEN_BYTES));
    for bad in ["with space", "slash/", "dot.", "é"] {
        assert!(refused(Platform::Fcm, bad, DEV).contains("FCM"), "{bad}");
    }
}

#[test]
fn web_push_subscriptions_are_checked_and_stored_canonically() {
    let token = subscription("https://push.example.com/send/abc", &point(), &secret());
    let stored = parse_token(Platform::WebPush, &token, PROD).unwrap();
    assert_eq!(
        stored,
        format!(
            r#"{{"endpoint":"https://push.example.com/send/abc","keys":{{"p256dh":"{}","auth":"{}"}}}}"#,
            point(),
            secret()
        )
    );
    // the same subscription with other spacing is the same token
    let spaced = token.replace(',', " ,\n ");
    assert_eq!(
        parse_token(Platform::WebPush, &spaced, PROD).unwrap(),
        stored
    );
    // padded base64url is accepted too
    let mut padded_point = vec![4u8];
    padded_point.extend([9u8; 64]);
    let padded = subscription(
        "https://push.example.com/x",
        &URL_SAFE.encode(padded_point),
        &URL_SAFE.encode([1u8; 16]),
    );
    ok(Platform::WebPush, &padded);
}

#[test]
fn web_push_refusals_name_the_part() {
    let (p, a) = (point(), secret());
    let cases = [
        ("not json".to_owned(), "PushSubscription as JSON"),
        (
            r#"{"endpoint":"https://x.example"}"#.to_owned(),
            "PushSubscription as JSON",
        ),
        (
            subscription("http://push.example.com/x", &p, &a),
            "endpoint must be an https:// URL",
        ),
        (
            subscription(
                &format!("https://push.example.com/{}", "x".repeat(1000)),
                &p,
                &a,
            ),
            "endpoint must be at most 1000 bytes",
        ),
        (
            subscription("https://push.example.com/x", "AAAA", &a),
            "keys.p256dh",
        ),
        (
            subscription(
                "https://push.example.com/x",
                &URL_SAFE_NO_PAD.encode([5u8; 65]),
                &a,
            ),
            "keys.p256dh",
        ),
        (
            subscription("https://push.example.com/x", "!!not base64!!", &a),
            "keys.p256dh",
        ),
        (
            subscription(
                "https://push.example.com/x",
                &p,
                &URL_SAFE_NO_PAD.encode([1u8; 15]),
            ),
            "keys.auth",
        ),
        (
            subscription("https://10.0.0.1/x", &p, &a),
            "endpoint must not point at a private",
        ),
    ];
    for (token, why) in cases {
        let error = refused(Platform::WebPush, &token, PROD);
        assert!(error.contains(why), "{token}: {error}");
    }
}

/// A UnifiedPush token is a Web Push subscription from a distributor: the same parse, the same
/// stored form, the same refusals (whether the endpoint is a UnifiedPush server is asked at
/// registration, not here).
#[test]
fn unifiedpush_tokens_are_web_push_subscriptions() {
    let token = subscription(
        "https://ntfy.example.net/upABC123?up=1",
        &point(),
        &secret(),
    );
    let stored = parse_token(Platform::UnifiedPush, &token, PROD).unwrap();
    assert_eq!(
        stored,
        parse_token(Platform::WebPush, &token, PROD).unwrap()
    );
    assert_eq!(suffix(Platform::UnifiedPush, &stored), "123?up=1");
    let (p, a) = (point(), secret());
    for (bad, why) in [
        (
            "https://ntfy.example.net/up".to_owned(),
            "PushSubscription as JSON",
        ),
        (
            subscription("http://ntfy.example.net/up", &p, &a),
            "endpoint must be an https:// URL",
        ),
        (
            subscription("https://192.168.1.20/up", &p, &a),
            "endpoint must not point at a private",
        ),
        (
            subscription("https://ntfy.example.net/up", "AAAA", &a),
            "keys.p256dh",
        ),
    ] {
        let error = refused(Platform::UnifiedPush, &bad, PROD);
        assert!(error.contains(why), "{bad}: {error}");
    }
    // a self-hosted distributor on the LAN is fine in development
    let lan = subscription("https://192.168.1.20/up", &p, &a);
    assert!(parse_token(Platform::UnifiedPush, &lan, DEV).is_ok());
}

#[test]
fn platform_names_are_the_protos_without_its_prefix() {
    for platform in Platform::ALL {
        assert_eq!(
            format!("PUSH_PLATFORM_{}", platform.name()),
            platform.proto().as_str_name()
        );
    }
    assert_eq!(Platform::UnifiedPush.name(), "UNIFIEDPUSH");
    assert_eq!(Platform::UnifiedPush.code(), 5);
}

#[test]
fn webhooks_are_https_without_user_info() {
    ok(Platform::Webhook, "https://hooks.example.com/echo?k=v");
    ok(Platform::Webhook, "https://hooks.example.com:8443/");
    for (bad, why) in [
        ("http://hooks.example.com/", "https://"),
        ("ftp://hooks.example.com/", "https://"),
        ("hooks.example.com/path", "https://"),
        ("/relative", "https://"),
        ("https://user:pass@hooks.example.com/", "user info"),
        ("https://user@hooks.example.com/", "user info"),
        ("https:// spaces.example.com/", "https://"),
        // percent-encoded hosts (`127.0.0.%31`) are refused by the URI grammar itself
        ("https://127.0.0.%31/", "https://"),
    ] {
        let error = refused(Platform::Webhook, bad, DEV);
        assert!(error.contains(why), "{bad}: {error}");
    }
}

#[test]
fn production_refuses_internal_addresses_development_allows_them() {
    let internal = [
        "https://127.0.0.1/",
        "https://127.0.0.1:9000/hook",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://localhost/",
        "https://LOCALHOST./",
        "https://api.localhost/",
        "https://[::1]/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://2130706433/",
        "https://127.1/",
        "https://0x7f.0.0.1/",
    ];
    for url in internal {
        let error = refused(Platform::Webhook, url, PROD);
        assert!(error.contains("private"), "{url}: {error}");
        assert!(
            parse_token(Platform::Webhook, url, DEV).is_ok(),
            "{url} in development"
        );
    }
    for url in [
        "https://8.8.8.8/",
        "https://[2001:4860::8888]/",
        "https://hooks.example.com/",
        "https://1password.example/",
    ] {
        assert!(parse_token(Platform::Webhook, url, PROD).is_ok(), "{url}");
    }
}

#[test]
fn suffixes_show_the_end_of_the_token_or_of_the_endpoint() {
    assert_eq!(suffix(Platform::Apns, &"ab".repeat(32)), "abababab");
    assert_eq!(suffix(Platform::Fcm, "short"), "short");
    let stored = parse_token(
        Platform::WebPush,
        &subscription(
            "https://push.example.com/send/XYZ12345",
            &point(),
            &secret(),
        ),
        DEV,
    )
    .unwrap();
    assert_eq!(suffix(Platform::WebPush, &stored), "XYZ12345");
}

#[test]
fn platforms_round_trip_through_proto_and_storage() {
    for platform in Platform::ALL {
        assert_eq!(
            Platform::from_proto(platform.proto() as i32),
            Some(platform)
        );
        assert_eq!(Platform::from_code(platform.code()), Some(platform));
    }
    assert_eq!(Platform::from_proto(0), None);
    assert_eq!(Platform::from_proto(99), None);
}
