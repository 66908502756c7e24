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
    /// It matches none of the keys held, and those may predate a rotation: they were not read
    /// again for this request (read moments ago for another one, or the secret could not be
    /// read). Worth a retry, unlike [`SignatureError::Mismatch`].
    #[error("the signature matches none of the signing keys held, which may be out of date")]
    KeysMayBeStale,
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

/// Fuzz targets (see [`crate::fuzzing`]): header bytes × body × keys.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, nasty_string};

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..1024)
    }

    /// One to four keys (a rotation), of any text.
    fn keys() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(nasty_string(80), 1..5)
    }

    fn secrets(keys: &[String]) -> Vec<SecretString> {
        keys.iter()
            .map(|k| SecretString::from(k.as_str()))
            .collect()
    }

    #[test]
    fn a_valid_signature_verifies_and_any_changed_byte_of_the_body_does_not() {
        fuzz(
            "webhook::signature::verify (valid, body byte changed)",
            (
                keys(),
                any::<prop::sample::Index>(),
                body(),
                any::<prop::sample::Index>(),
                1..=255u8,
                any::<bool>(),
            ),
            |(keys, signer, body, at, flip, upper)| {
                let key = signer.get(&keys);
                let mut header = hex::encode(sign(key.as_bytes(), &body));
                if upper {
                    header.make_ascii_uppercase();
                }
                let held = secrets(&keys);
                prop_assert_eq!(verify(Some(header.as_bytes()), &body, &held), Ok(()));
                // Surrounding whitespace (a proxy's folding) is the same header.
                let padded = format!(" {header}\t");
                prop_assert_eq!(verify(Some(padded.as_bytes()), &body, &held), Ok(()));
                if !body.is_empty() {
                    let mut tampered = body.clone();
                    tampered[at.index(body.len())] ^= flip;
                    prop_assert_eq!(
                        verify(Some(header.as_bytes()), &tampered, &held),
                        Err(SignatureError::Mismatch)
                    );
                }
                // Longer or shorter by one byte.
                let mut longer = body.clone();
                longer.push(flip);
                prop_assert_eq!(
                    verify(Some(header.as_bytes()), &longer, &held),
                    Err(SignatureError::Mismatch)
                );
                Ok(())
            },
        );
    }

    /// Any one byte of the header replaced: it verifies only if it still spells the same digest
    /// (a hex letter changed case), else it is refused as malformed or as a mismatch.
    #[test]
    fn a_changed_byte_of_the_signature_never_verifies() {
        fuzz(
            "webhook::signature::verify (signature byte changed)",
            (keys(), body(), 0..64usize, any::<u8>()),
            |(keys, body, at, byte)| {
                let digest = sign(keys[0].as_bytes(), &body);
                let mut header = hex::encode(digest).into_bytes();
                header[at] = byte;
                let outcome = verify(Some(&header), &body, &secrets(&keys));
                let spelled = std::str::from_utf8(&header)
                    .ok()
                    .and_then(|h| hex::decode(h.trim()).ok());
                match spelled {
                    Some(bytes) if bytes == digest => prop_assert_eq!(outcome, Ok(())),
                    Some(bytes) if bytes.len() == 32 => {
                        prop_assert_eq!(outcome, Err(SignatureError::Mismatch))
                    }
                    _ => prop_assert_eq!(outcome, Err(SignatureError::Malformed)),
                }
                Ok(())
            },
        );
    }

    /// Any header bytes (or none), any body, any keys: the answer is exactly what the rule says.
    #[test]
    fn any_header_gets_the_answer_the_rule_gives() {
        let header = prop_oneof![
            1 => Just(None),
            2 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Some),
            2 => "[0-9a-fA-F ]{60,68}".prop_map(|h| Some(h.into_bytes())),
        ];
        fuzz(
            "webhook::signature::verify (any header)",
            (
                header,
                body(),
                prop::collection::vec(nasty_string(40), 0..4),
            ),
            |(header, body, keys)| {
                let outcome = verify(header.as_deref(), &body, &secrets(&keys));
                let expected = match &header {
                    None => Err(SignatureError::Missing),
                    Some(header) => match std::str::from_utf8(header)
                        .ok()
                        .and_then(|h| hex::decode(h.trim()).ok())
                        .filter(|d| d.len() == 32)
                    {
                        None => Err(SignatureError::Malformed),
                        Some(digest)
                            if keys
                                .iter()
                                .any(|k| sign(k.as_bytes(), &body)[..] == digest[..]) =>
                        {
                            Ok(())
                        }
                        Some(_) => Err(SignatureError::Mismatch),
                    },
                };
                prop_assert_eq!(outcome, expected);
                Ok(())
            },
        );
    }

    /// A signature made with a key we do not hold (retired, or the attacker's) never verifies.
    #[test]
    fn a_key_not_held_never_verifies() {
        fuzz(
            "webhook::signature::verify (key not held)",
            (keys(), nasty_string(80), body()),
            |(held, other, body)| {
                prop_assume!(!held.contains(&other));
                let header = hex::encode(sign(other.as_bytes(), &body));
                prop_assert_eq!(
                    verify(Some(header.as_bytes()), &body, &secrets(&held)),
                    Err(SignatureError::Mismatch)
                );
                Ok(())
            },
        );
    }
}
