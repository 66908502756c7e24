//! A verified Nango webhook that is not about auth (`sync`, `forward`, `async_action`, or a type
//! Nango adds later) → one event whose detail is Nango's body, byte for byte.
//!
//! Nango's bodies can reach the receiver's 1 MB limit; an EventBridge entry holds 256 KiB. A body
//! too big for an entry is not cut mid-way: its event keeps Nango's top-level fields that are
//! plain values (strings up to 1 KiB, numbers, booleans: `type`, `from`, `connectionId`,
//! `providerConfigKey`, `syncName`, `model`, ..., as many as fit in 160 KiB of JSON), drops the
//! rest, and says so under [`TRUNCATED_KEY`] with the body's size and the names of the dropped
//! fields. The receiver logs a warning for each such webhook. The app then reads the full data
//! from Nango's API.

use serde_json::{Map, Value, json};

use super::{Event, MAX_ENTRY_BYTES};

/// Added to the detail of an event whose body was too big; absent otherwise.
pub const TRUNCATED_KEY: &str = "nangoConnectTruncated";

/// Detail-types of this family start with this; then Nango's `type`.
pub const DETAIL_TYPE_PREFIX: &str = "nango.webhook.";

/// Longest string kept in a truncated event's detail.
const MAX_KEPT_STRING: usize = 1024;

/// What a truncated detail may hold, as serialized JSON: the kept fields, then the names of the
/// dropped ones. Counted in bytes of the output, not in fields: JSON escaping can make a short
/// string six times longer, and the whole detail must fit [`MAX_ENTRY_BYTES`] with room to spare.
const KEPT_FIELDS_BUDGET: usize = 160 * 1024;
const DROPPED_NAMES_BUDGET: usize = 32 * 1024;

/// What became of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    Whole,
    /// Too big for an entry: the event carries only the body's plain top-level fields.
    Truncated {
        body_bytes: usize,
    },
}

/// The event for a verified webhook of type `kind` with this `body` (already known to be JSON).
pub fn event(kind: &str, body: &[u8]) -> (Event, Fit) {
    let detail_type = detail_type(kind);
    let whole = match std::str::from_utf8(body) {
        Ok(text) if text.trim_start().starts_with('{') => text.to_owned(),
        // EventBridge wants an object; a signed body that is not one is wrapped, never dropped.
        _ => json!({ "body": serde_json::from_slice::<Value>(body).unwrap_or(Value::Null) })
            .to_string(),
    };
    let event = Event {
        detail_type,
        detail: whole,
        time: None,
        ordering_key: None,
    };
    if event.size() <= MAX_ENTRY_BYTES {
        return (event, Fit::Whole);
    }
    let detail = truncated(body);
    (
        Event { detail, ..event },
        Fit::Truncated {
            body_bytes: body.len(),
        },
    )
}

/// `nango.webhook.<type>` for a type made of letters, digits, `_`, `-` or `.` (every type Nango
/// has used); `nango.webhook.other` for anything else, so a rule's prefix match still sees it.
pub fn detail_type(kind: &str) -> String {
    let plain = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    format!("{DETAIL_TYPE_PREFIX}{}", if plain { kind } else { "other" })
}

