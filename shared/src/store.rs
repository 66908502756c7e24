//! The connections table in DynamoDB: one item per connection, listed by owner through two
//! global secondary indexes. The request paths never scan; only reconciliation does (see
//! [`ConnectionStore::scan_all`]).
//!
//! The table itself is defined once, in `infra/dynamodb/connections-table.json`.
//!
//! | attribute          | type | meaning                                                        |
//! |--------------------|------|----------------------------------------------------------------|
//! | `connectionId`     | S    | partition key: Nango's connection id                           |
//! | `integrationId`    | S    | Nango's provider config key, e.g. `github`                     |
//! | `provider`         | S?   | Nango's provider name                                          |
//! | `authMode`         | S?   | `OAUTH2`, `API_KEY`, ... (open text)                           |
//! | `environment`      | S?   | the Nango environment that sent the webhook                    |
//! | `endUserId`        | S?   | owner; partition key of index `byEndUser` (absent: not listed) |
//! | `organizationId`   | S?   | owner's organization; partition key of index `byOrganization`  |
//! | `tags`             | M    | the connection's full Nango tags (string values)               |
//! | `status`           | S    | `active`, `error` or `deleted`                                 |
//! | `errorType`        | S?   | with `status = error`: Nango's error type                      |
//! | `errorDescription` | S?   | with `status = error`: Nango's error description               |
//! | `createdAt`        | S    | RFC 3339 UTC, ms; first time we heard of it (for a connection found by reconciliation: Nango's `created`); sort key of both indexes |
//! | `updatedAt`        | S    | RFC 3339 UTC, ms; last change                                  |
//! | `deletedAt`        | S?   | when the deletion webhook arrived                              |
//! | `version`          | N    | bumped on every write; guards read-modify-write                |
//!
//! Writes are read → [`connection::apply`] → conditional put on `version`, retried on conflict, so
//! concurrent deliveries of webhooks for one connection never lose an update.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::connection::{self, AuthEvent, Connection, Failure, Owner, Status};
use crate::identity::{EndUserId, OrganizationId};
use crate::nango::{ConnectionId, IntegrationId, Tags};

pub const BY_END_USER_INDEX: &str = "byEndUser";
pub const BY_ORGANIZATION_INDEX: &str = "byOrganization";

/// Concurrent writers for one connection are rare (Nango's retries, two webhook URLs); a handful
/// of optimistic retries always settles them.
const MAX_WRITE_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A fault that may pass (throttling, a 5xx, a timeout, no network): worth retrying.
    #[error("DynamoDB request failed: {0}")]
    Unavailable(String),
    /// DynamoDB refused the request itself (e.g. an item over 400 KB): the same request will be
    /// refused again, so retrying it only repeats the failure.
    #[error("DynamoDB refused the request: {0}")]
    Rejected(String),
    #[error("a stored item is malformed: {0}")]
    Corrupt(String),
    #[error("gave up after {MAX_WRITE_ATTEMPTS} conflicting concurrent writes")]
    Contention,
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contention)
    }
}

/// DynamoDB's codes for a request that is wrong in itself, not for a passing fault.
const PERMANENT_ERROR_CODES: [&str; 2] = ["ValidationException", "SerializationException"];

fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let permanent = matches!(&err, SdkError::ServiceError(service)
        if service.err().code().is_some_and(|code| PERMANENT_ERROR_CODES.contains(&code)));
    let text = DisplayErrorContext(&err).to_string();
    if permanent {
        StoreError::Rejected(text)
    } else {
        StoreError::Unavailable(text)
    }
}

/// What recording a webhook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Written(Status),
    /// A duplicate, or news about a deleted connection.
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct ConnectionStore {
    client: Client,
    table: String,
}

