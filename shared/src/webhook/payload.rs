//! The body of a verified webhook, turned into what it means for our store.
//!
//! Wire types mirror Nango's JSON (camelCase) and ignore fields they do not know; domain types
//! live in [`crate::connection`].

use serde::Deserialize;

use crate::connection::{self, AuthEvent, Change, Failure, MAX_LABEL_CHARS, Owner};
use crate::identity::{EndUserId, OrganizationId};
use crate::nango::tags::{self, Tags};
use crate::nango::{ConnectionId, IntegrationId};

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the body is not a Nango webhook: {0}")]
    NotNango(serde_json::Error),
}

/// What a webhook asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A change to a connection, to be stored.
    Connection(AuthEvent),
    /// A failed first authorization: no connection exists, only a log line.
    FailedCreation(FailedCreation),
    /// Nothing for us (sync, forward, async_action, or a type or operation we do not know).
    Ignored {
        kind: String,
        operation: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCreation {
    pub connection_id: String,
    pub integration_id: String,
    pub provider: Option<String>,
    pub environment: Option<String>,
    pub error: Failure,
}

/// Only `type` is required of every webhook; the rest depends on it.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

/// Of an auth webhook, `operation` decides what else must be there.
#[derive(Deserialize)]
struct AuthEnvelope {
    operation: String,
}

/// The operations we act on; Nango may add others, which are acknowledged and ignored.
const KNOWN_OPERATIONS: [&str; 4] = ["creation", "override", "refresh", "deletion"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthPayload {
    connection_id: String,
    provider_config_key: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    operation: String,
    #[serde(default)]
    success: Option<bool>,
    /// Read leniently: a value that is not a string is skipped rather than failing the webhook.
    #[serde(default)]
    tags: Option<serde_json::Value>,
    /// Only for sessions made with the deprecated `end_user` object.
    #[serde(default)]
    end_user: Option<EndUserPayload>,
    #[serde(default)]
    error: Option<ErrorPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndUserPayload {
    #[serde(default)]
    end_user_id: Option<String>,
    #[serde(default)]
    organization_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorPayload {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

pub fn parse(body: &[u8]) -> Result<Notice, PayloadError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(PayloadError::NotJson)?;
    let Envelope { kind } = Envelope::deserialize(&value).map_err(PayloadError::NotNango)?;
    if kind != "auth" {
        return Ok(Notice::Ignored {
            kind,
            operation: None,
        });
    }
    let AuthEnvelope { operation } =
        AuthEnvelope::deserialize(&value).map_err(PayloadError::NotNango)?;
    if !KNOWN_OPERATIONS.contains(&operation.as_str()) {
        return Ok(Notice::Ignored {
            kind,
            operation: Some(operation),
        });
    }
    let auth = AuthPayload::deserialize(&value).map_err(PayloadError::NotNango)?;
    auth.into_notice().map_err(PayloadError::NotNango)
}

impl AuthPayload {
    fn into_notice(self) -> Result<Notice, serde_json::Error> {
        // A deletion is a deletion whatever else it says; the others must say how they went.
        let success = match (self.operation.as_str(), self.success) {
            ("deletion", _) => true,
            (_, Some(success)) => success,
            (_, None) => return Err(invalid("success is missing")),
        };
        let failure = || {
            let error = self.error.as_ref();
            Failure::new(
                error.and_then(|e| e.kind.as_deref()).unwrap_or("unknown"),
                error
                    .and_then(|e| e.description.as_deref())
                    .unwrap_or_default(),
            )
        };
        let change = match (self.operation.as_str(), success) {
            ("creation", true) => Change::Created,
            ("creation", false) => {
                return Ok(Notice::FailedCreation(FailedCreation {
                    connection_id: self.connection_id.clone(),
                    integration_id: self.provider_config_key.clone(),
                    provider: label(&self.provider),
                    environment: label(&self.environment),
                    error: failure(),
                }));
            }
            ("override" | "refresh", true) => Change::Authorized,
            ("override" | "refresh", false) => Change::Failed(failure()),
            _ => Change::Deleted,
        };
        let connection_id = ConnectionId::parse(&self.connection_id).map_err(invalid)?;
        let integration_id = IntegrationId::parse(&self.provider_config_key).map_err(invalid)?;
        let tags = Tags::from_json(self.tags);
        let owner = owner(&tags, self.end_user.as_ref());
        Ok(Notice::Connection(AuthEvent {
            connection_id,
            integration_id,
            provider: label(&self.provider),
            auth_mode: label(&self.auth_mode),
            environment: label(&self.environment),
            owner,
            tags,
            change,
        }))
    }
}

/// Open text from Nango, bounded so that what is stored always fits.
pub(crate) fn label(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(|value| connection::bounded(value, MAX_LABEL_CHARS))
}

fn invalid(reason: &str) -> serde_json::Error {
    serde::de::Error::custom(reason)
}

/// The owner named by the tags, or else by the deprecated `endUser` object; only ids that pass
/// [`EndUserId::parse`] / [`OrganizationId::parse`] count.
fn owner(tags: &Tags, end_user: Option<&EndUserPayload>) -> Owner {
    fn pick<'a>(tags: &'a Tags, tag: &str, fallback: Option<&'a String>) -> Option<&'a str> {
        tags.get(tag).or(fallback.map(String::as_str))
    }
    Owner {
        end_user_id: pick(
            tags,
            tags::END_USER_ID,
            end_user.and_then(|u| u.end_user_id.as_ref()),
        )
        .and_then(|id| EndUserId::parse(id).ok()),
        organization_id: pick(
            tags,
            tags::ORGANIZATION_ID,
            end_user.and_then(|u| u.organization_id.as_ref()),
        )
        .and_then(|id| OrganizationId::parse(id).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real bytes from a running Nango server (see shared/docs/nango-api.md §5).
    const CREATION: &str = r#"{"authMode":"API_KEY","connectionId":"a2968dec-61fa-4a65-8b14-60bb4a851878","endUser":{"endUserEmail":"alice@example.com","endUserId":"user-42","organizationId":"org-7","tags":{}},"environment":"dev","from":"nango","operation":"creation","provider":"exa","providerConfigKey":"exa-peer","success":true,"tags":{"end_user_display_name":"Alice Example","end_user_email":"alice@example.com","end_user_id":"user-42","organization_display_name":"Acme Org","organization_id":"org-7"},"type":"auth"}"#;
    const OVERRIDE_EMPTY_TAGS: &str = r#"{"authMode":"API_KEY","connectionId":"a2968dec-61fa-4a65-8b14-60bb4a851878","environment":"dev","from":"nango","operation":"override","provider":"exa","providerConfigKey":"exa-peer","success":true,"tags":{},"type":"auth"}"#;
    const FAILED_CREATION: &str = r#"{"authMode":"OAUTH2","connectionId":"cc0e5cc1-aa4f-47c1-be00-5fb22979ceda","environment":"dev","error":{"description":"Did not get authorization code in the callback. Provider error: error: access_denied; error_description: The user has denied your application access.","type":"invalid_callback"},"from":"nango","operation":"creation","provider":"github","providerConfigKey":"github-peer","success":false,"type":"auth"}"#;
    const REFRESH_FAILURE: &str = r#"{"authMode":"OAUTH2","connectionId":"5b1c9a3e-2f4d-4c1a-9e7b-0d3f6a8b2c11","environment":"prod","error":{"description":"invalid_grant","type":"refresh_token_external_error"},"from":"nango","operation":"refresh","provider":"google-calendar","providerConfigKey":"google-calendar","success":false,"tags":{"end_user_id":"user_123"},"type":"auth"}"#;

    fn event(body: &str) -> AuthEvent {
        match parse(body.as_bytes()).unwrap() {
            Notice::Connection(event) => event,
            other => panic!("expected a connection event, got {other:?}"),
        }
    }

    #[test]
    fn creation_names_owner_from_tags() {
        let event = event(CREATION);
        assert_eq!(event.change, Change::Created);
        assert_eq!(
            event.connection_id.as_str(),
            "a2968dec-61fa-4a65-8b14-60bb4a851878"
        );
        assert_eq!(event.integration_id.as_str(), "exa-peer");
        assert_eq!(event.provider.as_deref(), Some("exa"));
        assert_eq!(event.auth_mode.as_deref(), Some("API_KEY"));
        assert_eq!(event.environment.as_deref(), Some("dev"));
        assert_eq!(event.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(event.owner.organization_id.as_deref(), Some("org-7"));
        assert_eq!(event.tags.iter().count(), 5);
    }

    #[test]
    fn owner_falls_back_to_the_deprecated_end_user_object() {
        let body = CREATION.replace(r#""tags":{"end_user_display_name"#, r#""tags":{},"x":{"a"#);
        let event = event(&body);
        assert!(event.tags.is_empty());
        assert_eq!(event.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(event.owner.organization_id.as_deref(), Some("org-7"));
    }

    #[test]
    fn override_with_empty_tags_names_no_owner() {
        let event = event(OVERRIDE_EMPTY_TAGS);
        assert_eq!(event.change, Change::Authorized);
        assert!(event.tags.is_empty());
        assert_eq!(event.owner, Owner::default());
    }

    #[test]
    fn refresh_failure_carries_the_error() {
        let event = event(REFRESH_FAILURE);
        assert_eq!(
            event.change,
            Change::Failed(Failure {
                kind: "refresh_token_external_error".into(),
                description: "invalid_grant".into()
            })
        );
        assert_eq!(event.owner.end_user_id.as_deref(), Some("user_123"));
    }

    #[test]
    fn failed_creation_is_only_for_the_log() {
        let Notice::FailedCreation(failed) = parse(FAILED_CREATION.as_bytes()).unwrap() else {
            panic!("expected a failed creation");
        };
        assert_eq!(failed.integration_id, "github-peer");
        assert_eq!(failed.error.kind, "invalid_callback");
        assert!(failed.error.description.contains("access_denied"));
        assert_eq!(failed.environment.as_deref(), Some("dev"));
    }

    #[test]
    fn deletion_is_a_change_whatever_its_success_says() {
        let body = OVERRIDE_EMPTY_TAGS.replace("override", "deletion");
        assert_eq!(event(&body).change, Change::Deleted);
        let failed = body.replace(r#""success":true,"#, r#""success":false,"#);
        assert_eq!(event(&failed).change, Change::Deleted);
        let silent = body.replace(r#""success":true,"#, "");
        assert_eq!(event(&silent).change, Change::Deleted);
    }

    #[test]
    fn refresh_success_is_an_authorization() {
        let body = REFRESH_FAILURE.replace(r#""success":false"#, r#""success":true"#);
        assert_eq!(event(&body).change, Change::Authorized);
    }

    #[test]
    fn a_status_change_without_success_is_not_a_nango_webhook() {
        let body = OVERRIDE_EMPTY_TAGS.replace(r#""success":true,"#, "");
        assert!(matches!(
            parse(body.as_bytes()),
            Err(PayloadError::NotNango(_))
        ));
    }

    #[test]
    fn non_string_tag_values_are_skipped() {
        let body = REFRESH_FAILURE.replace(
            r#""tags":{"end_user_id":"user_123"}"#,
            r#""tags":{"end_user_id":"user_123","count":3,"nested":{"a":"b"}}"#,
        );
        let event = event(&body);
        assert_eq!(event.tags.iter().count(), 1);
        assert_eq!(event.owner.end_user_id.as_deref(), Some("user_123"));
    }

    #[test]
    fn other_types_and_operations_are_ignored() {
        for (body, kind, operation) in [
            (
                r#"{"type":"sync","from":"nango","connectionId":"c"}"#,
                "sync",
                None,
            ),
            (r#"{"type":"forward","from":"nango"}"#, "forward", None),
            (
                r#"{"type":"async_action","from":"nango"}"#,
                "async_action",
                None,
            ),
            (r#"{"type":"brand_new","from":"nango"}"#, "brand_new", None),
        ] {
            assert_eq!(
                parse(body.as_bytes()).unwrap(),
                Notice::Ignored {
                    kind: kind.into(),
                    operation
                }
            );
        }
        // An unknown operation is ignored even when it lacks what known ones must carry.
        let new_operation = r#"{"type":"auth","operation":"teleport","from":"nango"}"#;
        assert_eq!(
            parse(new_operation.as_bytes()).unwrap(),
            Notice::Ignored {
                kind: "auth".into(),
                operation: Some("teleport".into())
            }
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let body =
            REFRESH_FAILURE.replace(r#""type":"auth""#, r#""type":"auth","newField":{"x":1}"#);
        assert!(matches!(
            parse(body.as_bytes()).unwrap(),
            Notice::Connection(_)
        ));
    }

    #[test]
    fn not_json_or_not_nango_is_an_error() {
        assert!(matches!(parse(b"not json"), Err(PayloadError::NotJson(_))));
        assert!(matches!(parse(b"[1,2]"), Err(PayloadError::NotNango(_))));
        assert!(matches!(
            parse(br#"{"hello":"world"}"#),
            Err(PayloadError::NotNango(_))
        ));
        assert!(matches!(
            parse(br#"{"type":"auth","operation":"creation","success":true}"#),
            Err(PayloadError::NotNango(_))
        ));
        assert!(matches!(
            parse(br#"{"type":"auth","operation":"creation","success":true,"connectionId":"","providerConfigKey":"github"}"#),
            Err(PayloadError::NotNango(_))
        ));
    }
}
