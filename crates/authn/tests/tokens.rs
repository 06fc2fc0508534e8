//! Access tokens: what verifies, and every classic forgery that must not (DESIGN §5).
//! Forged tokens are assembled by hand so each test controls exactly one thing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use echo_authn::{AuthnError, Caller, KeySet, SigningKey, TokenIssuer, Verifier};
use echo_ids::UserId;
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

const ISSUER: &str = "echo-test";
const TTL: Duration = Duration::from_secs(900);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ids() -> (Uuid, Uuid, Uuid) {
    (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7())
}

fn verifier(keys: &KeySet) -> Verifier {
    Verifier::new(keys.public_keys(), ISSUER)
}

/// Claims as the issuer would write them, for tests to alter.
fn claims(exp: u64, iss: &str) -> Value {
    let (user, session, device) = ids();
    json!({
        "sub": user.to_string(), "sid": session.to_string(), "did": device.to_string(),
        "jti": Uuid::now_v7().to_string(), "iat": now(), "exp": exp, "iss": iss,
    })
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A compact JWS over `header` and `claims`, signed by `key` with Ed25519.
fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let dalek = ed25519_dalek::SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = dalek.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn eddsa_header(kid: &str) -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": kid})
}

fn assert_invalid(result: Result<Caller, AuthnError>, what: &str) {
    assert!(
        matches!(result, Err(AuthnError::TokenInvalid(_))),
        "{what}: expected TokenInvalid, got {result:?}"
    );
}

#[test]
fn issued_tokens_verify_to_their_caller() {
    let keys = KeySet::new(SigningKey::generate().unwrap());
    let issuer = TokenIssuer::new(keys.signing_key().unwrap(), ISSUER).unwrap();
    let (user, session, device) = ids();
    let (token, expires_at) = issuer.issue(user, session, device, TTL).unwrap();

    let caller = verifier(&keys).verify(&token).unwrap();
    assert_eq!(
        caller,
        Caller {
            user_id: user.into(),
            session_id: session.into(),
            device_id: device.into()
        }
    );
    let lifetime = expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(lifetime > TTL - Duration::from_secs(2) && lifetime <= TTL);

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(
        header.kid.as_deref(),
        Some(keys.signing_key().unwrap().kid())
    );
    let claims = verifier(&keys).verify_claims(&token).unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert!(Uuid::parse_str(&claims.jti).is_ok());
}

#[test]
fn expired_tokens_are_expired_not_invalid() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    let token = forge(&key, &eddsa_header(key.kid()), &claims(now() - 1, ISSUER));
    let result = verifier(&keys).verify(&token);
    assert!(
        matches!(result, Err(AuthnError::TokenExpired)),
        "{result:?}"
    );
}

#[test]
fn a_tampered_payload_is_invalid() {
    let keys = KeySet::new(SigningKey::generate().unwrap());
    let issuer = TokenIssuer::new(keys.signing_key().unwrap(), ISSUER).unwrap();
    let (user, session, device) = ids();
    let (token, _) = issuer.issue(user, session, device, TTL).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!(Uuid::now_v7().to_string());
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_invalid(verifier(&keys).verify(&tampered), "tampered payload");

    // Nor after the genuine token was verified (and remembered) by the same verifier: the
    // signature is the genuine one, the rest of the token is not.
    let verifier = verifier(&keys);
    assert_eq!(verifier.verify(&token).unwrap().user_id, UserId::from(user));
    assert_invalid(
        verifier.verify(&tampered),
        "tampered payload, genuine one remembered",
    );
    assert_eq!(verifier.verify(&token).unwrap().user_id, UserId::from(user));
}

#[test]
fn a_remembered_token_still_expires() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    let exp = now() + 1;
    let token = forge(&key, &eddsa_header(key.kid()), &claims(exp, ISSUER));
    let verifier = verifier(&keys);
    assert!(
        verifier.verify(&token).is_ok(),
        "good through the second of its exp"
    );
    assert!(verifier.verify(&token).is_ok(), "remembered");
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = verifier.verify(&token);
    assert!(
        matches!(result, Err(AuthnError::TokenExpired)),
        "a remembered token past its exp: {result:?}"
    );
}

#[test]
fn alg_none_is_invalid() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    let header = json!({"alg": "none", "typ": "JWT", "kid": key.kid()});
    let body = claims(now() + 600, ISSUER);
    for signature in ["", "AAAA"] {
        let token = format!("{}.{}.{signature}", b64(&header), b64(&body));
        assert_invalid(verifier(&keys).verify(&token), "alg none");
    }
}

#[test]
fn hs256_with_the_public_key_as_secret_is_invalid() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    let raw = URL_SAFE_NO_PAD.decode(key.public_key().jwk().x).unwrap();
    let pem = key.public_key().to_spki_pem().unwrap();
    for secret in [raw.as_slice(), pem.as_bytes()] {
        let token = jsonwebtoken::encode(
            &header,
            &claims(now() + 600, ISSUER),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_invalid(verifier(&keys).verify(&token), "hs256 with the public key");
    }
}

