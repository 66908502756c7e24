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
//! | `reconnectedAt`    | S?   | when a completed reconnect last brought it back from `error`   |
//! | `version`          | N    | bumped on every write; guards read-modify-write                |
//! | `absenceCheckedAt` | S?   | reconciliation's note: when Nango last confirmed it has this connection although its listing missed it (outside the lifecycle) |
//!
//! Writes are [`connection::apply`] → conditional put on `version`, retried on conflict, so
//! concurrent deliveries of webhooks for one connection never lose an update; see
//! [`ConnectionStore::record`] for why most take a single round trip.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::connection::{self, AuthEvent, Connection, Failure, Owner, Status};
use crate::identity::{EndUserId, OrganizationId};
use crate::nango::{ConnectionId, IntegrationId, Tags};

mod listing;
mod memory;

pub use listing::{Cursor, DEFAULT_PAGE_SIZE, InvalidCursor, MAX_PAGE_SIZE, Owners, Page};

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
    memory: memory::Memory,
}

impl ConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ConnectionStore {
            client,
            table: table.into(),
            memory: memory::Memory::default(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
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
    ///
    /// Starts from what this container last knew of the connection — or, for one it never saw,
    /// from nothing, as most are new — and writes conditioned on that state's `version`. So a new
    /// connection, or a change to one this container has seen, is one round trip. When the guess
    /// was wrong, the failed put hands back the stored item (`ReturnValuesOnConditionCheckFailure`)
    /// and the change is decided again on it, with no separate read; a "no change" decided on a
    /// guess is confirmed by a read before it is believed.
    pub async fn record(&self, event: &AuthEvent) -> Result<Recorded, StoreError> {
        self.record_from(event, None).await
    }

    /// [`record`](Self::record), starting from a state the caller already read (`read`: `Some`
    /// of what it found), which saves the first guess. The write is conditional on that state's
    /// version all the same: if anything wrote since, the stored item comes back and the change is
    /// decided again on it.
    pub async fn record_from(
        &self,
        event: &AuthEvent,
        read: Option<Option<Connection>>,
    ) -> Result<Recorded, StoreError> {
        let (mut current, mut confirmed) = match read {
            Some(state) => (state, true),
            None => (self.memory.recall(&event.connection_id), false),
        };
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let Some(next) = connection::apply(current.as_ref(), event, &now()) else {
                if confirmed {
                    if let Some(current) = &current {
                        self.memory.remember(current);
                    }
                    return Ok(Recorded::Unchanged);
                }
                current = self.get(&event.connection_id).await?;
                confirmed = true;
                continue;
            };
            match self.put(next, current.as_ref().map(|c| c.version)).await {
                Ok(written) => {
                    // The write was conditioned on `current`, so it is what was stored: the
                    // disagreement is real whether `current` was read or remembered.
                    if let Some((known, named)) =
                        connection::owner_conflict(current.as_ref(), event)
                    {
                        tracing::warn!(
                            connection_id = %event.connection_id,
                            owner = ?known,
                            webhook_owner = ?named,
                            "a webhook names another owner than the known one; the owner stays"
                        );
                    }
                    let status = written.status;
                    self.memory.remember(&written);
                    return Ok(Recorded::Written(status));
                }
                Err(PutError::Conflict(stored)) => {
                    // Someone else wrote first (or our guess was stale): decide again on what is
                    // stored. Back off only if that keeps happening.
                    if attempt > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64))
                            .await;
                    }
                    current = stored.map(|stored| *stored);
                    confirmed = true;
                }
                Err(PutError::Store(err)) => return Err(err),
            }
        }
        Err(StoreError::Contention)
    }

    async fn put(
        &self,
        mut next: Connection,
        expected: Option<u64>,
    ) -> Result<Connection, PutError> {
        next.version = expected.map_or(1, |version| version + 1);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&next)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(connectionId)"),
            // An item written without a version (by hand, say) is guarded by its absence.
            Some(0) => request.condition_expression("attribute_not_exists(version)"),
            Some(version) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        let err = match request.send().await {
            Ok(_) => return Ok(next),
            Err(err) => err,
        };
        if let SdkError::ServiceError(service) = &err
            && let PutItemError::ConditionalCheckFailedException(failed) = service.err()
        {
            let stored = failed
                .item()
                .map(from_item)
                .transpose()
                .map_err(PutError::Store)?;
            return Err(PutError::Conflict(stored.map(Box::new)));
        }
        Err(PutError::Store(store_error(err)))
    }

    /// Every stored connection (deleted ones included), read with a paginated, strongly
    /// consistent Scan. For reconciliation only: it compares the whole table with Nango's whole
    /// listing, every few minutes, from one invocation, so reading the whole table is the job
    /// itself: a Scan reads it in 1 MB pages (thousands of items a request), where reading the same
    /// items by key would take one BatchGetItem per 100 and still miss the ones Nango no longer
    /// lists. Read capacity is charged by item size either way. No request path scans.
    pub async fn scan_all(&self) -> Result<Vec<Scanned>, StoreError> {
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
                let connection = from_item(item)
                    .inspect_err(|err| tracing::error!(error = %err, "skipping a malformed item"))
                    .ok()?;
                let absence_checked_at = match item.get(ABSENCE_CHECKED_AT) {
                    Some(AttributeValue::S(at)) => Some(at.clone()),
                    _ => None,
                };
                Some(Scanned {
                    connection,
                    absence_checked_at,
                })
            })
            .collect())
    }

    /// Notes on the item that reconciliation asked Nango about it (`at`), so that the next runs
    /// ask about the others first. Outside the lifecycle: no version bump, no lifecycle event,
    /// and the next lifecycle write drops it (news makes the question moot).
    pub async fn mark_absence_checked(
        &self,
        id: &ConnectionId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("connectionId", AttributeValue::S(id.to_string()))
            .update_expression("SET #checked = :at")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_names("#checked", ABSENCE_CHECKED_AT)
            .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}

