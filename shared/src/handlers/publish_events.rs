//! The consumer of the connections table's stream: each record that is a real change becomes one
//! lifecycle event, published in stream order.
//!
//! A removal by DynamoDB's time to live (an expired tombstone) publishes nothing: the deletion was
//! published when it happened.
//!
//! Lambda's event source mapping hands over one shard's records, oldest first, and DynamoDB
//! Streams keeps all records of one item in one shard, in order. The answer is a partial batch
//! response naming the first record not done (one that cannot be decoded, or whose event the bus
//! did not take): Lambda retries from there, bisecting and in the end sending the batch's
//! description to the dead-letter queue. Nothing after that record is published in this
//! invocation, so a connection's events never overtake each other.

use serde_json::Value;

use crate::bootstrap::InitError;
use crate::config::{EventsConfig, Source};
use crate::events::stream::{self, BatchResponse, ItemFailure, StreamEvent};
use crate::events::{Event, EventPublisher, lifecycle};
use crate::metrics::Metric;

pub struct PublishEvents {
    publisher: EventPublisher,
}

impl PublishEvents {
    pub fn new(publisher: EventPublisher) -> Self {
        PublishEvents { publisher }
    }

    pub fn from_env(
        source: &impl Source,
        eventbridge: aws_sdk_eventbridge::Client,
    ) -> Result<Self, InitError> {
        let config = EventsConfig::from_source(source)?;
        Ok(PublishEvents::new(EventPublisher::new(
            eventbridge,
            config.bus_name,
        )))
    }

    pub async fn handle(&self, event: StreamEvent) -> BatchResponse {
        // The events of the records up to the first one that cannot be decoded, each beside the
        // record it came from.
        let mut sources: Vec<&Value> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut undecodable = None;
        for record in &event.records {
            match stream::decode(record) {
                // The time to live removing an expired tombstone: the deletion was published when
                // it happened, and this is no news (nor is any other TTL removal: only tombstones
                // carry an expiry).
                Ok(change) if change.expired => {}
                Ok(change) => {
                    if let Some(event) = lifecycle::event(change.old.as_ref(), change.new.as_ref())
                    {
                        sources.push(record);
                        events.push(event);
                    }
                }
                Err(err) => {
                    tracing::error!(
                        sequence_number = stream::sequence_number(record).unwrap_or(""),
                        error = %err,
                        "a stream record cannot be read; it will be retried, then sent to the dead-letter queue"
                    );
                    undecodable = Some(record);
                    break;
                }
            }
        }

        let published = self.publisher.publish_in_order(&events).await;
        let failed = match published.error {
            Some(err) => {
                // The record whose event was the first not taken.
                let record = sources.get(published.published).copied();
                tracing::error!(
                    published = published.published,
                    of = events.len(),
                    error = %err,
                    "the event bus did not take every event; the rest of the batch will be retried"
                );
                record
            }
            None => undecodable,
        };
        tracing::info!(
            records = event.records.len(),
            events = published.published,
            "stream batch"
        );
        Metric::EventsPublished.add(published.published as u64);
        Metric::EventsFailed.add((events.len() - published.published) as u64);
        Metric::StreamRecordsUnreadable.add(u64::from(undecodable.is_some()));
        match failed {
            None => BatchResponse::default(),
            Some(record) => BatchResponse {
                batch_item_failures: vec![ItemFailure {
                    // Without a sequence number Lambda cannot resume mid-batch: an empty
                    // identifier fails the whole batch, which is retried the same way.
                    item_identifier: stream::sequence_number(record).unwrap_or("").to_owned(),
                }],
            },
        }
    }
}
