//! Who is calling: the claims API Gateway's JWT authorizer verified, and nothing else.
//!
//! Never reads the body, the query or a header: only `requestContext.authorizer.jwt.claims` of the
//! HTTP API (payload v2.0) event, which the caller cannot forge past the authorizer.
//!
//! API Gateway hands every claim over as a string, whatever its JSON type was: a claim the identity
//! provider emitted as `null`, an array or an object arrives as `"null"`, `"[a b]"` or `"{...}"`, and
//! a badly written IdP template emits `"undefined"` or `""`. None of those names anyone: taken as an
//! organization id, every user whose token says `"org_id": null` would share the organization
//! `"null"`. So the owner ids ([`EndUserId`], [`OrganizationId`]) have one validating constructor,
//! used for claims and for the owner tags of webhooks and Nango's listings alike.

use std::collections::HashMap;
use std::fmt;

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::config::ClaimNames;
use crate::nango::tags::{self, Tags};

/// Why a text is not an owner id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Blank, a placeholder (`null`, `undefined`, ...) or a serialized JSON array or object.
    #[error("names nobody (blank, a placeholder or a JSON value)")]
    NotAnId,
    /// Something, but not a value we can store faithfully as a Nango tag and an index key.
    #[error("is not a valid tag value (1 to 255 UTF-16 units, no control characters)")]
    Invalid,
}

/// What IdP templates and serializers write where a value is missing. Compared without case.
const PLACEHOLDERS: [&str; 7] = ["null", "undefined", "none", "nil", "nan", "true", "false"];

/// The one rule for owner ids: trimmed, not a placeholder, not structured, a valid tag value.
fn owner_id(raw: &str) -> Result<&str, IdError> {
    let value = raw.trim();
    let structured = (value.starts_with('[') && value.ends_with(']'))
        || (value.starts_with('{') && value.ends_with('}'));
    if value.is_empty()
        || structured
        || PLACEHOLDERS
            .iter()
            .any(|placeholder| value.eq_ignore_ascii_case(placeholder))
    {
        return Err(IdError::NotAnId);
    }
    if !tags::is_valid_value(value) || value.chars().any(char::is_control) {
        return Err(IdError::Invalid);
    }
    Ok(value)
}