fn truncated(body: &[u8]) -> String {
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let serialized = |value: &Value| value.to_string().len();
    let mut kept = Map::new();
    let (mut kept_bytes, mut dropped_bytes) = (0, 0);
    let mut dropped = Vec::new();
    for (name, value) in fields {
        let plain = match &value {
            Value::String(text) => text.len() <= MAX_KEPT_STRING,
            Value::Number(_) | Value::Bool(_) | Value::Null => true,
            Value::Array(_) | Value::Object(_) => false,
        };
        let name_bytes = serialized(&Value::String(name.clone())) + 1;
        // Names are kept short too: a body of a million tiny fields must still fit.
        let field_bytes = name_bytes + serialized(&value) + 1;
        if plain && name.len() <= MAX_KEPT_STRING && kept_bytes + field_bytes <= KEPT_FIELDS_BUDGET
        {
            kept_bytes += field_bytes;
            kept.insert(name, value);
        } else if dropped_bytes + name_bytes <= DROPPED_NAMES_BUDGET {
            dropped_bytes += name_bytes;
            dropped.push(name);
        }
    }
    kept.insert(
        TRUNCATED_KEY.to_owned(),
        json!({
            "reason": "the body is over EventBridge's 256 KiB entry limit",
            "bodyBytes": body.len(),
            "droppedFields": dropped,
        }),
    );
    Value::Object(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: &str = r#"{"connectionId":"c1","from":"nango","model":"Ticket","modifiedAfter":"2026-11-26T10:00:00.000Z","providerConfigKey":"zendesk","queryTimeStamp":"2026-11-26T10:00:01.000Z","responseResults":{"added":3,"deleted":0,"updated":1},"success":true,"syncName":"tickets","syncType":"INCREMENTAL","type":"sync"}"#;

    #[test]
    fn the_detail_is_nangos_body_byte_for_byte() {
        let (event, fit) = event("sync", SYNC.as_bytes());
        assert_eq!(fit, Fit::Whole);
        assert_eq!(event.detail_type, "nango.webhook.sync");
        assert_eq!(event.detail, SYNC);
    }

    #[test]
    fn detail_types_follow_nangos_type() {
        assert_eq!(detail_type("forward"), "nango.webhook.forward");
        assert_eq!(detail_type("async_action"), "nango.webhook.async_action");
        assert_eq!(detail_type("brand_new"), "nango.webhook.brand_new");
        assert_eq!(detail_type("no spaces"), "nango.webhook.other");
        assert_eq!(detail_type(""), "nango.webhook.other");
        assert_eq!(detail_type(&"x".repeat(65)), "nango.webhook.other");
    }

    #[test]
    fn a_body_over_the_entry_limit_keeps_its_plain_fields_and_says_so() {
        let payload = "p".repeat(300 * 1024);
        let body = format!(
            r#"{{"type":"forward","from":"nango","connectionId":"c1","providerConfigKey":"slack","payload":{{"text":"{payload}"}}}}"#
        );
        let (event, fit) = event("forward", body.as_bytes());
        assert_eq!(
            fit,
            Fit::Truncated {
                body_bytes: body.len()
            }
        );
        assert!(event.size() <= MAX_ENTRY_BYTES);
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(detail["connectionId"], "c1");
        assert_eq!(detail["providerConfigKey"], "slack");
        assert_eq!(detail["type"], "forward");
        assert!(detail.get("payload").is_none());
        assert_eq!(detail[TRUNCATED_KEY]["bodyBytes"], body.len());
        assert_eq!(detail[TRUNCATED_KEY]["droppedFields"], json!(["payload"]));
    }

    #[test]
    fn a_truncated_event_fits_however_its_fields_escape() {
        // Names and values at the kept-string limit, each character six bytes once escaped in
        // JSON (`\u0001`): counted in fields rather than bytes, this overflowed the entry.
        let control = "\u{1}".repeat(MAX_KEPT_STRING - 4);
        let mut fields = Map::new();
        for i in 0..400 {
            fields.insert(format!("{control}{i:04}"), json!(control));
        }
        let body = Value::Object(fields).to_string();
        let (event, fit) = event("sync", body.as_bytes());
        assert!(matches!(fit, Fit::Truncated { .. }));
        assert!(event.size() <= MAX_ENTRY_BYTES, "{} bytes", event.size());
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert!(
            detail.as_object().unwrap().len() > 1,
            "some fields are kept"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_wrapped() {
        let (event, _) = event("sync", br#"["sync"]"#);
        assert_eq!(event.detail, r#"{"body":["sync"]}"#);
    }
}