#[test]
fn another_key_claiming_a_known_kid_is_invalid() {
    let trusted = SigningKey::generate().unwrap();
    let attacker = SigningKey::generate().unwrap();
    let keys = KeySet::new(trusted.clone());
    let token = forge(
        &attacker,
        &eddsa_header(trusted.kid()),
        &claims(now() + 600, ISSUER),
    );
    assert_invalid(verifier(&keys).verify(&token), "known kid, other key");
}

#[test]
fn unknown_or_missing_kids_are_invalid() {
    let keys = KeySet::new(SigningKey::generate().unwrap());
    let stranger = SigningKey::generate().unwrap();
    let issuer = TokenIssuer::new(&stranger, ISSUER).unwrap();
    let (user, session, device) = ids();
    let (token, _) = issuer.issue(user, session, device, TTL).unwrap();
    assert_invalid(verifier(&keys).verify(&token), "unknown kid");

    let no_kid = forge(
        keys.signing_key().unwrap(),
        &json!({"alg": "EdDSA", "typ": "JWT"}),
        &claims(now() + 600, ISSUER),
    );
    assert_invalid(verifier(&keys).verify(&no_kid), "no kid");
}

#[test]
fn wrong_issuer_is_invalid() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    let token = forge(
        &key,
        &eddsa_header(key.kid()),
        &claims(now() + 600, "someone-else"),
    );
    assert_invalid(verifier(&keys).verify(&token), "wrong issuer");
}

#[test]
fn malformed_tokens_and_claims_are_invalid() {
    let key = SigningKey::generate().unwrap();
    let keys = KeySet::new(key.clone());
    for token in ["", "abc", "a.b.c", "a.b", "...."] {
        assert_invalid(verifier(&keys).verify(token), token);
    }
    let mut body = claims(now() + 600, ISSUER);
    body["sid"] = json!("not-a-uuid");
    let token = forge(&key, &eddsa_header(key.kid()), &body);
    assert_invalid(verifier(&keys).verify(&token), "sid not a uuid");
    let mut body = claims(now() + 600, ISSUER);
    body.as_object_mut().unwrap().remove("exp");
    let token = forge(&key, &eddsa_header(key.kid()), &body);
    assert_invalid(verifier(&keys).verify(&token), "no exp");
}

#[test]
fn rotation_accepts_old_and_new_tokens() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let (user, session, device) = ids();
    let (old_token, _) = TokenIssuer::new(&old, ISSUER)
        .unwrap()
        .issue(user, session, device, TTL)
        .unwrap();

    let rotated = KeySet::new(new.clone()).with_verifying(old.public_key().clone());
    let (new_token, _) = TokenIssuer::new(rotated.signing_key().unwrap(), ISSUER)
        .unwrap()
        .issue(user, session, device, TTL)
        .unwrap();
    let verifier = verifier(&rotated);
    assert_eq!(
        verifier.verify(&old_token).unwrap().user_id,
        UserId::from(user)
    );
    assert_eq!(
        verifier.verify(&new_token).unwrap().user_id,
        UserId::from(user)
    );
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some(new.kid())
    );

    // Once the old key is dropped from the set, its tokens stop verifying.
    let retired = KeySet::new(new);
    assert_invalid(
        Verifier::new(retired.public_keys(), ISSUER).verify(&old_token),
        "retired key",
    );
}

#[tokio::test]
async fn a_replaced_key_set_follows_a_rotation_and_an_unknown_kid_is_signalled() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let (user, session, device) = ids();
    let token = |key: &SigningKey| {
        TokenIssuer::new(key, ISSUER)
            .unwrap()
            .issue(user, session, device, TTL)
            .unwrap()
            .0
    };
    // A verifier holding public keys only (no signing key at all).
    let keys = KeySet::verify_only().with_verifying(old.public_key().clone());
    assert!(keys.signing_key().is_none());
    let verifier = std::sync::Arc::new(verifier(&keys));
    // The same token before and after the change: the verifier remembers it was valid.
    let old_token = token(&old);
    assert_eq!(
        verifier.verify(&old_token).unwrap().user_id,
        UserId::from(user)
    );

    // A token of a key the set lacks is refused and wakes whoever waits for unknown kids.
    let waiting = tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.unknown_kid().await }
    });
    tokio::task::yield_now().await;
    assert_invalid(verifier.verify(&token(&new)), "not yet known");
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the unknown kid was signalled")
        .unwrap();

    // After the set is replaced, the new key's tokens verify and the dropped key's do not.
    verifier.set_keys([new.public_key()]);
    assert_eq!(verifier.kids(), vec![new.kid().to_owned()]);
    assert_eq!(
        verifier.verify(&token(&new)).unwrap().user_id,
        UserId::from(user)
    );
    assert_invalid(
        verifier.verify(&old_token),
        "dropped key, token remembered before",
    );
}