macro_rules! owner_id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                owner_id(raw).map(|value| $name(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Read-only: the only way to make one is [`parse`](Self::parse).
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

owner_id_type!(
    /// The id of an end user of the app, as the identity provider names them.
    EndUserId
);
owner_id_type!(
    /// The id of an end user's organization (tenant, workspace, team) in the app.
    OrganizationId
);

#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub end_user_id: EndUserId,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub organization_id: Option<OrganizationId>,
}

/// Ids only: whether there is an email or a display name, never what it is (a `Debug` can reach a
/// log line).
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted =
            |value: &Option<String>| value.as_ref().map(|_| crate::nango::tags::Redacted);
        f.debug_struct("Identity")
            .field("end_user_id", &self.end_user_id)
            .field("email", &redacted(&self.email))
            .field("display_name", &redacted(&self.display_name))
            .field("organization_id", &self.organization_id)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the request carries no verified JWT claims")]
    NoClaims,
    #[error("the verified claims have no end user id")]
    NoEndUserId,
    #[error("the claim {0} is not a usable identifier")]
    Unusable(&'static str),
}

impl Identity {
    pub fn from_request(request: &Request, names: &ClaimNames) -> Result<Self, IdentityError> {
        let claims = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref())
                .map(|jwt| &jwt.claims),
            _ => None,
        };
        match claims {
            Some(claims) if !claims.is_empty() => Identity::from_claims(claims, names),
            _ => Err(IdentityError::NoClaims),
        }
    }

    /// The owner ids become tag values and index keys, so an id we cannot store faithfully is
    /// refused, not cut; one that names nobody is no end user (refused) or no organization. Email
    /// and name are only labels: a malformed email is dropped, a long name shortened.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        names: &ClaimNames,
    ) -> Result<Self, IdentityError> {
        let claim = |name: &str| claims.get(name).map(String::as_str);
        let end_user_id = match claim(&names.end_user_id).map(EndUserId::parse) {
            Some(Ok(id)) => id,
            None | Some(Err(IdError::NotAnId)) => return Err(IdentityError::NoEndUserId),
            Some(Err(IdError::Invalid)) => return Err(IdentityError::Unusable("end user id")),
        };
        let organization_id = match claim(&names.organization_id).map(OrganizationId::parse) {
            Some(Ok(id)) => Some(id),
            None | Some(Err(IdError::NotAnId)) => None,
            Some(Err(IdError::Invalid)) => return Err(IdentityError::Unusable("organization id")),
        };
        Ok(Identity {
            end_user_id,
            email: claim(&names.end_user_email)
                .map(str::trim)
                .filter(|email| tags::is_valid_email(email))
                .map(str::to_owned),
            display_name: claim(&names.end_user_name)
                .map(str::trim)
                .filter(|name| !matches!(owner_id(name), Err(IdError::NotAnId)))
                .map(|name| tags::truncate_value(name).to_owned()),
            organization_id,
        })
    }

    /// The tags a new connection of this caller gets, so the auth webhook names its owner.
    pub fn tags(&self) -> Tags {
        let mut tags = Tags::new();
        tags.insert(tags::END_USER_ID, self.end_user_id.as_str());
        if let Some(email) = &self.email {
            tags.insert(tags::END_USER_EMAIL, email);
        }
        if let Some(name) = &self.display_name {
            tags.insert(tags::END_USER_DISPLAY_NAME, name);
        }
        if let Some(organization_id) = &self.organization_id {
            tags.insert(tags::ORGANIZATION_ID, organization_id.as_str());
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn debug_names_ids_only() {
        let identity = Identity::from_claims(
            &claims(&[
                ("sub", "user-42"),
                ("email", "alice@example.com"),
                ("name", "Alice Example"),
                ("org_id", "org-7"),
            ]),
            &ClaimNames::default(),
        )
        .unwrap();
        let debug = format!("{identity:?}");
        assert!(
            debug.contains("user-42") && debug.contains("org-7"),
            "{debug}"
        );
        assert!(
            !debug.contains("alice@") && !debug.contains("Alice"),
            "{debug}"
        );
        assert!(debug.contains("email: Some(<redacted>)"), "{debug}");
    }

    #[test]
    fn full_claims_become_all_four_tags() {
        let identity = Identity::from_claims(
            &claims(&[
                ("sub", "user-42"),
                ("email", "alice@example.com"),
                ("name", "Alice Example"),
                ("org_id", "org-7"),
                ("iss", "https://issuer.example.com"),
            ]),
            &ClaimNames::default(),
        )
        .unwrap();
        let tags: Vec<_> = identity
            .tags()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            tags,
            [
                (
                    "end_user_display_name".to_owned(),
                    "Alice Example".to_owned()
                ),
                ("end_user_email".to_owned(), "alice@example.com".to_owned()),
                ("end_user_id".to_owned(), "user-42".to_owned()),
                ("organization_id".to_owned(), "org-7".to_owned()),
            ]
        );
    }

    #[test]
    fn only_present_claims_become_tags() {
        let identity =
            Identity::from_claims(&claims(&[("sub", "user-42")]), &ClaimNames::default()).unwrap();
        let tags = identity.tags();
        assert_eq!(tags.iter().count(), 1);
        assert_eq!(tags.get("end_user_id"), Some("user-42"));
    }

    #[test]
    fn invalid_email_claim_is_left_out() {
        let identity = Identity::from_claims(
            &claims(&[("sub", "user-42"), ("email", "not-an-email")]),
            &ClaimNames::default(),
        )
        .unwrap();
        assert_eq!(identity.email, None);
        assert_eq!(identity.tags().get("end_user_email"), None);
    }

    #[test]
    fn long_display_name_is_shortened_to_a_valid_tag() {
        let long = "N".repeat(400);
        let identity = Identity::from_claims(
            &claims(&[("sub", "u"), ("name", &long)]),
            &ClaimNames::default(),
        )
        .unwrap();
        assert_eq!(identity.display_name.map(|n| n.len()), Some(255));
        let emoji = "😀".repeat(200);
        let identity = Identity::from_claims(
            &claims(&[("sub", "u"), ("name", &emoji)]),
            &ClaimNames::default(),
        )
        .unwrap();
        assert!(tags::is_valid_value(&identity.display_name.unwrap()));
    }

    #[test]
    fn missing_or_blank_end_user_id_is_refused() {
        let names = ClaimNames::default();
        assert_eq!(
            Identity::from_claims(&claims(&[("email", "a@example.com")]), &names),
            Err(IdentityError::NoEndUserId)
        );
        assert_eq!(
            Identity::from_claims(&claims(&[("sub", "  ")]), &names),
            Err(IdentityError::NoEndUserId)
        );
    }

    #[test]
    fn ids_that_are_not_valid_tag_values_are_refused() {
        let names = ClaimNames::default();
        let long = "x".repeat(256);
        assert!(Identity::from_claims(&claims(&[("sub", &long)]), &names).is_err());
        assert!(
            Identity::from_claims(&claims(&[("sub", "u"), ("org_id", &long)]), &names).is_err()
        );
    }

    #[test]
    fn claim_names_are_configurable() {
        let names = ClaimNames {
            end_user_id: "uid".into(),
            organization_id: "custom:org".into(),
            ..ClaimNames::default()
        };
        let identity = Identity::from_claims(
            &claims(&[("uid", "u1"), ("custom:org", "o1"), ("sub", "ignored")]),
            &names,
        )
        .unwrap();
        assert_eq!(identity.end_user_id.as_str(), "u1");
        assert_eq!(
            identity
                .organization_id
                .as_ref()
                .map(OrganizationId::as_str),
            Some("o1")
        );
    }

    /// What API Gateway hands over for claims that were not strings, and what IdP templates
    /// write for a missing value.
    const NOT_IDS: [&str; 12] = [
        "",
        "   ",
        "null",
        "NULL",
        "undefined",
        "None",
        "nil",
        "true",
        "[a b]",
        "[]",
        "{}",
        "{\"id\":\"org-7\"}",
    ];

    #[test]
    fn an_organization_claim_that_names_nobody_is_no_organization() {
        for value in NOT_IDS {
            let identity = Identity::from_claims(
                &claims(&[("sub", "user-42"), ("org_id", value)]),
                &ClaimNames::default(),
            )
            .unwrap();
            assert_eq!(identity.organization_id, None, "{value:?}");
            assert_eq!(identity.tags().get("organization_id"), None, "{value:?}");
        }
    }

    #[test]
    fn an_end_user_claim_that_names_nobody_is_unauthenticated() {
        for value in NOT_IDS {
            assert_eq!(
                Identity::from_claims(&claims(&[("sub", value)]), &ClaimNames::default()),
                Err(IdentityError::NoEndUserId),
                "{value:?}"
            );
        }
    }

    #[test]
    fn ids_that_only_contain_such_words_are_ids() {
        for value in ["null-org", "org [eu]", "nullable", "[a", "{b"] {
            assert_eq!(
                OrganizationId::parse(value).map(|id| id.as_str().to_owned()),
                Ok(value.to_owned())
            );
        }
        assert_eq!(EndUserId::parse("  u1 ").unwrap().as_str(), "u1");
        assert_eq!(EndUserId::parse("a\u{7}b"), Err(IdError::Invalid));
    }

    #[test]
    fn a_placeholder_display_name_is_left_out() {
        let identity = Identity::from_claims(
            &claims(&[("sub", "u"), ("name", "undefined"), ("email", "null")]),
            &ClaimNames::default(),
        )
        .unwrap();
        assert_eq!(identity.display_name, None);
        assert_eq!(identity.email, None);
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): claims as API Gateway hands them over, held to the
/// documented rule for owner ids.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, nasty_string, text};

    /// Whitespace as `str::trim` knows it, around a value.
    fn padding() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                ' ', '\t', '\n', '\r', '\u{a0}', '\u{2028}', '\u{3000}',
            ]),
            0..3,
        )
        .prop_map(String::from_iter)
    }

    /// Claim values: odd text, placeholders in any case, and JSON values as API Gateway writes
    /// them (`[a b]`) or as a serializer would (`["a","b"]`, `{"id":1}`).
    fn claim() -> impl Strategy<Value = String> {
        let placeholder = (
            prop::sample::select(PLACEHOLDERS.to_vec()),
            prop::collection::vec(any::<bool>(), 9),
        )
            .prop_map(|(word, upper)| {
                word.chars()
                    .zip(upper)
                    .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                    .collect::<String>()
            });
        let structured = (nasty_string(30), any::<bool>()).prop_map(|(inside, array)| {
            if array {
                format!("[{inside}]")
            } else {
                format!("{{{inside}}}")
            }
        });
        (
            padding(),
            prop_oneof![
                4 => text(300),
                2 => placeholder,
                2 => structured,
                2 => "[a-zA-Z0-9|@._-]{1,40}",
            ],
            padding(),
        )
            .prop_map(|(before, value, after)| before + &value + &after)
    }

    #[test]
    fn owner_ids_follow_the_documented_rule() {
        fuzz(
            "identity::EndUserId::parse / OrganizationId::parse",
            claim(),
            |raw| {
                let value = raw.trim();
                let lower = value.to_lowercase();
                let names_nobody = value.is_empty()
                    || PLACEHOLDERS.contains(&lower.as_str())
                    || (value.starts_with('[') && value.ends_with(']'))
                    || (value.starts_with('{') && value.ends_with('}'));
                let storable = (1..=255).contains(&value.encode_utf16().count())
                    && !value.chars().any(char::is_control);
                let expected = if names_nobody {
                    Err(IdError::NotAnId)
                } else if storable {
                    Ok(value)
                } else {
                    Err(IdError::Invalid)
                };
                let user = EndUserId::parse(&raw);
                let organization = OrganizationId::parse(&raw);
                prop_assert_eq!(
                    user.as_ref().map(|id| id.as_str()).map_err(|e| *e),
                    expected
                );
                prop_assert_eq!(
                    organization.as_ref().map(|id| id.as_str()).map_err(|e| *e),
                    expected
                );
                if let Ok(id) = user {
                    // Trimmed, a valid tag value, and parsing it again is the same id.
                    prop_assert!(tags::is_valid_value(&id));
                    prop_assert_eq!(EndUserId::parse(&id), Ok(id.clone()));
                }
                Ok(())
            },
        );
    }

    fn claims() -> impl Strategy<Value = HashMap<String, String>> {
        let name = prop::sample::select(vec!["sub", "email", "name", "org_id", "iss", "custom:x"]);
        prop::collection::hash_map(name.prop_map(str::to_owned), claim(), 0..6)
    }

    #[test]
    fn claims_become_an_identity_only_as_documented() {
        fuzz("identity::Identity::from_claims", claims(), |claims| {
            let names = ClaimNames::default();
            let identity = Identity::from_claims(&claims, &names);
            let sub = claims.get("sub").map(|s| EndUserId::parse(s));
            let org = claims.get("org_id").map(|s| OrganizationId::parse(s));
            match (&sub, &org) {
                (None | Some(Err(IdError::NotAnId)), _) => {
                    prop_assert_eq!(identity, Err(IdentityError::NoEndUserId));
                }
                (Some(Err(IdError::Invalid)), _) => {
                    prop_assert_eq!(identity, Err(IdentityError::Unusable("end user id")));
                }
                (_, Some(Err(IdError::Invalid))) => {
                    prop_assert_eq!(identity, Err(IdentityError::Unusable("organization id")));
                }
                (Some(Ok(user)), org) => {
                    let identity = identity.expect("a valid sub and no invalid org_id");
                    prop_assert_eq!(&identity.end_user_id, user);
                    prop_assert_eq!(
                        identity.organization_id.as_ref(),
                        org.as_ref().and_then(|o| o.as_ref().ok())
                    );
                    if let Some(email) = &identity.email {
                        prop_assert!(tags::is_valid_email(email));
                        prop_assert_eq!(
                            Some(email.as_str()),
                            claims.get("email").map(|e| e.trim())
                        );
                    }
                    if let Some(name) = &identity.display_name {
                        prop_assert!(tags::is_valid_value(name));
                        prop_assert!(claims["name"].trim().starts_with(name.as_str()));
                    }
                    // Every tag made from it is one Nango accepts.
                    let made = identity.tags();
                    prop_assert!(made.iter().count() <= 4);
                    prop_assert!(
                        made.iter()
                            .all(|(k, v)| tags::is_valid_key(k) && tags::is_valid_value(v))
                    );
                    prop_assert_eq!(made.get(tags::END_USER_ID), Some(user.as_str()));
                }
            }
            Ok(())
        });
    }
}
