//! RFC 8291 message encryption for Web Push: `aes128gcm` (RFC 8188) in one record, keyed by
//! ECDH on P-256 between a one-time sender key and the subscription's `p256dh`, mixed with the
//! subscription's `auth` secret through HKDF-SHA-256.
//!
//! Composed from RustCrypto crates (`p256` ECDH, `hkdf`, `aes-gcm`) because the `ece` crate
//! only builds against OpenSSL; the unit tests pin it to RFC 8291 Appendix A byte for byte.
//! [`decrypt`] is the user agent's side, for the fake push service and tests.

use aes_gcm::Aes128Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size announced in the header: the whole body fits one record of 4096 bytes.
pub const RECORD_SIZE: u32 = 4096;
/// salt (16) + rs (4) + idlen (1) + keyid (an uncompressed P-256 point, 65).
const HEADER_LEN: usize = 16 + 4 + 1 + 65;
const TAG_LEN: usize = 16;
/// The most plaintext one 4096-byte body carries (RFC 8291 §4: 3993 bytes).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - TAG_LEN - 1;

/// Why a message could not be encrypted or decrypted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EceError {
    /// `p256dh` (or the header's key id) is not a P-256 point.
    #[error("not a p-256 public key")]
    BadKey,
    /// `auth` is not 16 bytes.
    #[error("the auth secret is not 16 bytes")]
    BadAuth,
    /// More than [`MAX_PLAINTEXT`] bytes.
    #[error("plaintext over {MAX_PLAINTEXT} bytes")]
    TooLong,
    /// The body is not one aes128gcm record with a P-256 key id.
    #[error("malformed aes128gcm body: {0}")]
    Malformed(&'static str),
    /// The tag did not verify: wrong key, wrong auth secret or a tampered body.
    #[error("decryption failed")]
    Decrypt,
}

/// Encrypts `plaintext` for a subscription with a fresh sender key and salt, zero-padding the
/// record to at least `padded_len` plaintext bytes (capped at [`MAX_PLAINTEXT`]) so lengths
/// leak less.
pub fn encrypt(
    plaintext: &[u8],
    p256dh: &[u8],
    auth: &[u8],
    padded_len: usize,
) -> Result<Vec<u8>, EceError> {
    let salt: [u8; 16] = rand::random();
    encrypt_with(
        plaintext,
        p256dh,
        auth,
        &random_secret_key(),
        &salt,
        padded_len,
    )
}

/// [`encrypt`] with the sender key and salt given (the RFC's test vector fixes both).
pub(crate) fn encrypt_with(
    plaintext: &[u8],
    p256dh: &[u8],
    auth: &[u8],
    sender: &SecretKey,
    salt: &[u8; 16],
    padded_len: usize,
) -> Result<Vec<u8>, EceError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EceError::TooLong);
    }
    let receiver = PublicKey::from_sec1_bytes(p256dh).map_err(|_| EceError::BadKey)?;
    let receiver_point = receiver.to_encoded_point(false);
    let sender_point = sender.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), receiver.as_affine());
    let (cek, nonce) = derive(
        shared.raw_secret_bytes(),
        auth,
        receiver_point.as_bytes(),
        sender_point.as_bytes(),
        salt,
    )?;
    let padding = padded_len.clamp(plaintext.len(), MAX_PLAINTEXT) - plaintext.len();
    let mut record = Vec::with_capacity(plaintext.len() + 1 + padding);
    record.extend_from_slice(plaintext);
    record.push(0x02); // the last (and only) record's delimiter
    record.resize(record.len() + padding, 0);
    let cipher = Aes128Gcm::new(GenericArray::from_slice(&cek));
    let sealed = cipher
        .encrypt(GenericArray::from_slice(&nonce), record.as_slice())
        .map_err(|_| EceError::Decrypt)?;
    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(sender_point.as_bytes().len() as u8);
    body.extend_from_slice(sender_point.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Decrypts a body the way the browser does, with the subscription's private key and `auth`.
pub fn decrypt(body: &[u8], receiver: &SecretKey, auth: &[u8]) -> Result<Vec<u8>, EceError> {
    if body.len() < 21 {
        return Err(EceError::Malformed("shorter than its header"));
    }
    let salt: [u8; 16] = body[..16]
        .try_into()
        .map_err(|_| EceError::Malformed("salt"))?;
    let record_size = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let id_len = body[20] as usize;
    if id_len != 65 || body.len() < 21 + id_len + TAG_LEN + 1 {
        return Err(EceError::Malformed(
            "key id is not an uncompressed p-256 point",
        ));
    }
    let (key_id, sealed) = body[21..].split_at(id_len);
    if sealed.len() > record_size {
        return Err(EceError::Malformed("more than one record"));
    }
    let sender = PublicKey::from_sec1_bytes(key_id).map_err(|_| EceError::BadKey)?;
    let shared = p256::ecdh::diffie_hellman(receiver.to_nonzero_scalar(), sender.as_affine());
    let receiver_point = receiver.public_key().to_encoded_point(false);
    let (cek, nonce) = derive(
        shared.raw_secret_bytes(),
        auth,
        receiver_point.as_bytes(),
        key_id,
        &salt,
    )?;
    let cipher = Aes128Gcm::new(GenericArray::from_slice(&cek));
    let mut record = cipher
        .decrypt(GenericArray::from_slice(&nonce), sealed)
        .map_err(|_| EceError::Decrypt)?;
    while record.last() == Some(&0) {
        record.pop();
    }
    match record.pop() {
        Some(0x02) => Ok(record),
        _ => Err(EceError::Malformed("no last-record delimiter")),
    }
}

/// RFC 8291 §3.3–3.4 and RFC 8188 §2.2: the content-encryption key and nonce.
fn derive(
    ecdh_secret: &[u8],
    auth: &[u8],
    receiver_public: &[u8],
    sender_public: &[u8],
    salt: &[u8; 16],
) -> Result<([u8; 16], [u8; 12]), EceError> {
    if auth.len() != 16 {
        return Err(EceError::BadAuth);
    }
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(receiver_public);
    key_info.extend_from_slice(sender_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh_secret)
        .expand(&key_info, &mut ikm)
        .map_err(|_| EceError::BadKey)?;
    let content = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    content
        .expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| EceError::BadKey)?;
    content
        .expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| EceError::BadKey)?;
    Ok((cek, nonce))
}

