//! `PutEvents` to the configured bus, in order, in as few requests as EventBridge allows.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{Event, MAX_ENTRIES_PER_REQUEST, MAX_ENTRY_BYTES, SOURCE};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("PutEvents failed: {0}")]
    Unavailable(String),
    /// The bus is missing or we may not put to it: nothing passes until someone fixes the stack.
    #[error("PutEvents refused: the bus is missing or not ours to use: {0}")]
    Misconfigured(String),
    /// EventBridge took the request but not this entry (throttled, internal failure, ...).
    #[error("EventBridge did not take an event: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("an event of {0} bytes is over EventBridge's 256 KiB entry limit")]
    TooLarge(usize),
}

/// EventBridge's codes for a bus that is not there or not ours: no retry fixes them.
const MISCONFIGURED_CODES: [&str; 4] = [
    "ResourceNotFoundException",
    "AccessDeniedException",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
];

impl PublishError {
    /// Whether publishing the same event again may succeed (throttling, a 5xx, no network).
    pub fn is_transient(&self) -> bool {
        match self {
            PublishError::Unavailable(_) => true,
            PublishError::Refused { code, .. } => !MISCONFIGURED_CODES.contains(&code.as_str()),
            PublishError::Misconfigured(_) | PublishError::TooLarge(_) => false,
        }
    }
}

/// How far an in-order publication got: `published` events, from the first, are on the bus;
/// with `error`, the event after them (and any later one) may not be.
#[derive(Debug)]
pub struct Published {
    pub published: usize,
    pub error: Option<PublishError>,
}

#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: Client,
    bus: String,
}

impl EventPublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        EventPublisher {
            client,
            bus: bus.into(),
        }
    }

    /// Every event, or an error.
    pub async fn publish(&self, events: &[Event]) -> Result<(), PublishError> {
        match self.publish_in_order(events).await.error {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }

    /// Publishes in order, one request at a time, and stops at the first event the bus did not
    /// take, so what is retried is that event and those after it. Later entries of the same
    /// request may already be on the bus (delivery is at least once), but never one with the same
    /// ordering key: a connection's events reach the bus in order, a retry repeating at most the
    /// last one.
    pub async fn publish_in_order(&self, events: &[Event]) -> Published {
        let mut published = 0;
        for request in requests(events) {
            if let Some(event) = request.iter().find(|e| e.size() > MAX_ENTRY_BYTES) {
                return Published {
                    published,
                    error: Some(PublishError::TooLarge(event.size())),
                };
            }
            let entries = request.iter().map(|event| self.entry(event)).collect();
            let output = match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) => {
                    let text = DisplayErrorContext(&err).to_string();
                    let misconfigured = err
                        .code()
                        .is_some_and(|code| MISCONFIGURED_CODES.contains(&code));
                    return Published {
                        published,
                        error: Some(if misconfigured {
                            PublishError::Misconfigured(text)
                        } else {
                            PublishError::Unavailable(text)
                        }),
                    };
                }
            };
            // The answer lists one result per entry, in order; a failed one has an error code.
            let results = output.entries();
            for index in 0..request.len() {
                let failed = match results.get(index) {
                    Some(result) => result.error_code().map(|code| PublishError::Refused {
                        code: code.to_owned(),
                        message: result.error_message().unwrap_or_default().to_owned(),
                    }),
                    None => Some(PublishError::Refused {
                        code: "MissingResult".to_owned(),
                        message: "PutEvents answered fewer results than entries".to_owned(),
                    }),
                };
                if let Some(err) = failed {
                    return Published {
                        published,
                        error: Some(err),
                    };
                }
                published += 1;
            }
        }
        Published {
            published,
            error: None,
        }
    }

    fn entry(&self, event: &Event) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .detail(&event.detail)
            .set_time(
                event
                    .time
                    .as_deref()
                    .and_then(|time| DateTime::from_str(time, DateTimeFormat::DateTime).ok()),
            )
            .build()
    }
}

/// Consecutive runs of at most 10 events and 256 KiB (EventBridge's limits for one request), and
/// at most one event per ordering key.
fn requests(events: &[Event]) -> Vec<&[Event]> {
    let mut requests = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, event) in events.iter().enumerate() {
        let same_key = event.ordering_key.is_some()
            && events[start..index]
                .iter()
                .any(|earlier| earlier.ordering_key == event.ordering_key);
        let full = index - start == MAX_ENTRIES_PER_REQUEST
            || bytes + event.size() > MAX_ENTRY_BYTES
            || same_key;
        if full && index > start {
            requests.push(&events[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += event.size();
    }
    if start < events.len() {
        requests.push(&events[start..]);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(bytes: usize) -> Event {
        Event {
            detail_type: "t".into(),
            detail: "x".repeat(bytes),
            time: None,
            ordering_key: None,
        }
    }

    fn of(key: &str) -> Event {
        Event {
            ordering_key: Some(key.into()),
            ..event(10)
        }
    }

    #[test]
    fn a_request_holds_one_event_per_ordering_key() {
        let events = [
            of("a"),
            of("b"),
            of("a"),
            event(10),
            of("b"),
            of("c"),
            of("c"),
        ];
        let keys: Vec<Vec<_>> = requests(&events)
            .iter()
            .map(|r| r.iter().map(|e| e.ordering_key.as_deref()).collect())
            .collect();
        assert_eq!(
            keys,
            [
                vec![Some("a"), Some("b")],
                vec![Some("a"), None, Some("b"), Some("c")],
                vec![Some("c")],
            ]
        );
    }

    #[test]
    fn requests_hold_at_most_ten_events_and_256_kib() {
        let small: Vec<_> = (0..23).map(|_| event(10)).collect();
        let sizes: Vec<_> = requests(&small).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let big: Vec<_> = (0..3).map(|_| event(100 * 1024)).collect();
        let sizes: Vec<_> = requests(&big).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, [2, 1]);
        assert!(requests(&[]).is_empty());
        // One event over the limit still gets a request of its own (and is refused there).
        let sizes: Vec<_> = requests(&[event(10), event(300 * 1024), event(10)])
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, [1, 1, 1]);
    }
}
