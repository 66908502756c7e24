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
    /// Not about auth (sync, forward, async_action, or a type Nango adds later): published as an
    /// event with Nango's body as it is.
    Other { kind: String },
    /// An auth operation we do not know: acknowledged, nothing done.
    Ignored {
        kind: String,
        operation: Option<String>,
    },
}

/// Nango's webhook types, and `other` for any type it adds later: a closed set, for metrics.
pub const KINDS: &[&str] = &["auth", "sync", "forward", "async_action", "other"];

impl Notice {
    /// The webhook's type, one of [`KINDS`].
    pub fn kind(&self) -> &'static str {
        let kind = match self {
            Notice::Connection(_) | Notice::FailedCreation(_) => return "auth",
            Notice::Other { kind } | Notice::Ignored { kind, .. } => kind.as_str(),
        };
        KINDS
            .iter()
            .find(|known| **known == kind)
            .copied()
            .unwrap_or("other")
    }
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
        return Ok(Notice::Other { kind });
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
            ("override", true) => Change::Reconnected,
            ("refresh", true) => Change::Authorized,
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
        assert_eq!(
            event.change,
            Change::Reconnected,
            "an override success is a completed reconnect"
        );
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
    fn other_types_are_other_and_unknown_operations_ignored() {
        for (body, kind) in [
            (
                r#"{"type":"sync","from":"nango","connectionId":"c"}"#,
                "sync",
            ),
            (r#"{"type":"forward","from":"nango"}"#, "forward"),
            (r#"{"type":"async_action","from":"nango"}"#, "async_action"),
            (r#"{"type":"brand_new","from":"nango"}"#, "brand_new"),
        ] {
            assert_eq!(
                parse(body.as_bytes()).unwrap(),
                Notice::Other { kind: kind.into() }
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

/// Fuzz targets (see [`crate::fuzzing`]): what the parser makes of any bytes a verified webhook may
/// carry, held against a model of the documented rules.
#[cfg(test)]
pub(crate) mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::connection::{MAX_ERROR_DESCRIPTION_CHARS, MAX_ERROR_TYPE_CHARS};
    use crate::fuzzing::{fuzz, text};
    use crate::nango::tags::{is_valid_key, is_valid_value};

    /// A JSON value of the wrong kind for any field: null, booleans, extreme numbers, a string, or
    /// a nested object. Arrays are left out: serde reads an array as a struct's fields in order,
    /// which the model below does not follow (and which only a signed webhook could send).
    fn junk() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                json!(0),
                json!(-1),
                json!(u64::MAX),
                json!(i64::MIN),
                json!(1.5e308),
                json!(-0.0),
            ]),
            text(64).prop_map(Value::String),
            Just(json!({"nested": {"deeper": [1, {"x": null}]}})),
        ]
        .boxed()
    }

    /// `valid` most of the time; otherwise absent (`None`) or junk.
    fn field(valid: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
        prop_oneof![
            6 => valid.prop_map(Some),
            1 => Just(None),
            1 => junk().prop_map(Some),
        ]
        .boxed()
    }

    fn string_of(values: &[&'static str]) -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::sample::select(values.to_vec()).prop_map(|s| Value::String(s.to_owned())),
            1 => text(300).prop_map(Value::String),
        ]
    }

    /// Ids as Nango makes them, and ones it never would (empty, `..`, over 255, control characters).
    fn id() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => "[a-z0-9][a-z0-9-]{0,40}".prop_map(Value::String),
            1 => text(300).prop_map(Value::String),
        ]
    }

    fn tag_key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "end_user_id",
                "organization_id",
                "end_user_email",
                "end_user_display_name",
            ])
            .prop_map(str::to_owned),
            3 => "[a-zA-Z][a-zA-Z0-9_./-]{0,70}",
            1 => text(80),
        ]
    }

    fn tags() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => prop::collection::vec(
                (tag_key(), prop_oneof![5 => text(300).prop_map(Value::String), 1 => junk()]),
                0..16,
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            1 => junk(),
        ]
    }

    fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value?)))
                .collect(),
        )
    }

    /// A webhook as Nango sends it, each field now and then missing, of the wrong type or huge.
    pub(crate) fn webhook() -> BoxedStrategy<Map<String, Value>> {
        let end_user = (
            field(text(300).prop_map(Value::String)),
            field(text(300).prop_map(Value::String)),
        )
            .prop_map(|(user, org)| object(vec![("endUserId", user), ("organizationId", org)]));
        let error = (
            field(string_of(&[
                "refresh_token_external_error",
                "invalid_callback",
            ])),
            field(text(5000).prop_map(Value::String)),
        )
            .prop_map(|(kind, description)| {
                object(vec![("type", kind), ("description", description)])
            });
        (
            (
                field(string_of(&["auth", "auth", "auth", "sync", "forward"])),
                field(string_of(&[
                    "creation", "override", "refresh", "deletion", "teleport",
                ])),
                field(any::<bool>().prop_map(Value::Bool)),
                field(id()),
                field(id()),
            ),
            (
                field(string_of(&["github", "google-calendar"])),
                field(string_of(&["OAUTH2", "API_KEY"])),
                field(string_of(&["dev", "prod"])),
                field(tags()),
                field(end_user),
                field(error),
                field(junk()),
            ),
        )
            .prop_map(
                |(
                    (kind, operation, success, connection_id, integration_id),
                    (provider, auth_mode, environment, tags, end_user, error, unknown),
                )| {
                    match object(vec![
                        ("type", kind),
                        ("operation", operation),
                        ("success", success),
                        ("connectionId", connection_id),
                        ("providerConfigKey", integration_id),
                        ("provider", provider),
                        ("authMode", auth_mode),
                        ("environment", environment),
                        ("tags", tags),
                        ("endUser", end_user),
                        ("error", error),
                        ("fieldFromTheFuture", unknown),
                        ("from", Some(json!("nango"))),
                    ]) {
                        Value::Object(map) => map,
                        _ => unreachable!("object() makes an object"),
                    }
                },
            )
            .boxed()
    }

    /// What the documented rules say the parser must make of `webhook`. Written from the wire
    /// format, not from the parser: each field's accepted types (a missing or `null` optional field
    /// is absent; any other wrong type makes the body not a Nango webhook).
    fn model(webhook: &Map<String, Value>) -> Option<Notice> {
        fn required<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
            map.get(name)?.as_str()
        }
        /// `Some(None)` for absent or null, `Some(Some(_))` for a string, `None` for a wrong type.
        fn optional<'a>(map: &'a Map<String, Value>, name: &str) -> Option<Option<&'a str>> {
            match map.get(name) {
                None | Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s)),
                Some(_) => None,
            }
        }
        fn nested<'a>(
            map: &'a Map<String, Value>,
            name: &str,
        ) -> Option<Option<&'a Map<String, Value>>> {
            match map.get(name) {
                None | Some(Value::Null) => Some(None),
                Some(Value::Object(inner)) => Some(Some(inner)),
                Some(_) => None,
            }
        }
        let label = |value: Option<&str>| value.map(|v| connection::bounded(v, MAX_LABEL_CHARS));

        let kind = required(webhook, "type")?;
        if kind != "auth" {
            return Some(Notice::Other {
                kind: kind.to_owned(),
            });
        }
        let operation = required(webhook, "operation")?;
        if !["creation", "override", "refresh", "deletion"].contains(&operation) {
            return Some(Notice::Ignored {
                kind: kind.to_owned(),
                operation: Some(operation.to_owned()),
            });
        }
        let connection_id = required(webhook, "connectionId")?;
        let integration_id = required(webhook, "providerConfigKey")?;
        let provider = optional(webhook, "provider")?;
        let auth_mode = optional(webhook, "authMode")?;
        let environment = optional(webhook, "environment")?;
        let success = match webhook.get("success") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return None,
        };
        let end_user = nested(webhook, "endUser")?;
        let (user_fallback, org_fallback) = match end_user {
            Some(inner) => (
                optional(inner, "endUserId")?,
                optional(inner, "organizationId")?,
            ),
            None => (None, None),
        };
        let error = nested(webhook, "error")?;
        let (error_kind, error_description) = match error {
            Some(inner) => (optional(inner, "type")?, optional(inner, "description")?),
            None => (None, None),
        };
        let failure = Failure::new(
            error_kind.unwrap_or("unknown"),
            error_description.unwrap_or(""),
        );
        let change = match (operation, success) {
            ("deletion", _) => Change::Deleted,
            (_, None) => return None,
            ("creation", Some(true)) => Change::Created,
            ("creation", Some(false)) => {
                return Some(Notice::FailedCreation(FailedCreation {
                    connection_id: connection_id.to_owned(),
                    integration_id: integration_id.to_owned(),
                    provider: label(provider),
                    environment: label(environment),
                    error: failure,
                }));
            }
            ("override", Some(true)) => Change::Reconnected,
            (_, Some(true)) => Change::Authorized,
            (_, Some(false)) => Change::Failed(failure),
        };
        let tags = match webhook.get("tags") {
            Some(Value::Object(map)) => Tags::from_untrusted(
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))),
            ),
            _ => Tags::new(),
        };
        Some(Notice::Connection(AuthEvent {
            connection_id: ConnectionId::parse(connection_id).ok()?,
            integration_id: IntegrationId::parse(integration_id).ok()?,
            provider: label(provider),
            auth_mode: label(auth_mode),
            environment: label(environment),
            owner: Owner {
                end_user_id: tags
                    .get(tags::END_USER_ID)
                    .or(user_fallback)
                    .and_then(|id| EndUserId::parse(id).ok()),
                organization_id: tags
                    .get(tags::ORGANIZATION_ID)
                    .or(org_fallback)
                    .and_then(|id| OrganizationId::parse(id).ok()),
            },
            tags,
            change,
        }))
    }

    /// What holds of any notice, whatever the body: everything kept from it is bounded and valid.
    fn check_bounds(notice: &Notice) -> Result<(), TestCaseError> {
        let failure_ok = |f: &Failure| {
            f.kind.chars().count() <= MAX_ERROR_TYPE_CHARS
                && f.description.chars().count() <= MAX_ERROR_DESCRIPTION_CHARS
        };
        let label_ok = |l: &Option<String>| {
            l.as_ref()
                .is_none_or(|l| l.chars().count() <= MAX_LABEL_CHARS)
        };
        match notice {
            Notice::Connection(event) => {
                prop_assert!(label_ok(&event.provider));
                prop_assert!(label_ok(&event.auth_mode));
                prop_assert!(label_ok(&event.environment));
                prop_assert!(event.tags.iter().count() <= tags::MAX_TAGS);
                prop_assert!(
                    event
                        .tags
                        .iter()
                        .all(|(k, v)| is_valid_key(k) && is_valid_value(v))
                );
                if let Some(id) = &event.owner.end_user_id {
                    prop_assert_eq!(EndUserId::parse(id), Ok(id.clone()));
                }
                if let Some(id) = &event.owner.organization_id {
                    prop_assert_eq!(OrganizationId::parse(id), Ok(id.clone()));
                }
                if let Change::Failed(failure) = &event.change {
                    prop_assert!(failure_ok(failure));
                }
            }
            Notice::FailedCreation(failed) => {
                prop_assert!(failure_ok(&failed.error));
                prop_assert!(label_ok(&failed.provider));
                prop_assert!(label_ok(&failed.environment));
            }
            Notice::Ignored { .. } | Notice::Other { .. } => {}
        }
        Ok(())
    }

    /// How a body was written: as is, with a key repeated at the end (JSON's last one wins), or
    /// with an unknown field nested `depth` arrays deep.
    #[derive(Debug, Clone)]
    enum Spelling {
        Plain,
        DuplicateKey(String, Value),
        Nested(usize),
    }

    fn spelling() -> impl Strategy<Value = Spelling> {
        let keys = prop::sample::select(vec![
            "type",
            "operation",
            "success",
            "connectionId",
            "providerConfigKey",
            "tags",
            "endUser",
        ]);
        prop_oneof![
            3 => Just(Spelling::Plain),
            2 => (keys, prop_oneof![junk(), id(), Just(json!("auth")), Just(json!("deletion"))])
                .prop_map(|(k, v)| Spelling::DuplicateKey(k.to_owned(), v)),
            1 => prop_oneof![1..100usize, 100..10_000usize].prop_map(Spelling::Nested),
        ]
    }

    fn write(webhook: &Map<String, Value>, spelling: &Spelling) -> Vec<u8> {
        let mut text = serde_json::to_string(webhook).expect("a map serializes");
        text.pop(); // the closing brace
        match spelling {
            Spelling::Plain => {}
            Spelling::DuplicateKey(key, value) => {
                text.push_str(&format!(",{}:{value}", Value::String(key.clone())));
            }
            Spelling::Nested(depth) => {
                text.push_str(&format!(
                    ",\"zzNested\":{}{}",
                    "[".repeat(*depth),
                    "]".repeat(*depth)
                ));
            }
        }
        text.push('}');
        text.into_bytes()
    }

    #[test]
    fn near_valid_webhooks_mean_what_the_rules_say() {
        fuzz(
            "webhook::payload::parse (near-valid JSON, model)",
            (webhook(), spelling()),
            |(mut webhook, spelling)| {
                let body = write(&webhook, &spelling);
                let parsed = parse(&body);
                if let Ok(notice) = &parsed {
                    check_bounds(notice)?;
                }
                match &spelling {
                    // serde_json refuses nesting past 128 levels, so a deep body is not JSON.
                    Spelling::Nested(depth) if *depth >= 127 => {
                        prop_assert!(
                            matches!(parsed, Err(PayloadError::NotJson(_))),
                            "{parsed:?}"
                        );
                        return Ok(());
                    }
                    Spelling::DuplicateKey(key, value) => {
                        webhook.insert(key.clone(), value.clone());
                    }
                    _ => {}
                }
                match model(&webhook) {
                    Some(expected) => prop_assert_eq!(parsed.ok(), Some(expected)),
                    None => prop_assert!(
                        matches!(parsed, Err(PayloadError::NotNango(_))),
                        "{parsed:?}"
                    ),
                }
                Ok(())
            },
        );
    }

    /// A byte of a well-formed webhook changed, dropped, or the body cut short: never a panic,
    /// and whatever is read from it still bounded.
    #[test]
    fn damaged_webhooks_never_panic_and_stay_bounded() {
        fuzz(
            "webhook::payload::parse (damaged bytes)",
            (webhook(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8),
            |(webhook, at, byte, how)| {
                let mut body = write(&webhook, &Spelling::Plain);
                let at = at.index(body.len());
                match how {
                    0 => body[at] = byte,
                    1 => {
                        body.remove(at);
                    }
                    _ => body.truncate(at),
                }
                if let Ok(notice) = parse(&body) {
                    check_bounds(&notice)?;
                }
                Ok(())
            },
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        fuzz(
            "webhook::payload::parse (arbitrary bytes)",
            prop::collection::vec(any::<u8>(), 0..2048),
            |body| {
                if let Ok(notice) = parse(&body) {
                    check_bounds(&notice)?;
                }
                Ok(())
            },
        );
    }
}
