//! What reconciliation reads and keeps in the connections table, a slice at a time: the stored
//! items for exactly the ids of one page of Nango's listing (BatchGetItem), the table swept in
//! 1 MB Scan pages for connections the listing did not show, and the pass's own state under
//! reserved keys. Never the whole table at once.
//!
//! Reserved keys start with [`RESERVED_PREFIX`], a control character: no [`ConnectionId`] can
//! hold one (`nango::check_id`), so no webhook, listing row or API call can ever name, overwrite or
//! read these items as a connection. They have no `endUserId` or `organizationId`, so neither
//! index lists them; the stream consumer and the sweep skip them ([`is_reserved`]).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::{ABSENCE_CHECKED_AT, ConnectionStore, EXPIRES_AT, Item, StoreError};
use super::{epoch_now, from_item, is_expired, store_error};
use crate::connection::{Connection, Status};
use crate::nango::{ConnectionId, IntegrationId};

/// The first character of every key that is not a connection's.
pub const RESERVED_PREFIX: char = '\u{1}';
/// The one item holding the current pass's state.
const CHECKPOINT_KEY: &str = "\u{1}reconcile/checkpoint";
/// Items a sweep page reads at most: a slice's memory is bounded by this, not by DynamoDB's 1 MB
/// alone (which, with small items, is several thousand).
pub const SWEEP_PAGE_ITEMS: i32 = 1_000;
/// BatchGetItem takes at most 100 keys a request.
const BATCH_GET_KEYS: usize = 100;
/// BatchGetItem may hand keys back unprocessed (throttling); asked again this often, backing off.
const MAX_BATCH_ATTEMPTS: u32 = 6;
/// How long the ids a pass listed are kept: far longer than a pass takes, so that a pass never
/// finds its own evidence gone (and if it did, it would start over rather than guess).
const LISTED_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether a stored key (or stream image) is reconciliation's own, not a connection.
pub fn is_reserved(connection_id: &str) -> bool {
    connection_id.starts_with(RESERVED_PREFIX)
}

/// A stored connection as reconciliation reads it, with its own note.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub connection: Connection,
    /// When reconciliation last confirmed with Nango that it still has this connection although
    /// its listing did not show it; `None`: never.
    pub absence_checked_at: Option<String>,
}

/// What the sweep reads of a stored connection: what decides whether its absence from the
/// listing matters, and in which order absences are asked about.
#[derive(Debug, Clone)]
pub struct Swept {
    pub id: ConnectionId,
    pub integration_id: IntegrationId,
    pub status: Status,
    pub updated_at: String,
    pub absence_checked_at: Option<String>,
}

/// One slice of the sweep: the connections of one Scan page, and where the next one starts.
pub struct SweepPage {
    pub connections: Vec<Swept>,
    /// `None`: the table has been read to its end.
    pub next: Option<String>,
}

/// The pass's state as stored: opaque to the store (reconciliation's JSON), with the version that
/// guards it, so that two runs that overlap never both advance one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub state: String,
    pub version: u64,
}

