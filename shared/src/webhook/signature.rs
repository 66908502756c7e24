//! `X-Nango-Hmac-Sha256`: lowercase hex of HMAC-SHA256(signing key, raw body).
//!
//! Compared in constant time against every configured key (several during a key rotation). The
//! legacy `X-Nango-Signature` (plain SHA-256 of key + body) is open to length extension and is
//! never accepted.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

pub const SIGNATURE_HEADER: &str = "x-nango-hmac-sha256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Nango-Hmac-Sha256 header is missing")]
    Missing,
    #[error("the X-Nango-Hmac-Sha256 header is not a hex SHA-256 digest")]
    Malformed,
    #[error("the signature matches none of the signing keys")]
    Mismatch,
}

/// Checks `signature` (the header's value, if any) against `body` under each of `keys`.
pub fn verify(
    signature: Option<&[u8]>,
    body: &[u8],
    keys: &[SecretString],
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let signature = std::str::from_utf8(signature).map_err(|_| SignatureError::Malformed)?;
    let expected = hex::decode(signature.trim()).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    // Every key is tried, whichever matches, so timing says nothing about which one did.
    let matched = keys.iter().fold(Choice::from(0), |matched, key| {
        matched | sign(key.expose_secret().as_bytes(), body).ct_eq(expected.as_slice())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector recorded from a running Nango server.
    const KEY: &str = "test-secret";
    const BODY: &str = r#"{"authMode":"OAUTH2","connectionId":"5b1c9a3e-2f4d-4c1a-9e7b-0d3f6a8b2c11","environment":"prod","error":{"description":"invalid_grant","type":"refresh_token_external_error"},"from":"nango","operation":"refresh","provider":"google-calendar","providerConfigKey":"google-calendar","success":false,"tags":{"end_user_id":"user_123"},"type":"auth"}"#;
    const SIGNATURE: &str = "7e462b965335e8e28b4277169ff160fd84807daa12013588327edc7e1f112dc7";

    fn keys(keys: &[&str]) -> Vec<SecretString> {
        keys.iter().map(|k| SecretString::from(*k)).collect()
    }

    #[test]
    fn nangos_test_vector_verifies() {
        assert_eq!(
            hex::encode(sign(KEY.as_bytes(), BODY.as_bytes())),
            SIGNATURE
        );
        assert_eq!(
            verify(Some(SIGNATURE.as_bytes()), BODY.as_bytes(), &keys(&[KEY])),
            Ok(())
        );
    }

    #[test]
    fn uppercase_hex_is_the_same_digest() {
        let upper = SIGNATURE.to_uppercase();
        assert_eq!(
            verify(Some(upper.as_bytes()), BODY.as_bytes(), &keys(&[KEY])),
            Ok(())
        );
    }

    #[test]
    fn tampered_body_is_refused() {
        let tampered = BODY.replace("user_123", "user_124");
        assert_eq!(
            verify(
                Some(SIGNATURE.as_bytes()),
                tampered.as_bytes(),
                &keys(&[KEY])
            ),
            Err(SignatureError::Mismatch)
        );
        let with_newline = format!("{BODY}\n");
        assert_eq!(
            verify(
                Some(SIGNATURE.as_bytes()),
                with_newline.as_bytes(),
                &keys(&[KEY])
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        assert_eq!(
            verify(
                Some(SIGNATURE.as_bytes()),
                BODY.as_bytes(),
                &keys(&["other-secret"])
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(SIGNATURE.as_bytes()), BODY.as_bytes(), &keys(&[])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn either_key_verifies_during_a_rotation() {
        let rotation = keys(&["new-secret", KEY]);
        assert_eq!(
            verify(Some(SIGNATURE.as_bytes()), BODY.as_bytes(), &rotation),
            Ok(())
        );
        let signed_with_new = hex::encode(sign(b"new-secret", BODY.as_bytes()));
        assert_eq!(
            verify(Some(signed_with_new.as_bytes()), BODY.as_bytes(), &rotation),
            Ok(())
        );
    }

    #[test]
    fn missing_or_malformed_header_is_refused() {
        assert_eq!(
            verify(None, BODY.as_bytes(), &keys(&[KEY])),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some(b"zz-not-hex"), BODY.as_bytes(), &keys(&[KEY])),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(
                Some(&SIGNATURE.as_bytes()[..40]),
                BODY.as_bytes(),
                &keys(&[KEY])
            ),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn legacy_sha256_signature_is_not_accepted_as_hmac() {
        use sha2::Digest;
        let legacy = hex::encode(Sha256::digest(format!("{KEY}{BODY}").as_bytes()));
        assert_eq!(
            verify(Some(legacy.as_bytes()), BODY.as_bytes(), &keys(&[KEY])),
            Err(SignatureError::Mismatch)
        );
    }
}
