//! The connections table in DynamoDB: one item per connection, listed by owner through two
//! global secondary indexes. The request paths never scan; only reconciliation's sweep does, a
//! page at a time (see [`reconciliation`]).
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
//! | `expiresAt`        | N?   | tombstones only: epoch seconds, `deletedAt` + the retention; the table's TTL attribute |
//!
//! Reconciliation keeps its pass's state in the same table under reserved keys that no connection
//! id can take ([`RESERVED_PREFIX`], see [`reconciliation`]).
//!
//! A tombstone (`status = deleted`) keeps only id, integration, owner ids, status, version and
//! dates (see [`connection`]), and expires: DynamoDB's time to live removes it some time after
//! `expiresAt` (within days, not at once), so every read here treats an expired item as gone —
//! [`get`](ConnectionStore::get), the listing, reconciliation's reads and the item
//! a failed conditional put hands back. A write over an expired item is still conditioned on its
//! `version`, and continues it, so the item's versions only grow.
//!
//! Writes are [`connection::apply`] → conditional put on `version`, retried on conflict, so
//! concurrent deliveries of webhooks for one connection never lose an update; see
//! [`ConnectionStore::record`] for why most take a single round trip.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::config::StoreConfig;
use crate::connection::{self, AuthEvent, Connection, Failure, Owner, Status};
use crate::identity::{EndUserId, OrganizationId};
use crate::nango::{ConnectionId, IntegrationId, Tags};

mod listing;
mod memory;
mod reconciliation;

pub use listing::{Cursor, DEFAULT_PAGE_SIZE, InvalidCursor, MAX_PAGE_SIZE, Owners, Page};
pub use reconciliation::{
    Checkpoint, CheckpointError, RESERVED_PREFIX, SWEEP_PAGE_ITEMS, Scanned, SweepPage, Swept,
    is_reserved,
};

pub const BY_END_USER_INDEX: &str = "byEndUser";
pub const BY_ORGANIZATION_INDEX: &str = "byOrganization";
/// The table's time-to-live attribute (`infra/dynamodb/connections-table-ttl.json`, template.yaml).
pub const EXPIRES_AT: &str = "expiresAt";
/// How long a tombstone is kept after the deletion, unless told otherwise.
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

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
    tombstone_retention: Duration,
}

/// What one key holds, as this store reads it.
#[derive(Debug, Clone, Default)]
struct Stored {
    /// The connection, unless there is none or it is an expired tombstone.
    live: Option<Connection>,
    /// The stored item's version, expired or not: what the next write is conditioned on.
    version: Option<u64>,
}

impl Stored {
    fn known(live: Option<Connection>) -> Self {
        Stored {
            version: live.as_ref().map(|c| c.version),
            live,
        }
    }

    fn read(item: Option<&Item>, now: i64) -> Result<Self, StoreError> {
        let Some(item) = item else {
            return Ok(Stored::default());
        };
        let connection = from_item(item)?;
        if is_expired(item, now) {
            return Ok(Stored {
                live: None,
                version: Some(connection.version),
            });
        }
        Ok(Stored::known(Some(connection)))
    }
}

impl ConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ConnectionStore {
            client,
            table: table.into(),
            memory: memory::Memory::default(),
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
        }
    }

    /// The store the functions that write use: table and tombstone retention from the
    /// configuration.
    pub fn from_config(client: Client, config: StoreConfig) -> Self {
        ConnectionStore::new(client, config.table)
            .with_tombstone_retention(config.tombstone_retention)
    }

    /// How long a tombstone is kept after its deletion before DynamoDB's time to live removes it
    /// (default [`DEFAULT_TOMBSTONE_RETENTION`]).
    pub fn with_tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = retention;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The connection stored under `id`; `None` when there is none, or only an expired tombstone.
    pub async fn get(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.read(id).await?.live)
    }

    async fn read(&self, id: &ConnectionId) -> Result<Stored, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Stored::read(output.item.as_ref(), epoch_now())
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
        let (mut stored, mut confirmed) = match read {
            Some(state) => (Stored::known(state), true),
            None => (
                Stored::known(self.memory.recall(&event.connection_id)),
                false,
            ),
        };
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let current = stored.live.as_ref();
            let Some(next) = connection::apply(current, event, &now()) else {
                if confirmed {
                    if let Some(current) = current {
                        self.memory.remember(current);
                    }
                    return Ok(Recorded::Unchanged);
                }
                stored = self.read(&event.connection_id).await?;
                confirmed = true;
                continue;
            };
            match self.put(next, stored.version).await {
                Ok(written) => {
                    // The write was conditioned on `current`, so it is what was stored: the
                    // disagreement is real whether `current` was read or remembered.
                    if let Some((known, named)) = connection::owner_conflict(current, event) {
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
                Err(PutError::Conflict(now_stored)) => {
                    // Someone else wrote first (or our guess was stale): decide again on what is
                    // stored. Back off only if that keeps happening.
                    if attempt > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64))
                            .await;
                    }
                    stored = *now_stored;
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
            .set_item(Some(to_item(&next, self.tombstone_retention)))
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
            let stored = Stored::read(failed.item(), epoch_now()).map_err(PutError::Store)?;
            return Err(PutError::Conflict(Box::new(stored)));
        }
        Err(PutError::Store(store_error(err)))
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