/// A fresh P-256 private key from the thread's CSPRNG.
pub(crate) fn random_secret_key() -> SecretKey {
    loop {
        // A random 32-byte string is a valid scalar but with probability ~2^-32.
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::decode_base64url;

    // RFC 8291 Appendix A.
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn b(text: &str) -> Vec<u8> {
        decode_base64url(text).unwrap()
    }

    #[test]
    fn encrypts_rfc_8291_appendix_a_byte_for_byte() {
        let sender = SecretKey::from_slice(&b(AS_PRIVATE)).unwrap();
        assert_eq!(
            sender.public_key().to_encoded_point(false).as_bytes(),
            b(AS_PUBLIC)
        );
        let salt: [u8; 16] = b(SALT).try_into().unwrap();
        let body = encrypt_with(
            PLAINTEXT.as_bytes(),
            &b(UA_PUBLIC),
            &b(AUTH),
            &sender,
            &salt,
            0,
        )
        .unwrap();
        assert_eq!(body, b(BODY));
    }

    #[test]
    fn decrypts_rfc_8291_appendix_a() {
        let receiver = SecretKey::from_slice(&b(UA_PRIVATE)).unwrap();
        assert_eq!(
            decrypt(&b(BODY), &receiver, &b(AUTH)).unwrap(),
            PLAINTEXT.as_bytes()
        );
    }

    #[test]
    fn round_trips_with_padding_and_refuses_a_wrong_auth_or_tampering() {
        let receiver = random_secret_key();
        let p256dh = receiver.public_key().to_encoded_point(false);
        let auth: [u8; 16] = rand::random();
        let body = encrypt(b"{\"type\":\"alert\"}", p256dh.as_bytes(), &auth, 256).unwrap();
        assert_eq!(body.len(), HEADER_LEN + 256 + 1 + TAG_LEN);
        assert_eq!(
            decrypt(&body, &receiver, &auth).unwrap(),
            b"{\"type\":\"alert\"}"
        );
        assert_eq!(decrypt(&body, &receiver, &[0; 16]), Err(EceError::Decrypt));
        let mut tampered = body.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(decrypt(&tampered, &receiver, &auth), Err(EceError::Decrypt));
    }

    #[test]
    fn the_largest_plaintext_fills_exactly_4096_bytes() {
        let receiver = random_secret_key();
        let p256dh = receiver.public_key().to_encoded_point(false);
        let auth = [7u8; 16];
        let body = encrypt(&[b'x'; MAX_PLAINTEXT], p256dh.as_bytes(), &auth, 0).unwrap();
        assert_eq!(body.len(), 4096);
        let over = encrypt(&[b'x'; MAX_PLAINTEXT + 1], p256dh.as_bytes(), &auth, 0);
        assert_eq!(over, Err(EceError::TooLong));
    }
}
