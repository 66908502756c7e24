//! DynamoDB Streams records as Lambda delivers them (`{"Records": [...]}`), decoded into the
//! connections they carry, and the partial batch response Lambda reads back.
//!
//! Records are read one by one: a record that cannot be decoded fails alone (reported in
//! `batchItemFailures`, retried, bisected and in the end sent to the dead-letter queue), and never
//! hides the records before it.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connection::Connection;
use crate::store::{self, Item};

/// The event Lambda's DynamoDB event source mapping sends: records of one shard, oldest first.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<Value>,
}

/// What a record says changed. The images are the item before and after (the table's stream view
/// is `NEW_AND_OLD_IMAGES`): `INSERT` has no old image, `REMOVE` no new one.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChange {
    pub old: Option<Connection>,
    pub new: Option<Connection>,
    /// DynamoDB's time to live removed the item (an expired tombstone): housekeeping, not a change
    /// anyone made, so it means nothing to the app.
    pub expired: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not a DynamoDB Streams record: {0}")]
    Shape(String),
    #[error("the {image} image is not a stored connection: {reason}")]
    Image { image: &'static str, reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamData {
    #[serde(default)]
    new_image: Option<HashMap<String, Value>>,
    #[serde(default)]
    old_image: Option<HashMap<String, Value>>,
}

#[derive(Deserialize)]
struct Record {
    dynamodb: StreamData,
    /// Present only on removals by time to live.
    #[serde(rename = "userIdentity", default)]
    user_identity: Option<UserIdentity>,
}

/// Who made the change: DynamoDB Streams names only DynamoDB's own service, on a TTL removal.
#[derive(Deserialize)]
struct UserIdentity {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "principalId", default)]
    principal_id: Option<String>,
}

/// How a removal by time to live is marked (AWS: "Time to Live and DynamoDB Streams").
const TTL_IDENTITY_TYPE: &str = "Service";
const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

impl UserIdentity {
    fn is_time_to_live(&self) -> bool {
        self.kind.as_deref() == Some(TTL_IDENTITY_TYPE)
            && self.principal_id.as_deref() == Some(TTL_PRINCIPAL)
    }
}

/// The record's sequence number: its `itemIdentifier` in a partial batch response. `None` when the
/// record has none (then only failing the whole batch can retry it).
pub fn sequence_number(record: &Value) -> Option<&str> {
    record.get("dynamodb")?.get("SequenceNumber")?.as_str()
}

/// The connection before and after the change the record describes.
pub fn decode(record: &Value) -> Result<StreamChange, RecordError> {
    let Record {
        dynamodb,
        user_identity,
    } = Record::deserialize(record).map_err(|e| RecordError::Shape(e.to_string()))?;
    // Reconciliation's own items (its checkpoint, the ids a pass listed) share the table, under
    // keys no connection can have: they are nobody's news.
    let reserved = |image: &Option<HashMap<String, Value>>| {
        image
            .as_ref()
            .and_then(|attributes| attributes.get("connectionId")?.get("S")?.as_str())
            .is_some_and(store::is_reserved)
    };
    if reserved(&dynamodb.new_image) || reserved(&dynamodb.old_image) {
        return Ok(StreamChange {
            old: None,
            new: None,
            expired: false,
        });
    }
    let connection = |image: &'static str, attributes: Option<HashMap<String, Value>>| {
        attributes
            .map(|attributes| {
                let item = to_item(attributes).map_err(|reason| RecordError::Image {
                    image,
                    reason: reason.clone(),
                })?;
                store::from_item(&item).map_err(|e| RecordError::Image {
                    image,
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    let new = connection("new", dynamodb.new_image)?;
    Ok(StreamChange {
        old: connection("old", dynamodb.old_image)?,
        expired: new.is_none() && user_identity.is_some_and(|who| who.is_time_to_live()),
        new,
    })
}

/// A stream image (DynamoDB's JSON: `{"name": {"S": "..."}}`) as the item the store reads.
fn to_item(attributes: HashMap<String, Value>) -> Result<Item, String> {
    attributes
        .into_iter()
        .map(|(name, value)| {
            let value = attribute(&value).map_err(|reason| format!("{name}: {reason}"))?;
            Ok((name, value))
        })
        .collect()
}

fn attribute(value: &Value) -> Result<AttributeValue, String> {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or("not a typed attribute value")?;
    let (kind, inner) = object.iter().next().ok_or("empty")?;
    let text = || inner.as_str().map(str::to_owned).ok_or("not a string");
    let texts = || {
        inner
            .as_array()
            .ok_or("not a list")?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or("not a string"))
            .collect::<Result<Vec<_>, _>>()
    };
    let blob = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Blob::new)
            .map_err(|_| "not base64")
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("not a boolean")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|t| blob(t)).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or("not a list")?
                .iter()
                .map(attribute)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(to_item(
            inner
                .as_object()
                .ok_or("not a map")?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )?),
        other => return Err(format!("unknown attribute type {other}")),
    })
}