enum PutError {
    /// The condition failed; what is stored now.
    Conflict(Box<Stored>),
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

/// Now, in epoch seconds: the unit of [`EXPIRES_AT`].
fn epoch_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether DynamoDB's time to live may remove `item` already: it has expired, even if it is still
/// there (removal takes up to a few days).
fn is_expired(item: &Item, now: i64) -> bool {
    match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().is_ok_and(|at| at <= now),
        _ => false,
    }
}

/// When a tombstone deleted at `deleted_at` (as [`now`] writes it) expires, in epoch seconds.
fn expires_at(deleted_at: &str, retention: Duration) -> i64 {
    let deleted = OffsetDateTime::parse(deleted_at, &time::format_description::well_known::Rfc3339)
        // Only this store writes the dates; should one not parse, the tombstone still expires.
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    deleted
        .unix_timestamp()
        .saturating_add(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
}

/// One stored item, as DynamoDB gives it (also the shape of a stream record's images).
pub type Item = HashMap<String, AttributeValue>;

fn to_item(connection: &Connection, tombstone_retention: Duration) -> Item {
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
    // Only a tombstone expires; a connection written live again (put replaces the whole item)
    // loses the attribute.
    if connection.status == Status::Deleted {
        let deleted_at = connection
            .deleted_at
            .as_deref()
            .unwrap_or(&connection.updated_at);
        item.insert(
            EXPIRES_AT.to_owned(),
            AttributeValue::N(expires_at(deleted_at, tombstone_retention).to_string()),
        );
    }
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
        let item = to_item(&connection, DEFAULT_TOMBSTONE_RETENTION);
        assert!(!item.contains_key(EXPIRES_AT), "only tombstones expire");
        assert!(
            !item.contains_key("organizationId"),
            "absent owner keeps the item out of the index"
        );
        assert_eq!(from_item(&item).unwrap(), connection);
    }

    #[test]
    fn a_tombstone_expires_its_retention_after_its_deletion() {
        let mut tombstone = Connection {
            id: ConnectionId::parse("c1").unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: None,
            auth_mode: None,
            environment: None,
            owner: Owner::default(),
            tags: Tags::new(),
            status: Status::Deleted,
            error: None,
            created_at: "2026-11-26T10:00:00.000Z".into(),
            updated_at: "2026-11-26T10:00:01.000Z".into(),
            deleted_at: Some("2026-11-26T10:00:01.000Z".into()),
            reconnected_at: None,
            version: 2,
        };
        // 2026-11-26T10:00:01Z is 1795687201 in epoch seconds.
        let item = to_item(&tombstone, Duration::from_secs(7 * 86_400));
        assert_eq!(
            item.get(EXPIRES_AT),
            Some(&AttributeValue::N((1_795_687_201 + 7 * 86_400).to_string()))
        );
        assert_eq!(
            from_item(&item).unwrap(),
            tombstone,
            "the attribute is the store's"
        );
        tombstone.deleted_at = None;
        assert_eq!(
            to_item(&tombstone, DEFAULT_TOMBSTONE_RETENTION).get(EXPIRES_AT),
            Some(&AttributeValue::N(
                (1_795_687_201 + 30 * 86_400).to_string()
            )),
            "without deletedAt, from updatedAt; 30 days by default"
        );
    }

    #[test]
    fn an_item_is_expired_from_its_expiry_on_and_read_as_gone() {
        let mut item = Item::from([(EXPIRES_AT.to_owned(), AttributeValue::N("100".into()))]);
        assert!(!is_expired(&item, 99));
        assert!(is_expired(&item, 100));
        assert!(is_expired(&item, 101));
        item.insert(EXPIRES_AT.to_owned(), AttributeValue::S("100".into()));
        assert!(
            !is_expired(&item, 101),
            "DynamoDB's TTL ignores a non-number"
        );
        item.remove(EXPIRES_AT);
        assert!(!is_expired(&item, i64::MAX));
    }

    #[test]
    fn the_ttl_attribute_is_the_one_the_table_definition_enables() {
        let ttl: serde_json::Value = serde_json::from_str(include_str!(
            "../../infra/dynamodb/connections-table-ttl.json"
        ))
        .unwrap();
        assert_eq!(ttl["TimeToLiveSpecification"]["AttributeName"], EXPIRES_AT);
        assert_eq!(ttl["TimeToLiveSpecification"]["Enabled"], true);
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
                        let item = to_item(&next, DEFAULT_TOMBSTONE_RETENTION);
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