impl ConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ConnectionStore {
            client,
            table: table.into(),
        }
    }

    pub async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.as_ref().map(from_item).transpose()
    }

    /// Applies an auth webhook's change, exactly once however often it is delivered.
    pub async fn record(&self, event: &AuthEvent) -> Result<Recorded, StoreError> {
        self.record_from(event, None).await
    }

    /// [`record`](Self::record), starting from a state the caller already read (`read`: `Some`
    /// of what it found), which saves the first read. The write is conditional on that state's
    /// version all the same: if anything wrote since, the state is read again and `apply`d again.
    pub async fn record_from(
        &self,
        event: &AuthEvent,
        mut read: Option<Option<Connection>>,
    ) -> Result<Recorded, StoreError> {
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let current = match read.take() {
                Some(current) => current,
                None => self.get(&event.connection_id).await?,
            };
            if let Some((known, named)) = connection::owner_conflict(current.as_ref(), event) {
                tracing::warn!(
                    connection_id = %event.connection_id,
                    owner = ?known,
                    webhook_owner = ?named,
                    "a webhook names another owner than the known one; the owner stays"
                );
            }
            let Some(next) = connection::apply(current.as_ref(), event, &now()) else {
                return Ok(Recorded::Unchanged);
            };
            match self.put(next, current.map(|c| c.version)).await {
                Ok(status) => return Ok(Recorded::Written(status)),
                Err(PutError::Conflict) => {
                    // Someone wrote in between: read again, after a short pause to let them finish.
                    tokio::time::sleep(std::time::Duration::from_millis(10 * (attempt as u64 + 1)))
                        .await;
                    continue;
                }
                Err(PutError::Store(err)) => return Err(err),
            }
        }
        Err(StoreError::Contention)
    }

    async fn put(&self, mut next: Connection, expected: Option<u64>) -> Result<Status, PutError> {
        next.version = expected.map_or(1, |version| version + 1);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&next)));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(connectionId)"),
            // An item written without a version (by hand, say) is guarded by its absence.
            Some(0) => request.condition_expression("attribute_not_exists(version)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(next.status),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(PutError::Conflict)
            }
            Err(err) => Err(PutError::Store(store_error(err))),
        }
    }

    /// Every stored connection (deleted ones included), read with a paginated, strongly
    /// consistent Scan. For reconciliation only: it compares the whole table with Nango's whole
    /// listing, every few minutes, from one invocation, so reading the whole table is the job
    /// itself: a Scan reads it in 1 MB pages (thousands of items a request), where reading the same
    /// items by key would take one BatchGetItem per 100 and still miss the ones Nango no longer
    /// lists. Read capacity is charged by item size either way. No request path scans.
    pub async fn scan_all(&self) -> Result<Vec<Connection>, StoreError> {
        let items: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(store_error)?;
        Ok(items
            .iter()
            .filter_map(|item| {
                from_item(item)
                    .inspect_err(|err| tracing::error!(error = %err, "skipping a malformed item"))
                    .ok()
            })
            .collect())
    }

    /// The connections of an end user and, when given, of an organization, newest first, deleted
    /// ones left out. Who may see which of them is [`crate::access`]'s to say.
    pub async fn list_owned(
        &self,
        end_user_id: &EndUserId,
        organization_id: Option<&OrganizationId>,
    ) -> Result<Vec<Connection>, StoreError> {
        let mine = self.query_index(BY_END_USER_INDEX, "endUserId", end_user_id.as_str());
        let of_organization = async {
            match organization_id {
                Some(id) => {
                    self.query_index(BY_ORGANIZATION_INDEX, "organizationId", id.as_str())
                        .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (mut connections, of_organization) = tokio::try_join!(mine, of_organization)?;
        connections.extend(of_organization);
        connections.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        connections.dedup_by(|a, b| a.id == b.id);
        Ok(connections)
    }

    async fn query_index(
        &self,
        index: &str,
        key: &str,
        value: &str,
    ) -> Result<Vec<Connection>, StoreError> {
        let items: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#key = :value")
            .filter_expression("#status <> :deleted")
            .expression_attribute_names("#key", key)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":value", AttributeValue::S(value.to_owned()))
            .expression_attribute_values(
                ":deleted",
                AttributeValue::S(Status::Deleted.as_str().to_owned()),
            )
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(store_error)?;
        // One bad item must not hide all the others: skip it, and say so.
        Ok(items
            .iter()
            .filter_map(|item| {
                from_item(item)
                    .inspect_err(|err| tracing::error!(error = %err, "skipping a malformed item"))
                    .ok()
            })
            .collect())
    }
}

enum PutError {
    Conflict,
    Store(StoreError),
}

/// Now, as RFC 3339 UTC with milliseconds: fixed width, so text order is time order.
pub fn now() -> String {
    timestamp(OffsetDateTime::now_utc())
}

/// `at` in the form of [`now`] (converted to UTC).
pub fn timestamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .expect("a UTC time always formats")
}

type Item = HashMap<String, AttributeValue>;

