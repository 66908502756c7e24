//! Test harness: real DynamoDB (DynamoDB Local, started by `scripts/test`), Nango faked over real
//! HTTP with wiremock, and handlers driven with recorded API Gateway / function URL events. Every
//! handler is wrapped in [`Checked`], so every answer is checked against `openapi.yaml`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use lambda_http::{Body, Request, Response};
use nango_connect::access::OrganizationAccess;
use nango_connect::config::{AllowedIntegrations, ClaimNames, NangoConfig, NangoTimeouts};
use nango_connect::confirmation::Confirmer;
use nango_connect::events::EventPublisher;
use nango_connect::handlers::create_session::CreateSession;
use nango_connect::handlers::delete_connection::DeleteConnection;
use nango_connect::handlers::list_connections::ListConnections;
use nango_connect::handlers::reconnect_session::ReconnectSession;
use nango_connect::handlers::webhook_receiver::WebhookReceiver;
use nango_connect::nango::NangoClient;
use nango_connect::rate_limit::Buckets;
use nango_connect::store::ConnectionStore;
use nango_connect::transport::{self, Tls};
use nango_connect::webhook::{SigningKeys, signature};
use serde_json::{Value, json};

use crate::contract::{self, Sent};

pub const SECRET_KEY: &str = "6c1b4e2a-9f3d-4a7e-8b5c-2d0e1f3a4b5c";
pub const SIGNING_KEY: &str = "webhook-signing-key";
pub const CONNECTION_ID: &str = "a2968dec-61fa-4a65-8b14-60bb4a851878";

pub const POST_SESSIONS: &str = include_str!("../fixtures/apigw-v2-post-sessions.json");
pub const POST_RECONNECT: &str = include_str!("../fixtures/apigw-v2-post-sessions-reconnect.json");
pub const GET_CONNECTIONS: &str = include_str!("../fixtures/apigw-v2-get-connections.json");
pub const DELETE_CONNECTION: &str = include_str!("../fixtures/apigw-v2-delete-connection.json");
pub const WEBHOOK: &str = include_str!("../fixtures/function-url-webhook.json");
const TABLE_DEFINITION: &str = include_str!("../../../infra/dynamodb/connections-table.json");
const TABLE_TTL: &str = include_str!("../../../infra/dynamodb/connections-table-ttl.json");
const RATE_LIMIT_TABLE_DEFINITION: &str =
    include_str!("../../../infra/dynamodb/rate-limit-table.json");

/// Where `scripts/test` started DynamoDB Local. Integration tests need it: they fail, never skip.
pub fn dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect(
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run the tests with scripts/test, which starts DynamoDB Local",
    )
}

/// A plain HTTP client on the process's one TLS configuration (reqwest has no default provider).
pub fn http_client() -> reqwest::Client {
    Tls::new().client_builder().build().expect("client")
}

/// The AWS SDK's HTTP client as the functions build it.
pub fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let http = transport::aws_reqwest_client(&Tls::new(), Duration::from_secs(1)).expect("client");
    transport::aws_http_client(http)
}

/// A DynamoDB client as the functions build it: the SDK sending through our HTTP client.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .http_client(aws_http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A client for a DynamoDB that is not there: nothing listens on port 1.
pub fn unreachable_dynamodb() -> aws_sdk_dynamodb::Client {
    dynamodb_client("http://127.0.0.1:1")
}

/// A new, empty table made from `infra/dynamodb/connections-table.json`, with the time to live of
/// `connections-table-ttl.json`, so the tests prove the code and the table definition agree.
pub async fn fresh_table() -> (aws_sdk_dynamodb::Client, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "connections-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut definition: Value = serde_json::from_str(TABLE_DEFINITION).expect("table JSON");
    definition["TableName"] = json!(name);
    // The definition is CreateTable's own JSON input, so it goes to DynamoDB as it is.
    dynamodb_json("DynamoDB_20120810.CreateTable", definition).await;
    // CreateTable's input cannot carry a time to live: it is a call of its own, as in AWS.
    let mut ttl: Value = serde_json::from_str(TABLE_TTL).expect("TTL JSON");
    ttl["TableName"] = json!(name);
    dynamodb_json("DynamoDB_20120810.UpdateTimeToLive", ttl).await;
    (dynamodb_client(&dynamodb_endpoint()), name)
}

