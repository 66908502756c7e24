//! Events: webhooks into DynamoDB Local, the table's real stream records into publish-events, and
//! PutEvents over real HTTP to a wiremock bus that answers as EventBridge does (entry by entry).

use std::sync::{Arc, Mutex};

use nango_connect::connection::{AuthEvent, Change, Observation, Owner};
use nango_connect::events::EventPublisher;
use nango_connect::events::stream::StreamEvent;
use nango_connect::handlers::publish_events::PublishEvents;
use nango_connect::nango::{ConnectionId, IntegrationId, Tags};
use nango_connect::store::{ConnectionStore, Recorded};
use serde_json::{Value, json};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::*;

/// One entry as the bus received it.
#[derive(Debug, Clone)]
struct Received {
    detail_type: String,
    detail: String,
    source: String,
    bus: String,
    /// Which PutEvents request it came in (0, 1, ...).
    request: usize,
}

impl Received {
    fn detail(&self) -> Value {
        serde_json::from_str(&self.detail).unwrap()
    }
}

/// An EventBridge stand-in: takes every entry except those it is told to refuse, and remembers
/// what it took and what it refused.
#[derive(Clone, Default)]
struct Bus {
    taken: Arc<Mutex<Vec<Received>>>,
    refused: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<usize>>,
    /// Refuse entries of this detail-type (as EventBridge refuses one entry of many).
    refuse: Arc<Mutex<Option<String>>>,
}

impl Respond for Bus {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let number = {
            let mut requests = self.requests.lock().unwrap();
            *requests += 1;
            *requests - 1
        };
        let refuse = self.refuse.lock().unwrap().clone();
        let mut failed = 0;
        let results: Vec<Value> = body["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let received = Received {
                    detail_type: entry["DetailType"].as_str().unwrap().to_owned(),
                    detail: entry["Detail"].as_str().unwrap().to_owned(),
                    source: entry["Source"].as_str().unwrap().to_owned(),
                    bus: entry["EventBusName"].as_str().unwrap().to_owned(),
                    request: number,
                };
                if refuse.as_deref() == Some(received.detail_type.as_str()) {
                    failed += 1;
                    self.refused.lock().unwrap().push(received);
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
                } else {
                    self.taken.lock().unwrap().push(received);
                    json!({"EventId": format!("event-{number}")})
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_raw(
            json!({"FailedEntryCount": failed, "Entries": results}).to_string(),
            "application/x-amz-json-1.1",
        )
    }
}

impl Bus {
    async fn start() -> (MockServer, Bus) {
        let server = MockServer::start().await;
        let bus = Bus::default();
        Mock::given(method("POST"))
            .and(header("x-amz-target", "AWSEvents.PutEvents"))
            .respond_with(bus.clone())
            .mount(&server)
            .await;
        (server, bus)
    }

    fn taken(&self) -> Vec<Received> {
        self.taken.lock().unwrap().clone()
    }

    fn types(&self) -> Vec<String> {
        self.taken().into_iter().map(|r| r.detail_type).collect()
    }

    fn refuse(&self, detail_type: Option<&str>) {
        *self.refuse.lock().unwrap() = detail_type.map(str::to_owned);
    }
}

struct Stack {
    store: ConnectionStore,
    table: String,
    server: MockServer,
    bus: Bus,
}

impl Stack {
    async fn start() -> Stack {
        let (client, table) = fresh_table().await;
        let (server, bus) = Bus::start().await;
        Stack {
            store: ConnectionStore::new(client, table.clone()),
            table,
            server,
            bus,
        }
    }

    async fn deliver(&self, body: &str) -> Answer {
        let receiver = webhook_receiver_with_bus(self.store.clone(), &self.server.uri()).await;
        deliver_genuine(&receiver, body).await
    }

    fn publisher(&self) -> PublishEvents {
        PublishEvents::new(EventPublisher::new(
            eventbridge_client(&self.server.uri()),
            BUS_NAME,
        ))
    }