fn to_item(connection: &Connection) -> Item {
    let mut item = Item::new();
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            item.insert(name.to_owned(), AttributeValue::S(value.to_owned()));
        }
    };
    put("connectionId", Some(connection.id.as_str()));
    put("integrationId", Some(connection.integration_id.as_str()));
    put("provider", connection.provider.as_deref());
    put("authMode", connection.auth_mode.as_deref());
    put("environment", connection.environment.as_deref());
    put(
        "endUserId",
        connection.owner.end_user_id.as_ref().map(EndUserId::as_str),
    );
    put(
        "organizationId",
        connection
            .owner
            .organization_id
            .as_ref()
            .map(OrganizationId::as_str),
    );
    put("status", Some(connection.status.as_str()));
    put(
        "errorType",
        connection.error.as_ref().map(|e| e.kind.as_str()),
    );
    put(
        "errorDescription",
        connection.error.as_ref().map(|e| e.description.as_str()),
    );
    put("createdAt", Some(&connection.created_at));
    put("updatedAt", Some(&connection.updated_at));
    put("deletedAt", connection.deleted_at.as_deref());
    let tags = connection
        .tags
        .iter()
        .map(|(k, v)| (k.to_owned(), AttributeValue::S(v.to_owned())))
        .collect();
    item.insert("tags".to_owned(), AttributeValue::M(tags));
    item.insert(
        "version".to_owned(),
        AttributeValue::N(connection.version.to_string()),
    );
    item
}

fn from_item(item: &Item) -> Result<Connection, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
        None => Ok(None),
        Some(_) => Err(StoreError::Corrupt(format!("{name} is not a string"))),
    };
    let required =
        |name: &str| text(name)?.ok_or_else(|| StoreError::Corrupt(format!("{name} is missing")));
    let id = ConnectionId::parse(&required("connectionId")?)
        .map_err(|e| StoreError::Corrupt(format!("connectionId {e}")))?;
    let integration_id = IntegrationId::parse(&required("integrationId")?)
        .map_err(|e| StoreError::Corrupt(format!("integrationId {e}")))?;
    let status = Status::parse(&required("status")?)
        .ok_or_else(|| StoreError::Corrupt("status is unknown".to_owned()))?;
    let error = match text("errorType")? {
        Some(kind) => Some(Failure {
            kind,
            description: text("errorDescription")?.unwrap_or_default(),
        }),
        None => None,
    };
    let tags: Tags = match item.get("tags") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
            .collect(),
        _ => Tags::new(),
    };
    let version = match item.get("version") {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| StoreError::Corrupt("version is not a number".to_owned()))?,
        _ => 0,
    };
    Ok(Connection {
        id,
        integration_id,
        provider: text("provider")?,
        auth_mode: text("authMode")?,
        environment: text("environment")?,
        owner: Owner {
            end_user_id: text("endUserId")?
                .map(|id| EndUserId::parse(&id))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("endUserId {e}")))?,
            organization_id: text("organizationId")?
                .map(|id| OrganizationId::parse(&id))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("organizationId {e}")))?,
        },
        tags,
        status,
        error,
        created_at: required("createdAt")?,
        updated_at: required("updatedAt")?,
        deleted_at: text("deletedAt")?,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_round_trips() {
        let connection = Connection {
            id: ConnectionId::parse("c1").unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: Some("github".into()),
            auth_mode: None,
            environment: Some("dev".into()),
            owner: Owner {
                end_user_id: Some(EndUserId::parse("u1").unwrap()),
                organization_id: None,
            },
            tags: [("end_user_id".to_owned(), "u1".to_owned())]
                .into_iter()
                .collect(),
            status: Status::Error,
            error: Some(Failure {
                kind: "refresh_token_external_error".into(),
                description: "invalid_grant".into(),
            }),
            created_at: "2026-11-26T10:00:00.000Z".into(),
            updated_at: "2026-11-26T10:00:01.000Z".into(),
            deleted_at: None,
            version: 3,
        };
        let item = to_item(&connection);
        assert!(
            !item.contains_key("organizationId"),
            "absent owner keeps the item out of the index"
        );
        assert_eq!(from_item(&item).unwrap(), connection);
    }

    #[test]
    fn now_is_fixed_width_utc() {
        let now = now();
        assert_eq!(now.len(), "2026-11-26T10:00:00.000Z".len(), "{now}");
        assert!(now.ends_with('Z'));
    }
}