/// A fresh token-bucket table (infra/dynamodb/rate-limit-table.json) in DynamoDB Local.
pub async fn fresh_rate_limit_table() -> Buckets {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "rate-limits-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut definition: Value =
        serde_json::from_str(RATE_LIMIT_TABLE_DEFINITION).expect("table JSON");
    definition["TableName"] = json!(name);
    dynamodb_json("DynamoDB_20120810.CreateTable", definition).await;
    Buckets::new(dynamodb_client(&dynamodb_endpoint()), name)
}

/// Every connection item of the store's table, read whole (reconciliation's own items left out):
/// what a test compares before and after. The code under test never reads a table this way.
pub async fn stored_connections(
    store: &ConnectionStore,
) -> Vec<nango_connect::connection::Connection> {
    let items: Vec<_> = dynamodb_client(&dynamodb_endpoint())
        .scan()
        .table_name(store.table())
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .expect("the table scans");
    items
        .iter()
        .filter(|item| {
            !item
                .get("connectionId")
                .and_then(|k| k.as_s().ok())
                .is_some_and(|k| nango_connect::store::is_reserved(k))
        })
        .map(|item| nango_connect::store::from_item(item).expect("a connection item"))
        .collect()
}

/// The ids reconciliation's sweep reads, page after page (expired tombstones left out).
pub async fn swept_ids(store: &ConnectionStore) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .sweep_page(after.as_deref())
            .await
            .expect("the table sweeps");
        ids.extend(page.connections.into_iter().map(|c| c.id.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

pub async fn store() -> ConnectionStore {
    let (client, table) = fresh_table().await;
    ConnectionStore::new(client, table)
}

/// Short bounds so that timeout and retry tests take a second, not ten.
pub fn fast_timeouts() -> NangoTimeouts {
    NangoTimeouts {
        connect: Duration::from_millis(200),
        attempt: Duration::from_millis(400),
        budget: Duration::from_millis(1500),
        max_attempts: 4,
        first_backoff: Duration::from_millis(20),
    }
}

pub fn nango_client(host: &str, timeouts: NangoTimeouts) -> NangoClient {
    let mut config =
        NangoConfig::from_source(&[("NANGO_HOST", host), ("NANGO_SECRET_KEY", SECRET_KEY)])
            .expect("valid config");
    config.timeouts = timeouts;
    NangoClient::new(&config, &Tls::new()).expect("client")
}

/// A Lambda handler of the shared crate.
pub trait Handler {
    fn handle(&self, request: Request) -> impl Future<Output = Response<Body>> + Send;
}

macro_rules! handlers {
    ($($handler:ty),*) => {$(
        impl Handler for $handler {
            fn handle(&self, request: Request) -> impl Future<Output = Response<Body>> + Send {
                <$handler>::handle(self, request)
            }
        }
    )*};
}
handlers!(
    CreateSession,
    ReconnectSession,
    ListConnections,
    DeleteConnection,
    WebhookReceiver
);

/// A handler whose every answer must be one `openapi.yaml` describes (see `contract.rs`); the
/// test fails where an answer is not.
pub struct Checked<H>(pub H);

impl<H: Handler> Checked<H> {
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let sent = Sent::of(&request);
        let response = self.0.handle(request).await;
        contract::assert_described(&sent, &response);
        response
    }
}

pub fn create_session_with(nango_host: &str, timeouts: NangoTimeouts) -> Checked<CreateSession> {
    Checked(CreateSession::new(
        nango_client(nango_host, timeouts),
        ClaimNames::default(),
        AllowedIntegrations::default(),
    ))
}

pub fn create_session(nango_host: &str, allowed: Option<&str>) -> Checked<CreateSession> {
    let allowed = match allowed {
        Some(list) => AllowedIntegrations::from_source(&[("NANGO_ALLOWED_INTEGRATIONS", list)]),
        None => AllowedIntegrations::from_source(&[]),
    };
    Checked(CreateSession::new(
        nango_client(nango_host, fast_timeouts()),
        ClaimNames::default(),
        allowed.expect("valid list"),
    ))
}

pub fn reconnect_session(nango_host: &str, store: ConnectionStore) -> Checked<ReconnectSession> {
    reconnect_session_under(nango_host, store, OrganizationAccess::Shared)
}

pub fn reconnect_session_under(
    nango_host: &str,
    store: ConnectionStore,
    policy: OrganizationAccess,
) -> Checked<ReconnectSession> {
    reconnect_session_allowing(nango_host, store, policy, AllowedIntegrations::default())
}

pub fn reconnect_session_allowing(
    nango_host: &str,
    store: ConnectionStore,
    policy: OrganizationAccess,
    allowed: AllowedIntegrations,
) -> Checked<ReconnectSession> {
    Checked(ReconnectSession::new(
        nango_client(nango_host, fast_timeouts()),
        store,
        ClaimNames::default(),
        policy,
        allowed,
    ))
}

pub fn list_connections(store: ConnectionStore) -> Checked<ListConnections> {
    list_connections_under(store, OrganizationAccess::Shared)
}

pub fn list_connections_under(
    store: ConnectionStore,
    policy: OrganizationAccess,
) -> Checked<ListConnections> {
    Checked(ListConnections::new(store, ClaimNames::default(), policy))
}

/// A receiver, and the Nango it confirms webhooks with.
pub struct Receiver {
    pub checked: Checked<WebhookReceiver>,
    /// Nango's truth: it has the test connection ([`CONNECTION_ID`], `exa-peer`, owned by
    /// [`owner_tags`]) until a test says otherwise.
    pub nango: FakeNango,
}

/// What webhooks can be delivered to: a receiver, with or without its Nango.
pub trait Receives {
    fn receiver(&self) -> &Checked<WebhookReceiver>;
    /// The Nango it confirms with, when the test holds it.
    fn nango(&self) -> Option<&FakeNango> {
        None
    }
}

impl Receives for Checked<WebhookReceiver> {
    fn receiver(&self) -> &Checked<WebhookReceiver> {
        self
    }
}

impl Receives for Receiver {
    fn receiver(&self) -> &Checked<WebhookReceiver> {
        &self.checked
    }
    fn nango(&self) -> Option<&FakeNango> {
        Some(&self.nango)
    }
}

impl<R: Receives> Receives for std::sync::Arc<R> {
    fn receiver(&self) -> &Checked<WebhookReceiver> {
        self.as_ref().receiver()
    }
    fn nango(&self) -> Option<&FakeNango> {
        self.as_ref().nango()
    }
}

impl std::ops::Deref for Receiver {
    type Target = Checked<WebhookReceiver>;
    fn deref(&self) -> &Self::Target {
        &self.checked
    }
}

/// A receiver whose event bus is unreachable: auth webhooks never publish from the receiver (their
/// events come from the table's stream), so every auth test also proves that (a publish would 503).
pub async fn webhook_receiver(store: ConnectionStore) -> Receiver {
    webhook_receiver_with_bus(store, "http://127.0.0.1:1").await
}

pub async fn webhook_receiver_with_bus(store: ConnectionStore, bus_endpoint: &str) -> Receiver {
    let nango = FakeNango::start().await;
    nango.add(CONNECTION_ID, "exa-peer", owner_tags());
    Receiver {
        checked: receiver_confirming_with(
            store,
            &nango.uri(),
            bus_endpoint,
            SigningKeys::fixed(vec![SIGNING_KEY.into()]),
        ),
        nango,
    }
}

/// A receiver on `keys` that confirms with `nango`, with short lag waits.
pub fn receiver_confirming_with(
    store: ConnectionStore,
    nango_host: &str,
    bus_endpoint: &str,
    keys: SigningKeys,
) -> Checked<WebhookReceiver> {
    Checked(WebhookReceiver::new(
        keys,
        store,
        EventPublisher::new(eventbridge_client(bus_endpoint), BUS_NAME),
        confirmer(nango_host),
    ))
}

/// Nango's answer to `POST /connect/sessions` (and `/reconnect`): a session.
pub fn session_created() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(201).set_body_json(json!({
        "data": {
            "token": "nango_connect_session_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "connect_link": "https://connect.nango.dev/?session_token=nango_connect_session_0123",
            "expires_at": "2026-11-26T18:35:00.000Z"
        }
    }))
}