    /// The table's stream records from index `from` on.
    async fn records(&self, from: usize) -> Vec<Value> {
        stream_records(&self.table).await.split_off(from)
    }

    /// Runs publish-events on `records`; the sequence numbers it reports as failed.
    async fn publish(&self, records: Vec<Value>) -> Vec<String> {
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let response = self.publisher().handle(event).await;
        serde_json::to_value(&response).unwrap()["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn sequence(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn override_success(tags: Option<Value>) -> String {
    auth_webhook("override", true, tags, None)
}

fn deletion() -> String {
    auth_webhook("deletion", true, None, None)
}

#[tokio::test]
async fn each_lifecycle_change_publishes_exactly_one_event_and_duplicates_none() {
    let stack = Stack::start().await;
    for body in [
        creation(),
        creation(),
        refresh_failure(Some(owner_tags())),
        refresh_failure(Some(owner_tags())),
        override_success(Some(json!({}))),
        override_success(Some(json!({}))),
        deletion(),
        deletion(),
        creation(),
    ] {
        assert_eq!(stack.deliver(&body).await.status, 200);
    }
    let records = stack.records(0).await;
    assert_eq!(records.len(), 4, "only real changes are written");

    assert_eq!(stack.publish(records).await, Vec::<String>::new());

    assert_eq!(
        stack.bus.types(),
        [
            "connection.connected",
            "connection.failed",
            "connection.reconnected",
            "connection.deleted"
        ]
    );
    let taken = stack.bus.taken();
    assert!(
        taken
            .iter()
            .all(|r| r.source == "nango-connect" && r.bus == BUS_NAME)
    );
    let connected = taken[0].detail();
    assert_eq!(connected["schemaVersion"], 1);
    assert_eq!(connected["connectionId"], CONNECTION_ID);
    assert_eq!(connected["integrationId"], "exa-peer");
    assert_eq!(connected["provider"], "exa");
    assert_eq!(
        connected["owner"],
        json!({"endUserId": "user-42", "organizationId": "org-7"})
    );
    assert_eq!(connected["status"], "active");
    let failed = taken[1].detail();
    assert_eq!(
        failed["error"],
        json!({"type": "refresh_token_external_error", "description": "invalid_grant"})
    );
    assert_eq!(taken[2].detail()["status"], "active");
    assert_eq!(taken[3].detail()["status"], "deleted");
    let versions: Vec<_> = taken
        .iter()
        .map(|r| r.detail()["connectionVersion"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_connection_stored_without_owner_is_connected_when_its_owner_is_learned() {
    let stack = Stack::start().await;
    // Its creation webhook lost or late: a failure without tags is stored, unlisted.
    stack.deliver(&refresh_failure(None)).await;
    stack.deliver(&override_success(None)).await;
    assert_eq!(stack.publish(stack.records(0).await).await.len(), 0);
    assert!(stack.bus.taken().is_empty(), "nobody to tell yet");

    // The late creation names the owner.
    stack.deliver(&creation()).await;
    stack.publish(stack.records(2).await).await;

    assert_eq!(stack.bus.types(), ["connection.connected"]);
    let detail = stack.bus.taken()[0].detail();
    assert_eq!(detail["owner"]["endUserId"], "user-42");
    assert_eq!(detail["status"], "active");
    assert_eq!(detail["connectionVersion"], 3);
}

#[tokio::test]
async fn writes_that_change_only_tags_publish_nothing() {
    let stack = Stack::start().await;
    stack.deliver(&creation()).await;
    // Reconciliation reads Nango's listing: the organization was renamed, nothing else.
    let mut renamed = owner_tags();
    renamed["organization_display_name"] = json!("Acme Renamed");
    let tags = Tags::from_json(Some(renamed));
    let observed = AuthEvent {
        connection_id: ConnectionId::parse(CONNECTION_ID).unwrap(),
        integration_id: IntegrationId::parse("exa-peer").unwrap(),
        provider: None,
        auth_mode: None,
        environment: None,
        owner: Owner::from_tags(&tags),
        tags,
        change: Change::Observed(Observation {
            auth_error: false,
            created_at: None,
            as_of: "2999-01-01T00:00:00.000Z".into(),
        }),
    };
    assert!(matches!(
        stack.store.record(&observed).await.unwrap(),
        Recorded::Written(_)
    ));
    let records = stack.records(0).await;
    assert_eq!(records.len(), 2, "the tags were written");
    stack.publish(records).await;
    assert_eq!(stack.bus.types(), ["connection.connected"]);
}

#[tokio::test]
async fn a_refused_event_fails_its_record_and_the_retry_keeps_each_connections_order() {
    let stack = Stack::start().await;
    stack.deliver(&creation()).await;
    stack.deliver(&refresh_failure(None)).await;
    stack.deliver(&override_success(None)).await;
    let records = stack.records(0).await;
    assert_eq!(records.len(), 3);

    stack.bus.refuse(Some("connection.failed"));
    let failures = stack.publish(records.clone()).await;

    assert_eq!(
        failures,
        [sequence(&records[1])],
        "resume at the refused one"
    );
    assert_eq!(stack.bus.types(), ["connection.connected"]);
    assert!(
        stack.bus.taken().iter().all(|r| r.request == 0),
        "nothing after the refusal was sent"
    );

    // Lambda retries from the failed record on.
    stack.bus.refuse(None);
    let retry: Vec<_> = records[1..].to_vec();
    assert!(stack.publish(retry).await.is_empty());
    assert_eq!(
        stack.bus.types(),
        [
            "connection.connected",
            "connection.failed",
            "connection.reconnected"
        ]
    );
    // One connection's events never share a request: each came after the one before was taken.
    let requests: Vec<_> = stack.bus.taken().iter().map(|r| r.request).collect();
    assert!(requests.windows(2).all(|w| w[0] < w[1]), "{requests:?}");
}

#[tokio::test]
async fn an_unreachable_bus_fails_the_first_record_with_an_event() {
    let stack = Stack::start().await;
    stack.deliver(&creation()).await;
    let records = stack.records(0).await;
    let publisher = PublishEvents::new(EventPublisher::new(
        eventbridge_client("http://127.0.0.1:1"),
        BUS_NAME,
    ));
    let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = serde_json::to_value(publisher.handle(event).await).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": sequence(&records[0])}]})
    );
}

#[tokio::test]
async fn an_unreadable_record_fails_alone_after_the_ones_before_it_are_published() {
    let stack = Stack::start().await;
    stack.deliver(&creation()).await;
    stack.deliver(&refresh_failure(None)).await;
    let mut records = stack.records(0).await;
    records[1]["dynamodb"]["NewImage"]["version"] = json!({"N": "not a number"});

    let failures = stack.publish(records.clone()).await;

    assert_eq!(failures, [sequence(&records[1])]);
    assert_eq!(stack.bus.types(), ["connection.connected"]);
}

#[tokio::test]
async fn events_of_several_connections_are_batched_in_stream_order() {
    let stack = Stack::start().await;
    for n in 0..12 {
        let body = creation().replace(CONNECTION_ID, &format!("connection-{n:02}"));
        assert_eq!(stack.deliver(&body).await.status, 200);
    }
    stack.publish(stack.records(0).await).await;
    let taken = stack.bus.taken();
    let ids: Vec<_> = taken
        .iter()
        .map(|r| r.detail()["connectionId"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<_> = (0..12).map(|n| format!("connection-{n:02}")).collect();
    assert_eq!(ids, expected);
    let requests: Vec<_> = taken.iter().map(|r| r.request).collect();
    assert_eq!(
        requests.iter().filter(|&&r| r == 0).count(),
        10,
        "10 a request"
    );
    assert_eq!(requests.last(), Some(&1));
}

#[tokio::test]
async fn a_sync_webhook_is_published_with_nangos_body_intact() {
    let stack = Stack::start().await;
    let body = r#"{"connectionId":"a2968dec-61fa-4a65-8b14-60bb4a851878","from":"nango","model":"Ticket","modifiedAfter":"2026-11-26T10:00:00.000Z","providerConfigKey":"zendesk","queryTimeStamp":"2026-11-26T10:00:01.000Z","responseResults":{"added":3,"deleted":0,"updated":1},"success":true,"syncName":"tickets","syncType":"INCREMENTAL","type":"sync"}"#;

    let answer = stack.deliver(body).await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, json!({"result": "published"}));
    let taken = stack.bus.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].detail_type, "nango.webhook.sync");
    assert_eq!(taken[0].source, "nango-connect");
    assert_eq!(taken[0].bus, BUS_NAME);
    assert_eq!(taken[0].detail, body, "byte for byte");
    assert!(
        stack.records(0).await.is_empty(),
        "nothing stored for a sync"
    );
}

#[tokio::test]
async fn forward_async_action_and_unknown_types_are_published_as_their_own_type() {
    let stack = Stack::start().await;
    for (body, detail_type) in [
        (
            r#"{"from":"slack","payload":{"event":{"type":"message"}},"type":"forward"}"#,
            "nango.webhook.forward",
        ),
        (
            r#"{"from":"nango","id":"a1","type":"async_action"}"#,
            "nango.webhook.async_action",
        ),
        (
            r#"{"from":"nango","type":"brand_new"}"#,
            "nango.webhook.brand_new",
        ),
    ] {
        assert_eq!(stack.deliver(body).await.status, 200);
        let last = stack.bus.taken().pop().unwrap();
        assert_eq!(last.detail_type, detail_type);
        assert_eq!(last.detail, body);
    }
}

#[tokio::test]
async fn a_webhook_over_the_entry_limit_is_published_without_its_large_fields() {
    let stack = Stack::start().await;
    let payload = "p".repeat(400 * 1024);
    let body = format!(
        r#"{{"connectionId":"c1","from":"slack","payload":{{"text":"{payload}"}},"providerConfigKey":"slack","type":"forward"}}"#
    );
    let answer = stack.deliver(&body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let detail = stack.bus.taken()[0].detail();
    assert_eq!(detail["connectionId"], "c1");
    assert!(detail.get("payload").is_none());
    assert_eq!(detail["nangoConnectTruncated"]["bodyBytes"], body.len());
}

#[tokio::test]
async fn the_bus_failing_answers_503_so_nango_retries() {
    let stack = Stack::start().await;
    let body = r#"{"from":"nango","syncName":"tickets","type":"sync"}"#;
    stack.bus.refuse(Some("nango.webhook.sync"));
    let refused = stack.deliver(body).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "event_bus_unavailable");

    let receiver = webhook_receiver_with_bus(stack.store.clone(), "http://127.0.0.1:1").await;
    let unreachable = deliver(&receiver, body).await;
    assert_eq!(unreachable.status, 503);
    assert_eq!(unreachable.error_code(), "event_bus_unavailable");

    // Nango's retry, once the bus is back, goes through.
    stack.bus.refuse(None);
    assert_eq!(stack.deliver(body).await.status, 200);
    assert_eq!(stack.bus.types(), ["nango.webhook.sync"]);
}

#[tokio::test]
async fn an_unsigned_sync_webhook_is_refused_and_not_published() {
    let stack = Stack::start().await;
    let body = r#"{"from":"nango","type":"sync"}"#;
    let receiver = webhook_receiver_with_bus(stack.store.clone(), &stack.server.uri()).await;
    let request = Event::from(WEBHOOK)
        .body(body)
        .header("X-Nango-Hmac-Sha256", &"0".repeat(64))
        .request();
    assert_eq!(answer(receiver.handle(request).await).status, 401);
    assert!(stack.bus.taken().is_empty());
}

/// A record of the table's real stream, made into a removal by DynamoDB's time to live as AWS
/// delivers one: DynamoDB Local removes expired items on its own schedule and names no one, so the
/// one field AWS adds is added here.
fn as_ttl_removal(mut record: Value) -> Value {
    assert_eq!(record["eventName"], "REMOVE");
    record["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    record
}

#[tokio::test]
async fn removals_by_time_to_live_publish_nothing_and_other_removals_still_do() {
    let stack = Stack::start().await;
    // A connection, then its deletion: a tombstone, and then its removal.
    assert_eq!(stack.deliver(&creation()).await.status, 200);
    let id = nango_connect::nango::ConnectionId::parse(CONNECTION_ID).unwrap();
    let connection = stack.store.get(&id).await.unwrap().unwrap();
    let deletion = nango_connect::connection::AuthEvent::deletion_of(&connection);
    stack.store.record(&deletion).await.unwrap();
    let remove = |id: &str| {
        dynamodb_json(
            "DynamoDB_20120810.DeleteItem",
            json!({"TableName": stack.table, "Key": {"connectionId": {"S": id}}}),
        )
    };
    remove(CONNECTION_ID).await;
    let mut records = stack.records(0).await;
    assert_eq!(records.len(), 3, "INSERT, MODIFY, REMOVE");
    let removal = records.pop().unwrap();
    records.push(as_ttl_removal(removal));
    assert_eq!(stack.publish(records).await, Vec::<String>::new());
    assert_eq!(
        stack.bus.types(),
        ["connection.connected", "connection.deleted"],
        "the deletion once, when it happened"
    );
    let deleted = stack.bus.taken()[1].detail();
    assert_eq!(
        (&deleted["provider"], &deleted["environment"]),
        (&json!("exa"), &json!("dev")),
        "from the connection as it was: the tombstone keeps neither"
    );

    // A listable connection removed outright: by an operator it is a deletion; by the time to
    // live (which only tombstones should ever meet) it is still nothing.
    let other = "b7d3e0f2-1c4a-4e8b-9a6d-5f2c8e1b3a90";
    assert_eq!(
        stack
            .deliver(&creation().replace(CONNECTION_ID, other))
            .await
            .status,
        200
    );
    remove(other).await;
    let records = stack.records(3).await;
    assert_eq!(records.len(), 2, "INSERT, REMOVE");
    let removal = records[1].clone();
    assert_eq!(
        stack.publish(vec![as_ttl_removal(removal.clone())]).await,
        Vec::<String>::new()
    );
    assert_eq!(stack.bus.types().len(), 2, "nothing published");
    stack.publish(vec![removal]).await;
    assert_eq!(stack.bus.types()[2], "connection.deleted");
}

/// A bus that is not there, or not ours, fails every publication until someone fixes the stack: a
/// retry cannot help, and a 5xx would count towards Nango's circuit breaker (5 non-2xx in 10 s drop
/// every delivery, auth webhooks too, for 60 s). So: 200, and an error log line. Throttling stays a
/// 503, which Nango retries.
#[tokio::test]
async fn a_missing_or_forbidden_bus_is_acknowledged_and_throttling_is_retried() {
    let body = r#"{"from":"nango","syncName":"tickets","type":"sync"}"#;
    for (code, status, expected) in [
        (
            "ResourceNotFoundException",
            400,
            json!({"result": "unpublishable"}),
        ),
        (
            "AccessDeniedException",
            400,
            json!({"result": "unpublishable"}),
        ),
        (
            "ThrottlingException",
            400,
            json!({"error": {"code": "event_bus_unavailable", "message": "The webhook could not be published; retry."}}),
        ),
    ] {
        let bus = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("x-amz-target", "AWSEvents.PutEvents"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("x-amzn-errortype", code)
                    .set_body_raw(
                        json!({"__type": code, "message": "refused"}).to_string(),
                        "application/x-amz-json-1.1",
                    ),
            )
            .mount(&bus)
            .await;
        let receiver = webhook_receiver_with_bus(store().await, &bus.uri()).await;
        let answer = deliver(&receiver, body).await;
        assert_eq!(answer.body, expected, "{code}");
    }
}
