//! What the rest of the app can subscribe to: events on an Amazon EventBridge bus.
//!
//! Two families, one source ([`SOURCE`]):
//! - connection lifecycle events ([`lifecycle`]), made from the table's DynamoDB Streams records by
//!   the `publish-events` function ([`stream`]): one event per real change of a stored connection,
//!   whatever path wrote it;
//! - Nango's non-auth webhooks ([`nango_webhook`]), verified by the receiver and published with
//!   Nango's body as the detail.
//!
//! The contract (source, detail-types, the detail schema and its version) is documented in the
//! docs/events.md; the names below are part of it and never change meaning.

pub mod lifecycle;
pub mod nango_webhook;
pub mod publisher;
pub mod stream;

pub use publisher::{EventPublisher, PublishError};

/// The `source` of every event this project publishes. EventBridge reserves `aws.*`; a plain
/// project name keeps rules short and says who published.
pub const SOURCE: &str = "nango-connect";

/// The version of the lifecycle events' detail schema, carried in every detail as
/// `schemaVersion`. A change that could break a consumer's rule or parser bumps it; adding a field
/// does not.
pub const SCHEMA_VERSION: u32 = 1;

/// EventBridge's limit for one entry (detail-type, detail, source, resources and 14 bytes for the
/// time): 256 KiB. One `PutEvents` request holds at most 10 entries and 256 KiB in all.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;

/// One event, ready for `PutEvents` (the bus and source are the publisher's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub detail_type: String,
    /// A JSON object, as text.
    pub detail: String,
    /// RFC 3339; the time of the change. `None`: EventBridge stamps the time it received it.
    pub time: Option<String>,
    /// Events with the same key (a connection's id) are published one request after another,
    /// never two in one request, so a partial failure can never let a later one overtake it.
    pub ordering_key: Option<String>,
}

impl Event {
    /// Its size as EventBridge counts it against [`MAX_ENTRY_BYTES`].
    pub fn size(&self) -> usize {
        SOURCE.len() + self.detail_type.len() + self.detail.len() + 14
    }
}