/// A wiremock Nango answering every `POST path` with `answer`.
pub async fn nango_answering(
    path: &str,
    answer: wiremock::ResponseTemplate,
) -> wiremock::MockServer {
    let nango = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(path))
        .respond_with(answer)
        .mount(&nango)
        .await;
    nango
}

/// Where no Nango listens.
pub const UNREACHABLE_NANGO: &str = "http://127.0.0.1:1";

/// A confirmer on `nango_host` with the test timeouts and short lag waits (tens of ms).
pub fn confirmer(nango_host: &str) -> Confirmer {
    Confirmer::new(nango_client(nango_host, fast_timeouts()))
        .with_timing(LAG_WAITS.to_vec(), Duration::from_secs(3))
}

pub const LAG_WAITS: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(60)];

/// Nango's exact lookup, `GET /connections?connectionId=&integrationId=&limit=`, over real HTTP,
/// answered from the live connections a test sets: what Nango really has, whatever a webhook says.
/// `GET /connections/{id}` (which reads and may refresh credentials) fails the test if called.
#[derive(Clone)]
pub struct FakeNango {
    server: std::sync::Arc<wiremock::MockServer>,
    live: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl FakeNango {
    pub async fn start() -> Self {
        let server = wiremock::MockServer::start().await;
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path("/connections"))
            .respond_with(ExactLookup(live.clone()))
            .mount(&server)
            .await;
        wiremock::Mock::given(wiremock::matchers::path_regex("^/connections/.+"))
            .respond_with(wiremock::ResponseTemplate::new(500))
            .expect(0)
            .named("GET /connections/{id} (never: it may refresh credentials)")
            .mount(&server)
            .await;
        FakeNango {
            server: std::sync::Arc::new(server),
            live,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Nango has this live connection, tagged `tags`.
    pub fn add(&self, connection_id: &str, integration_id: &str, tags: Value) {
        self.remove(connection_id);
        self.live.lock().unwrap().push(json!({
            "id": 1, "connection_id": connection_id, "provider_config_key": integration_id,
            "provider": "exa", "errors": [], "end_user": null, "tags": tags, "metadata": {},
            "created": "2026-11-26T10:00:00.000+00:00",
        }));
    }

    /// Nango has it, but its whole listing misses it every time (as when rows shift while paging):
    /// only the exact lookup finds it.
    pub fn add_hidden_from_listing(&self, connection_id: &str, integration_id: &str, tags: Value) {
        self.add(connection_id, integration_id, tags);
        self.mark(connection_id, "hidden_from_listing", json!(true));
    }

    /// Nango has it, but its replica shows it only from the `lookups + 1`th exact lookup on.
    pub fn add_lagging(
        &self,
        connection_id: &str,
        integration_id: &str,
        tags: Value,
        lookups: u64,
    ) {
        self.add(connection_id, integration_id, tags);
        self.mark(connection_id, "lagging_lookups", json!(lookups + 1));
    }

    /// Sets a field of the row that only this fake reads (it never reaches an answer).
    fn mark(&self, connection_id: &str, field: &str, value: Value) {
        if let Some(row) = self
            .live
            .lock()
            .unwrap()
            .iter_mut()
            .find(|row| row["connection_id"] == connection_id)
        {
            row[field] = value;
        }
    }

    /// Nango no longer has it.
    pub fn remove(&self, connection_id: &str) {
        self.live
            .lock()
            .unwrap()
            .retain(|row| row["connection_id"] != connection_id);
    }

    /// What Nango would have after writing this auth webhook itself.
    pub fn agree_with(&self, body: &str) {
        let Ok(webhook) = serde_json::from_str::<Value>(body) else {
            return;
        };
        let id = webhook["connectionId"].as_str().unwrap_or_default();
        match webhook["operation"].as_str() {
            Some("creation") if webhook["success"] == true => self.add(
                id,
                webhook["providerConfigKey"].as_str().unwrap_or_default(),
                webhook.get("tags").cloned().unwrap_or(json!({})),
            ),
            Some("deletion") => self.remove(id),
            _ => {}
        }
    }

    /// Lookups received so far.
    pub async fn lookups(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/connections")
            .count()
    }
}

struct ExactLookup(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl wiremock::Respond for ExactLookup {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let query: std::collections::HashMap<String, String> =
            request.url.query_pairs().into_owned().collect();
        // Without `limit` Nango answers 10,000 rows: we must always send it.
        let Some(limit) = query.get("limit").and_then(|l| l.parse::<usize>().ok()) else {
            return wiremock::ResponseTemplate::new(400).set_body_json(
                json!({"error": {"code": "invalid_query_params", "message": "limit is required here"}}),
            );
        };
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let mut live = self.0.lock().unwrap();
        // A replica behind a write: the row is missing from the next few exact lookups.
        if let Some(id) = query.get("connectionId") {
            for row in live
                .iter_mut()
                .filter(|row| row["connection_id"] == id.as_str())
            {
                if let Some(lag) = row.get("lagging_lookups").and_then(Value::as_u64) {
                    row["lagging_lookups"] = json!(lag.saturating_sub(1));
                }
            }
        }
        let rows: Vec<Value> = live
            .iter()
            .filter(|row| {
                row.get("lagging_lookups")
                    .and_then(Value::as_u64)
                    .is_none_or(|lag| lag == 0)
                    || !query.contains_key("connectionId")
            })
            .filter(|row| match query.get("connectionId") {
                Some(id) => row["connection_id"] == id.as_str(),
                // The whole listing misses what a test hid from it (rows shifting while paging).
                None => row.get("hidden_from_listing").is_none(),
            })
            .filter(|row| {
                query
                    .get("integrationId")
                    .is_none_or(|i| row["provider_config_key"] == i.as_str())
            })
            .skip(page * limit)
            .take(limit)
            .map(|row| {
                let mut row = row.clone();
                row.as_object_mut().unwrap().remove("hidden_from_listing");
                row.as_object_mut().unwrap().remove("lagging_lookups");
                row
            })
            .collect();
        wiremock::ResponseTemplate::new(200).set_body_json(json!({ "connections": rows }))
    }
}

pub const BUS_NAME: &str = "test-bus";

pub fn eventbridge_client(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .http_client(aws_http_client())
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "local", "local", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

/// The records of `table`'s stream in DynamoDB Local, oldest first, in Lambda's event shape.
pub async fn stream_records(table: &str) -> Vec<Value> {
    let described = dynamodb_json(
        "DynamoDB_20120810.DescribeTable",
        json!({"TableName": table}),
    )
    .await;
    let arn = described["Table"]["LatestStreamArn"]
        .as_str()
        .expect("the table definition enables the stream")
        .to_owned();
    let stream = dynamodb_json(
        "DynamoDBStreams_20120810.DescribeStream",
        json!({"StreamArn": arn}),
    )
    .await;
    let mut records = Vec::new();
    for shard in stream["StreamDescription"]["Shards"].as_array().unwrap() {
        let iterator = dynamodb_json(
            "DynamoDBStreams_20120810.GetShardIterator",
            json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await;
        let mut iterator = iterator["ShardIterator"].clone();
        while iterator.is_string() {
            let page = dynamodb_json(
                "DynamoDBStreams_20120810.GetRecords",
                json!({"ShardIterator": iterator}),
            )
            .await;
            let batch = page["Records"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for mut record in batch {
                record["eventSourceARN"] = json!(arn);
                records.push(record);
            }
            iterator = page["NextShardIterator"].clone();
        }
    }
    records
}

/// One DynamoDB API call in its own JSON form (DynamoDB Local checks no signature); fails the test
/// unless it succeeds.
pub async fn dynamodb_json(target: &str, body: Value) -> Value {
    let response = http_client()
        .post(dynamodb_endpoint())
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .expect("DynamoDB Local answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{target} failed: {answer}");
    answer
}

/// A recorded event, edited before it becomes a request.
pub struct Event(Value);

impl Event {
    pub fn from(fixture: &str) -> Self {
        Event(serde_json::from_str(fixture).expect("fixture is JSON"))
    }

    pub fn body(mut self, body: &str) -> Self {
        self.0["body"] = json!(body);
        self.0["isBase64Encoded"] = json!(false);
        self.0["headers"]["content-length"] = json!(body.len().to_string());
        self
    }

    pub fn no_body(mut self) -> Self {
        if let Some(event) = self.0.as_object_mut() {
            event.remove("body");
        }
        if let Some(headers) = self.0["headers"].as_object_mut() {
            headers.remove("content-length");
        }
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = json!(value);
        self
    }

    pub fn without_header(mut self, name: &str) -> Self {
        if let Some(headers) = self.0["headers"].as_object_mut() {
            headers.remove(name);
        }
        self
    }

    pub fn path_parameter(mut self, name: &str, value: &str) -> Self {
        self.0["pathParameters"][name] = json!(value);
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.0["queryStringParameters"][name] = json!(value);
        let raw: Vec<String> = self.0["queryStringParameters"]
            .as_object()
            .map(|params| {
                params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        self.0["rawQueryString"] = json!(raw.join("&"));
        self
    }

    /// A parameter given more than once, as API Gateway hands it over: joined with commas in
    /// `queryStringParameters`, repeated in `rawQueryString` (which lambda_http reads).
    pub fn repeated_query(mut self, name: &str, values: &[&str]) -> Self {
        self.0["queryStringParameters"][name] = json!(values.join(","));
        let raw: Vec<String> = values.iter().map(|v| format!("{name}={v}")).collect();
        self.0["rawQueryString"] = json!(raw.join("&"));
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.0["requestContext"]["http"]["method"] = json!(method);
        self
    }

    /// Replaces the verified JWT claims; `None` removes the authorizer entirely.
    pub fn claims(mut self, claims: Option<Value>) -> Self {
        match claims {
            Some(claims) => self.0["requestContext"]["authorizer"]["jwt"]["claims"] = claims,
            None => {
                if let Some(context) = self.0["requestContext"].as_object_mut() {
                    context.remove("authorizer");
                }
            }
        }
        self
    }

    pub fn raw(&self) -> &Value {
        &self.0
    }

    pub fn request(&self) -> Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("a valid Lambda HTTP event")
    }
}

/// `GET /connections` as the given caller.
pub fn list_as(end_user_id: &str, organization_id: Option<&str>) -> Request {
    Event::from(GET_CONNECTIONS)
        .claims(Some(claims(end_user_id, organization_id)))
        .request()
}

/// A webhook event whose `X-Nango-Hmac-Sha256` is right for `body`.
pub fn signed_webhook(body: &str) -> Request {
    Event::from(WEBHOOK)
        .body(body)
        .header("X-Nango-Hmac-Sha256", &sign(body))
        .request()
}

/// Delivers a correctly signed webhook with `body` to `receiver`.
pub async fn deliver(receiver: &impl Receives, body: &str) -> Answer {
    let receiver = receiver.receiver();
    answer(receiver.handle(signed_webhook(body)).await)
}

/// Delivers a webhook Nango wrote itself: Nango agrees with it (see [`FakeNango::agree_with`]).
pub async fn deliver_genuine(receiver: &impl Receives, body: &str) -> Answer {
    if let Some(nango) = receiver.nango() {
        nango.agree_with(body);
    }
    deliver(receiver, body).await
}

/// A setup step: delivers a webhook that must be stored, and fails the test right here if not.
/// Nango agrees with it first (a creation: Nango lists the connection with the webhook's tags; a
/// deletion: Nango no longer does), as it would with a webhook it wrote itself.
pub async fn given(receiver: &impl Receives, body: &str) -> Answer {
    let answer = deliver_genuine(receiver, body).await;
    assert_eq!(
        (answer.status, answer.body["result"].as_str()),
        (200, Some("stored")),
        "setup webhook was not stored: {body}"
    );
    answer
}

/// The creation webhook of user-42's connection (org-7).
pub fn creation() -> String {
    auth_webhook("creation", true, Some(owner_tags()), None)
}

/// A refresh failure (`invalid_grant`), with these tags or none.
pub fn refresh_failure(tags: Option<Value>) -> String {
    auth_webhook(
        "refresh",
        false,
        tags,
        Some(("refresh_token_external_error", "invalid_grant")),
    )
}

pub fn sign(body: &str) -> String {
    hex::encode(signature::sign(SIGNING_KEY.as_bytes(), body.as_bytes()))
}

pub fn claims(end_user_id: &str, organization_id: Option<&str>) -> Value {
    let mut claims = json!({
        "sub": end_user_id,
        "iss": "https://issuer.example.com",
        "aud": "app-client-id",
    });
    if let Some(organization_id) = organization_id {
        claims["org_id"] = json!(organization_id);
    }
    claims
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub response: Response<Body>,
}

pub fn answer(response: Response<Body>) -> Answer {
    let body: &[u8] = response.body().as_ref();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).expect("every answer is JSON")
    };
    Answer {
        status: response.status().as_u16(),
        body,
        response,
    }
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// An auth webhook body in Nango's form: compact JSON.
pub fn auth_webhook(
    operation: &str,
    success: bool,
    tags: Option<Value>,
    error: Option<(&str, &str)>,
) -> String {
    let mut body = json!({
        "authMode": "API_KEY",
        "connectionId": CONNECTION_ID,
        "environment": "dev",
        "from": "nango",
        "operation": operation,
        "provider": "exa",
        "providerConfigKey": "exa-peer",
        "success": success,
        "type": "auth",
    });
    if let Some(tags) = tags {
        body["tags"] = tags;
    }
    if let Some((kind, description)) = error {
        body["error"] = json!({"description": description, "type": kind});
    }
    body.to_string()
}

pub fn owner_tags() -> Value {
    json!({
        "end_user_display_name": "Alice Example",
        "end_user_email": "alice@example.com",
        "end_user_id": "user-42",
        "organization_id": "org-7",
    })
}

/// A Nango that fails the test if anything calls it (wiremock verifies on drop).
pub async fn nango_that_must_not_be_called() -> wiremock::MockServer {
    let nango = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(500))
        .expect(0)
        .mount(&nango)
        .await;
    nango
}