/// Another run wrote the checkpoint since this one read it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("another run advanced the pass")]
    Overtaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectionStore {
    /// The stored connections (expired tombstones read as absent) among `ids`, strongly consistent,
    /// 100 keys a request, the requests in flight together.
    pub async fn get_many(
        &self,
        ids: &[ConnectionId],
    ) -> Result<HashMap<ConnectionId, Scanned>, StoreError> {
        // BatchGetItem refuses a request that names a key twice.
        let unique: std::collections::BTreeSet<&str> =
            ids.iter().map(ConnectionId::as_str).collect();
        let unique: Vec<&str> = unique.into_iter().collect();
        let mut requests = tokio::task::JoinSet::new();
        for chunk in unique.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk.iter().map(|id| key_item(id)).collect();
            let store = self.clone();
            requests.spawn(async move { store.batch_get(keys).await });
        }
        let now = epoch_now();
        let mut found = HashMap::with_capacity(ids.len());
        while let Some(done) = requests.join_next().await {
            let items = done.map_err(|e| StoreError::Unavailable(e.to_string()))??;
            for item in items.iter().filter(|item| !is_expired(item, now)) {
                let scanned = scanned(item)?;
                found.insert(scanned.connection.id.clone(), scanned);
            }
        }
        Ok(found)
    }

    async fn batch_get(&self, mut keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Rejected(e.to_string()))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(store_error)?;
            if let Some(mut responses) = output.responses {
                items.extend(responses.remove(&self.table).unwrap_or_default());
            }
            keys = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                .map(|left| left.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(items);
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} keys still unprocessed after {MAX_BATCH_ATTEMPTS} attempts",
            keys.len()
        )))
    }

    /// One Scan page (at most [`SWEEP_PAGE_ITEMS`]), strongly consistent, of the attributes that decide an
    /// absence, from `after` (a position a previous page handed back). Reserved items, expired
    /// tombstones and malformed items (logged) are left out.
    pub async fn sweep_page(&self, after: Option<&str>) -> Result<SweepPage, StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(SWEEP_PAGE_ITEMS)
            .projection_expression(
                "connectionId, integrationId, #status, updatedAt, #expires, #checked",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#checked", ABSENCE_CHECKED_AT)
            .set_exclusive_start_key(after.map(key_item))
            .send()
            .await
            .map_err(store_error)?;
        let now = epoch_now();
        let connections = output
            .items
            .unwrap_or_default()
            .iter()
            .filter(|item| !matches!(item.get("connectionId"), Some(AttributeValue::S(k)) if is_reserved(k)))
            .filter(|item| !is_expired(item, now))
            .filter_map(|item| {
                swept(item)
                    .inspect_err(|err| tracing::error!(error = %err, "skipping a malformed item"))
                    .ok()
            })
            .collect();
        let next = output
            .last_evaluated_key
            .and_then(|mut k| k.remove("connectionId"))
            .and_then(|k| k.as_s().ok().cloned());
        Ok(SweepPage { connections, next })
    }

    /// The current pass's state, if any.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("connectionId", AttributeValue::S(CHECKPOINT_KEY.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let state = match item.get("state") {
            Some(AttributeValue::S(state)) => state.clone(),
            _ => {
                return Err(StoreError::Corrupt(
                    "the checkpoint has no state".to_owned(),
                ));
            }
        };
        let version = match item.get("version") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Some(Checkpoint { state, version }))
    }

    /// Saves the pass's state over the version this run read (`None`: there was none); the new
    /// version. Fails with [`CheckpointError::Overtaken`] if another run wrote it since.
    pub async fn save_checkpoint(
        &self,
        state: &str,
        expected: Option<u64>,
    ) -> Result<u64, CheckpointError> {
        let version = expected.map_or(1, |v| v + 1);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("connectionId", AttributeValue::S(CHECKPOINT_KEY.to_owned()))
            .item("state", AttributeValue::S(state.to_owned()))
            .item("version", AttributeValue::N(version.to_string()));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(connectionId)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(version),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(CheckpointError::Overtaken)
            }
            Err(err) => Err(CheckpointError::Store(store_error(err))),
        }
    }

    /// Keeps the (hashed) ids one page of a pass listed, as the `chunk`th record of pass `pass`.
    /// They expire on their own (time to live) well after any pass ends.
    pub async fn save_listed(
        &self,
        pass: &str,
        chunk: u32,
        hashes: &[u8],
    ) -> Result<(), StoreError> {
        let expires = epoch_now() + LISTED_RETENTION.as_secs() as i64;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("connectionId", AttributeValue::S(listed_key(pass, chunk)))
            .item("hashes", AttributeValue::B(Blob::new(hashes)))
            .item(EXPIRES_AT, AttributeValue::N(expires.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// The records [`save_listed`](Self::save_listed) kept for chunks `0..chunks` of pass `pass`,
    /// in any order; `None` if any of them is missing.
    pub async fn listed(
        &self,
        pass: &str,
        chunks: u32,
    ) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let mut found = Vec::with_capacity(chunks as usize);
        let keys: Vec<String> = (0..chunks).map(|chunk| listed_key(pass, chunk)).collect();
        for batch in keys.chunks(BATCH_GET_KEYS) {
            let keys = batch.iter().map(|k| key_item(k)).collect();
            for item in self.batch_get(keys).await? {
                match item.get("hashes") {
                    Some(AttributeValue::B(blob)) => found.push(blob.clone().into_inner()),
                    _ => {
                        return Err(StoreError::Corrupt(
                            "a listed chunk has no hashes".to_owned(),
                        ));
                    }
                }
            }
        }
        Ok((found.len() == chunks as usize).then_some(found))
    }
}

fn key_item(key: &str) -> Item {
    Item::from([("connectionId".to_owned(), AttributeValue::S(key.to_owned()))])
}

fn listed_key(pass: &str, chunk: u32) -> String {
    format!("{RESERVED_PREFIX}reconcile/listed/{pass}/{chunk}")
}

fn swept(item: &Item) -> Result<Swept, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.as_str()),
        _ => Err(StoreError::Corrupt(format!(
            "{name} is missing or not a string"
        ))),
    };
    Ok(Swept {
        id: ConnectionId::parse(text("connectionId")?)
            .map_err(|e| StoreError::Corrupt(format!("connectionId {e}")))?,
        integration_id: IntegrationId::parse(text("integrationId")?)
            .map_err(|e| StoreError::Corrupt(format!("integrationId {e}")))?,
        status: Status::parse(text("status")?)
            .ok_or_else(|| StoreError::Corrupt("status is unknown".to_owned()))?,
        updated_at: text("updatedAt")?.to_owned(),
        absence_checked_at: text(ABSENCE_CHECKED_AT).ok().map(str::to_owned),
    })
}

/// A connection item, with reconciliation's note.
fn scanned(item: &Item) -> Result<Scanned, StoreError> {
    Ok(Scanned {
        connection: from_item(item)?,
        absence_checked_at: match item.get(ABSENCE_CHECKED_AT) {
            Some(AttributeValue::S(at)) => Some(at.clone()),
            _ => None,
        },
    })
}
