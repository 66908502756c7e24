//! Who is calling: the claims API Gateway's JWT authorizer verified, and nothing else.
//!
//! Never reads the body, the query or a header: only `requestContext.authorizer.jwt.claims` of the
//! HTTP API (payload v2.0) event, which the caller cannot forge past the authorizer.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::config::ClaimNames;
use crate::nango::tags::{self, Tags};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub end_user_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub organization_id: Option<String>,
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

    /// The owner ids are used as tag values and index keys, so they must be valid tag values: an id
    /// we cannot store faithfully is refused, not cut. Email and name are only labels: a malformed
    /// email is dropped, a long name shortened.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        names: &ClaimNames,
    ) -> Result<Self, IdentityError> {
        let claim = |name: &str| {
            claims
                .get(name)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
        };
        let end_user_id = claim(&names.end_user_id).ok_or(IdentityError::NoEndUserId)?;
        if !tags::is_valid_value(end_user_id) {
            return Err(IdentityError::Unusable("end user id"));
        }
        let organization_id = match claim(&names.organization_id) {
            Some(id) if !tags::is_valid_value(id) => {
                return Err(IdentityError::Unusable("organization id"));
            }
            id => id,
        };
        Ok(Identity {
            end_user_id: end_user_id.to_owned(),
            email: claim(&names.end_user_email)
                .filter(|email| tags::is_valid_email(email))
                .map(str::to_owned),
            display_name: claim(&names.end_user_name)
                .map(|name| tags::truncate_value(name).to_owned()),
            organization_id: organization_id.map(str::to_owned),
        })
    }

    /// The tags a new connection of this caller gets, so the auth webhook names its owner.
    pub fn tags(&self) -> Tags {
        let mut tags = Tags::new();
        tags.insert(tags::END_USER_ID, &self.end_user_id);
        if let Some(email) = &self.email {
            tags.insert(tags::END_USER_EMAIL, email);
        }
        if let Some(name) = &self.display_name {
            tags.insert(tags::END_USER_DISPLAY_NAME, name);
        }
        if let Some(organization_id) = &self.organization_id {
            tags.insert(tags::ORGANIZATION_ID, organization_id);
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
        assert_eq!(identity.end_user_id, "u1");
        assert_eq!(identity.organization_id.as_deref(), Some("o1"));
    }
}