/// When reconciliation last asked Nango about a connection missing from its listing.
const ABSENCE_CHECKED_AT: &str = "absenceCheckedAt";

/// A connection as a scan reads it, with reconciliation's own note.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub connection: Connection,
    /// When reconciliation last confirmed with Nango that it still has this connection although
    /// its listing did not show it; `None`: never.
    pub absence_checked_at: Option<String>,
}

enum PutError {
    /// The condition failed; the item as it is stored, if there is one.
    Conflict(Option<Box<Connection>>),
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

/// One stored item, as DynamoDB gives it (also the shape of a stream record's images).
pub type Item = HashMap<String, AttributeValue>;

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
    put("reconnectedAt", connection.reconnected_at.as_deref());
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

/// Decodes a stored item; also used on DynamoDB Streams images (see `events::stream`).
pub fn from_item(item: &Item) -> Result<Connection, StoreError> {
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
        reconnected_at: text("reconnectedAt")?,
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
            reconnected_at: Some("2026-11-26T10:00:01.000Z".into()),
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

/// Fuzz target (see [`crate::fuzzing`]): whatever webhooks say, the item stored fits DynamoDB with
/// room to spare, and reads back as written.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::fuzz;
    use crate::webhook::{self, Notice};

    /// DynamoDB's own count: names and strings in UTF-8 bytes, a number by its digits, a map
    /// 3 bytes plus 1 per entry.
    fn size(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| k.len() + size(v) + 1)
                    .sum::<usize>()
            }
            other => panic!("the store writes no {other:?}"),
        }
    }

    /// A tenth of DynamoDB's 400 KB: "well under", whatever the webhook carried.
    const ITEM_BUDGET: usize = 40 * 1024;

    #[test]
    fn items_from_any_webhooks_fit_and_read_back() {
        fuzz(
            "store item size (webhooks applied in turn)",
            prop::collection::vec(webhook::payload::fuzz::webhook(), 1..5),
            |webhooks| {
                let mut current: Option<Connection> = None;
                for (i, body) in webhooks.iter().enumerate() {
                    let bytes = serde_json::to_vec(body).expect("serializes");
                    let Ok(Notice::Connection(event)) = webhook::parse(&bytes) else {
                        continue;
                    };
                    let now = format!("2026-11-26T10:00:{i:02}.000Z");
                    if let Some(next) = connection::apply(current.as_ref(), &event, &now) {
                        let item = to_item(&next);
                        let bytes: usize = item.iter().map(|(k, v)| k.len() + size(v)).sum();
                        prop_assert!(bytes <= ITEM_BUDGET, "{bytes} bytes");
                        prop_assert_eq!(from_item(&item).ok(), Some(next.clone()));
                        current = Some(next);
                    }
                }
                Ok(())
            },
        );
    }
}