/// Lambda's partial batch response for streams: processing resumes at the lowest sequence number
/// listed; an empty list means the whole batch is done.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connection::Status;

    fn record(old: Option<Value>, new: Option<Value>) -> Value {
        let mut dynamodb = serde_json::json!({
            "Keys": {"connectionId": {"S": "conn-1"}},
            "SequenceNumber": "4421584500000000017450439091",
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": 1764151200.0,
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        serde_json::json!({
            "eventID": "c4ca4238a0b923820dcc509a6f75849b",
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": dynamodb,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/nango-connections/stream/2026-11-26T10:00:00.000",
        })
    }

    fn image(status: &str) -> Value {
        serde_json::json!({
            "connectionId": {"S": "conn-1"},
            "integrationId": {"S": "github"},
            "endUserId": {"S": "user-42"},
            "status": {"S": status},
            "tags": {"M": {"end_user_id": {"S": "user-42"}}},
            "createdAt": {"S": "2026-11-26T10:00:00.000Z"},
            "updatedAt": {"S": "2026-11-26T10:05:00.000Z"},
            "version": {"N": "2"},
        })
    }

    #[test]
    fn both_images_decode_into_connections() {
        let change = decode(&record(Some(image("active")), Some(image("error")))).unwrap();
        assert_eq!(change.old.unwrap().status, Status::Active);
        let new = change.new.unwrap();
        assert_eq!(new.status, Status::Error);
        assert_eq!(new.version, 2);
        assert_eq!(new.tags.get("end_user_id"), Some("user-42"));
    }

    #[test]
    fn an_insert_has_no_old_image() {
        let change = decode(&record(None, Some(image("active")))).unwrap();
        assert!(change.old.is_none() && change.new.is_some());
    }

    #[test]
    fn a_malformed_image_is_an_error_naming_the_image() {
        let mut bad = image("active");
        bad["version"] = serde_json::json!({"N": "two"});
        let err = decode(&record(Some(image("active")), Some(bad))).unwrap_err();
        assert!(err.to_string().contains("new image"), "{err}");
        let untyped = serde_json::json!({"connectionId": "conn-1"});
        assert!(decode(&record(None, Some(untyped))).is_err());
        assert!(decode(&serde_json::json!({"eventName": "INSERT"})).is_err());
    }

    #[test]
    fn reconciliations_own_items_are_no_change_to_a_connection() {
        let checkpoint = json!({"connectionId": {"S": "\u{1}reconcile/checkpoint"},
            "state": {"S": "{}"}, "version": {"N": "2"}});
        let change = decode(&record(Some(checkpoint.clone()), Some(checkpoint.clone()))).unwrap();
        assert_eq!(
            (change.old, change.new, change.expired),
            (None, None, false)
        );
        let listed = json!({"connectionId": {"S": "\u{1}reconcile/listed/p/0"},
            "hashes": {"B": "AAAA"}, "expiresAt": {"N": "1"}});
        let change = decode(&ttl_removal(listed)).unwrap();
        assert_eq!((change.old, change.new), (None, None));
    }

    /// A removal by time to live, as AWS documents it: `REMOVE`, the old image only, and
    /// `userIdentity` naming DynamoDB itself.
    fn ttl_removal(old: Value) -> Value {
        let mut removal = record(Some(old), None);
        removal["eventName"] = json!("REMOVE");
        removal["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        removal
    }

    #[test]
    fn a_removal_by_time_to_live_is_told_from_any_other_removal() {
        let change = decode(&ttl_removal(image("deleted"))).unwrap();
        assert!(change.expired && change.new.is_none());
        assert_eq!(change.old.unwrap().status, Status::Deleted);
        // Removed by someone (an operator's DeleteItem): no userIdentity.
        let mut by_hand = record(Some(image("active")), None);
        by_hand["eventName"] = json!("REMOVE");
        assert!(!decode(&by_hand).unwrap().expired);
        // Another principal, or a write that is not a removal, is not a TTL removal.
        let mut other = ttl_removal(image("deleted"));
        other["userIdentity"]["principalId"] = json!("someone.amazonaws.com");
        assert!(!decode(&other).unwrap().expired);
        let mut written = record(Some(image("active")), Some(image("error")));
        written["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        assert!(!decode(&written).unwrap().expired);
    }

    #[test]
    fn sequence_number_is_the_item_identifier() {
        let record = record(None, Some(image("active")));
        assert_eq!(
            sequence_number(&record),
            Some("4421584500000000017450439091")
        );
        let response = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "42".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "42"}]})
        );
    }
}
