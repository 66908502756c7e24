//! Reconciliation against DynamoDB Local and the project's Nango emulator (started by each test,
//! over real HTTP), or wiremock where a test needs Nango to contradict itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nango_connect::access::OrganizationAccess;
use nango_connect::connection::{Failure, Status};
use nango_connect::nango::{ConnectionId, NangoClient};
use nango_connect::reconcile::{Reconciler, Settings, Summary};
use nango_connect::store::ConnectionStore;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::*;

const EMULATOR_CONFIG: &str = include_str!("../../../infra/nango-emulator/emulator.config.json");

/// The Nango emulator (infra/nango-emulator), on a free port, stopped when dropped.
struct Emulator {
    process: Child,
    url: String,
    http: reqwest::Client,
}

impl Emulator {
    async fn start() -> Self {
        let server = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/nango-emulator/src/server.js"
        );
        let mut process = Command::new("node")
            .args([server, "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the Nango emulator (Node 20 is required)");
        let stdout = process.stdout.take().unwrap();
        let url = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let url = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|line| line.split("listening on ").nth(1).map(str::to_owned))
                .expect("the emulator says where it listens");
            // Keep draining its output so it never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            url
        })
        .await
        .unwrap();
        let emulator = Emulator {
            process,
            url,
            http: http_client(),
        };
        // Nothing listens for webhooks here: each test says which ones it delivers itself.
        emulator
            .control("POST", "/_emulator/config", json!({"webhookUrls": []}))
            .await;
        emulator
    }

    async fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Connections made in Nango whose creation webhooks were never delivered; their ids.
    async fn create_silently(&self, specs: Value) -> Vec<String> {
        let created = self
            .control(
                "POST",
                "/_emulator/connections",
                json!({ "connections": specs }),
            )
            .await;
        created["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["connection_id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn delete_silently(&self, connection_id: &str) {
        self.control(
            "DELETE",
            &format!("/_emulator/connections/{connection_id}?webhook=false"),
            json!({}),
        )
        .await;
    }

    async fn fault(&self, fault: Value) {
        self.control("POST", "/_emulator/faults", fault).await;
    }

    async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/_emulator/faults", self.url))
            .send()
            .await
            .unwrap();
    }

    fn client(&self, timeouts: nango_connect::config::NangoTimeouts) -> NangoClient {
        let key = serde_json::from_str::<Value>(EMULATOR_CONFIG).unwrap()["secretKey"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut config = nango_connect::config::NangoConfig::from_source(&[
            ("NANGO_HOST", self.url.as_str()),
            ("NANGO_SECRET_KEY", key.as_str()),
        ])
        .unwrap();
        config.timeouts = timeouts;
        NangoClient::new(&config, &nango_connect::transport::Tls::new()).unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Settings for tests: the listing is trusted up to the moment it is read (no replica here).
fn settings(page_size: u32) -> Settings {
    Settings {
        page_size,
        grace: Duration::ZERO,
        ..Settings::default()
    }
}

fn reconciler(nango: NangoClient, store: &ConnectionStore, settings: Settings) -> Reconciler {
    Reconciler::new(nango, store.clone(), settings)
}

async fn run(reconciler: &Reconciler) -> Summary {
    reconciler
        .run(Instant::now() + Duration::from_secs(120))
        .await
        .expect("the table is readable")
}

fn owned_by(user: &str, organization: &str) -> Value {
    json!({"end_user_id": user, "organization_id": organization, "end_user_email": "alice@example.com"})
}

async fn listed_ids(
    store: &ConnectionStore,
    user: &str,
    organization: Option<&str>,
) -> Vec<String> {
    let answer = answer(
        list_connections(store.clone())
            .handle(list_as(user, organization))
            .await,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap().to_owned())
        .collect()
}

async fn versions(store: &ConnectionStore) -> HashMap<ConnectionId, u64> {
    stored_connections(store)
        .await
        .into_iter()
        .map(|c| (c.id, c.version))
        .collect()
}

/// The support webhooks name integration `exa-peer`; the emulator knows it as `exa`.
fn on_exa(webhook: String) -> String {
    webhook.replace(
        r#""providerConfigKey":"exa-peer""#,
        r#""providerConfigKey":"exa""#,
    )
}

fn id(value: &str) -> ConnectionId {
    ConnectionId::parse(value).unwrap()
}

#[tokio::test]
async fn a_lost_creation_is_stored_with_its_owner_and_listed() {
    let nango = Emulator::start().await;
    let store = store().await;
    let ids = nango
        .create_silently(
            json!([{"integration": "github", "tags": owned_by("user-42", "org-7"),
            "createdAt": "2026-06-01T12:00:00Z"}]),
        )
        .await;
    assert!(
        listed_ids(&store, "user-42", Some("org-7"))
            .await
            .is_empty()
    );

    let summary = run(&reconciler(
        nango.client(fast_timeouts()),
        &store,
        settings(1000),
    ))
    .await;

    assert_eq!(
        (
            summary.seen,
            summary.stored_new,
            summary.complete,
            summary.pages
        ),
        (1, 1, true, 1),
        "{summary:?}"
    );
    assert_eq!(summary.nango_requests, 1);
    assert_eq!(listed_ids(&store, "user-42", Some("org-7")).await, ids);
    assert_eq!(listed_ids(&store, "colleague", Some("org-7")).await, ids);
    assert!(listed_ids(&store, "stranger", None).await.is_empty());
    let stored = store.get(&id(&ids[0])).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Active);
    assert_eq!(stored.provider.as_deref(), Some("github"));
    assert_eq!(stored.tags.get("end_user_email"), Some("alice@example.com"));
    assert_eq!(
        stored.created_at, "2026-06-01T12:00:00.000Z",
        "sorted where Nango created it"
    );
}

#[tokio::test]
async fn a_lost_refresh_failure_becomes_error_and_a_lost_recovery_heals_it() {
    let nango = Emulator::start().await;
    let store = store().await;
    let ids = nango
        .create_silently(json!([{"integration": "github", "tags": owned_by("user-42", "org-7")}]))
        .await;
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(1000));
    run(&reconciler).await;

    nango
        .control(
            "POST",
            &format!("/_emulator/connections/{}/refresh-failure", ids[0]),
            json!({"webhook": false}),
        )
        .await;
    let summary = run(&reconciler).await;
    assert_eq!((summary.changed, summary.unchanged), (1, 0), "{summary:?}");
    let failed = store.get(&id(&ids[0])).await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Error);
    assert_eq!(failed.error, Some(Failure::observed()));
    let answer = answer(
        list_connections(store.clone())
            .handle(list_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(answer.body["connections"][0]["status"], "error");
    assert_eq!(answer.body["connections"][0]["error"]["type"], "auth");

    nango
        .control(
            "POST",
            &format!("/_emulator/connections/{}/refresh-success", ids[0]),
            json!({"webhook": false}),
        )
        .await;
    let summary = run(&reconciler).await;
    assert_eq!(summary.changed, 1, "{summary:?}");
    let healed = store.get(&id(&ids[0])).await.unwrap().unwrap();
    assert_eq!((healed.status, healed.error), (Status::Active, None));
}

#[tokio::test]
async fn a_failure_a_webhook_described_is_kept_when_the_listing_only_says_auth() {
    let nango = Emulator::start().await;
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    nango
        .create_silently(json!([{"integration": "exa", "connectionId": CONNECTION_ID,
            "tags": owner_tags(), "authError": true}]))
        .await;
    given(&receiver, &on_exa(creation())).await;
    given(&receiver, &on_exa(refresh_failure(None))).await;
    let summary = run(&reconciler(
        nango.client(fast_timeouts()),
        &store,
        settings(1000),
    ))
    .await;
    assert_eq!((summary.seen, summary.unchanged), (1, 1), "{summary:?}");
    let stored = store.get(&id(CONNECTION_ID)).await.unwrap().unwrap();
    assert_eq!(stored.error.unwrap().description, "invalid_grant");
}

/// Five connections stored by a first run, then one deleted in Nango without a webhook.
async fn five_stored_one_deleted_silently(
    nango: &Emulator,
    store: &ConnectionStore,
) -> Vec<String> {
    let specs: Vec<Value> = (0..5)
        .map(|_| json!({"integration": "github", "tags": owned_by("user-42", "org-7")}))
        .collect();
    let ids = nango.create_silently(json!(specs)).await;
    let first = run(&reconciler(
        nango.client(fast_timeouts()),
        store,
        settings(2),
    ))
    .await;
    assert_eq!(first.stored_new, 5, "{first:?}");
    nango.delete_silently(&ids[0]).await;
    ids
}

#[tokio::test]
async fn a_run_over_its_page_budget_stops_there_and_deletes_nothing() {
    let nango = Emulator::start().await;
    let store = store().await;
    five_stored_one_deleted_silently(&nango, &store).await;
    let budget = Settings {
        max_pages: 2,
        ..settings(2)
    };

    let summary = run(&reconciler(nango.client(fast_timeouts()), &store, budget)).await;

    assert!(!summary.complete, "{summary:?}");
    assert!(
        summary
            .incomplete_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("page budget")),
        "{summary:?}"
    );
    assert_eq!(
        (summary.pages, summary.nango_requests),
        (2, 2),
        "{summary:?}"
    );
    assert_eq!(summary.marked_deleted, 0);
    assert_eq!(listed_ids(&store, "user-42", Some("org-7")).await.len(), 5);
}

#[tokio::test]
async fn a_run_out_of_time_calls_nango_no_more_and_deletes_nothing() {
    let nango = Emulator::start().await;
    let store = store().await;
    five_stored_one_deleted_silently(&nango, &store).await;
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(2));
    let before = versions(&store).await;

    let summary = reconciler
        .run(Instant::now())
        .await
        .expect("the table is readable");

    assert!(!summary.complete, "{summary:?}");
    assert_eq!(
        summary.incomplete_reason.as_deref(),
        Some("out of time before page 0")
    );
    assert_eq!(
        (summary.pages, summary.nango_requests),
        (0, 0),
        "{summary:?}"
    );
    assert_eq!(versions(&store).await, before, "nothing written");
}

#[tokio::test]
async fn absences_nango_cannot_confirm_wait_for_the_next_run() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let store = store().await;
    given(&webhook_receiver(store.clone()).await, &creation()).await;
    let nango = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(query_param("page", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connections": []})))
        .mount(&nango)
        .await;
    // The exact lookup fails every attempt of the first run, then answers: no such connection.
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(query_param("connectionId", CONNECTION_ID))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(u64::from(fast_timeouts().max_attempts))
        .mount(&nango)
        .await;
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(query_param("connectionId", CONNECTION_ID))
        .and(query_param("integrationId", "exa-peer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connections": []})))
        .mount(&nango)
        .await;
    let reconciler = reconciler(
        nango_client(&nango.uri(), fast_timeouts()),
        &store,
        settings(1000),
    );

    let deferred = run(&reconciler).await;

    assert!(deferred.complete, "{deferred:?}");
    assert_eq!(
        (deferred.confirmations_deferred, deferred.marked_deleted),
        (1, 0),
        "{deferred:?}"
    );
    assert_eq!(
        store.get(&id(CONNECTION_ID)).await.unwrap().unwrap().status,
        Status::Active
    );

    let confirmed = run(&reconciler).await;
    assert_eq!(confirmed.marked_deleted, 1, "{confirmed:?}");
}

#[tokio::test]
async fn a_connection_deleted_behind_our_back_is_deleted_after_a_complete_listing_only() {
    let nango = Emulator::start().await;
    let store = store().await;
    // Oldest first, so the one deleted sits on the last page.
    let specs: Vec<Value> = (0..5)
        .map(|i| {
            json!({"integration": "github", "tags": owned_by("user-42", "org-7"),
            "createdAt": format!("2026-06-01T12:00:0{i}Z")})
        })
        .collect();
    let ids = nango.create_silently(json!(specs)).await;
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(2));
    assert_eq!(run(&reconciler).await.stored_new, 5);
    nango.delete_silently(&ids[0]).await;

    // Page 1 of 3 fails every time: nothing may be deleted.
    nango
        .fault(json!({"route": "GET /connections", "page": 1, "status": 500}))
        .await;
    let partial = run(&reconciler).await;
    assert!(!partial.complete, "{partial:?}");
    assert_eq!(partial.marked_deleted, 0);
    assert!(
        partial
            .incomplete_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("page 1")),
        "{partial:?}"
    );
    assert_eq!(
        partial.nango_requests,
        1 + u64::from(fast_timeouts().max_attempts),
        "page 0, then page 1 with every retry"
    );
    assert_eq!(listed_ids(&store, "user-42", Some("org-7")).await.len(), 5);

    // A page whose body is cut short is no better.
    nango.clear_faults().await;
    nango
        .fault(json!({"route": "GET /connections", "page": 2, "malformed": true, "count": 1}))
        .await;
    let malformed = run(&reconciler).await;
    assert!(!malformed.complete, "{malformed:?}");
    assert_eq!(malformed.marked_deleted, 0);

    let complete = run(&reconciler).await;
    assert!(complete.complete, "{complete:?}");
    assert_eq!(
        (complete.marked_deleted, complete.seen, complete.unchanged),
        (1, 4, 4)
    );
    assert_eq!(
        complete.nango_requests,
        3 + 1,
        "three pages and one confirmation"
    );
    let listed = listed_ids(&store, "user-42", Some("org-7")).await;
    assert_eq!(listed.len(), 4);
    assert!(!listed.contains(&ids[0]));
    let deleted = store.get(&id(&ids[0])).await.unwrap().unwrap();
    assert_eq!(deleted.status, Status::Deleted);
    assert_eq!(
        deleted.owner.end_user_id.as_deref(),
        Some("user-42"),
        "a tombstone keeps its owner"
    );
    assert_eq!(run(&reconciler).await.marked_deleted, 0, "once");
}

#[tokio::test]
async fn a_run_that_fails_half_way_keeps_what_it_stored_and_the_next_one_finishes() {
    let nango = Emulator::start().await;
    let store = store().await;
    let specs: Vec<Value> = (0..5)
        .map(|i| json!({"integration": "linear", "tags": owned_by(&format!("user-{i}"), "org-1")}))
        .collect();
    nango.create_silently(json!(specs)).await;
    nango
        .fault(json!({"route": "GET /connections", "page": 1, "reset": true}))
        .await;
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(2));

    let first = run(&reconciler).await;
    assert_eq!((first.complete, first.stored_new), (false, 2), "{first:?}");
    assert_eq!(listed_ids(&store, "anyone", Some("org-1")).await.len(), 2);

    nango.clear_faults().await;
    let second = run(&reconciler).await;
    assert_eq!(
        (second.complete, second.stored_new, second.unchanged),
        (true, 3, 2),
        "{second:?}"
    );
    assert_eq!(listed_ids(&store, "anyone", Some("org-1")).await.len(), 5);
}

#[tokio::test]
async fn thousands_of_connections_across_pages_and_a_second_run_writes_nothing() {
    const COUNT: usize = 2_000;
    let nango = Emulator::start().await;
    let store = store().await;
    let specs: Vec<Value> = (0..COUNT)
        .map(|i| json!({"integration": "github", "tags": owned_by(&format!("user-{}", i % 50), &format!("org-{}", i % 7))}))
        .collect();
    nango.create_silently(json!(specs)).await;
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(500));

    let started = std::time::Instant::now();
    let first = run(&reconciler).await;
    let elapsed = started.elapsed();
    assert!(first.complete, "{first:?}");
    assert_eq!(
        (first.seen, first.stored_new, first.write_failures),
        (COUNT as u64, COUNT as u64, 0)
    );
    // 2,000 rows in pages of 500: four full pages and an empty one.
    assert_eq!((first.pages, first.nango_requests), (5, 5));
    println!(
        "reconciled {COUNT} new connections in {elapsed:?} ({:.0} rows/s, debug build)",
        COUNT as f64 / elapsed.as_secs_f64()
    );
    let before = versions(&store).await;
    assert_eq!(before.len(), COUNT);
    // Under `private`, each user lists exactly their own, whatever the organization.
    let user_3s = answer(
        list_connections_under(store.clone(), OrganizationAccess::Private)
            .handle(list_as("user-3", None))
            .await,
    );
    assert_eq!(
        user_3s.body["connections"].as_array().unwrap().len(),
        COUNT / 50
    );

    let second = run(&reconciler).await;
    assert_eq!(
        (
            second.seen,
            second.unchanged,
            second.stored_new,
            second.changed
        ),
        (COUNT as u64, COUNT as u64, 0, 0),
        "{second:?}"
    );
    assert_eq!(versions(&store).await, before, "no item was written");
}

#[tokio::test]
async fn a_webhook_arriving_while_a_run_pages_is_not_lost() {
    let nango = Emulator::start().await;
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    // Nango has the connection healthy (its override success webhook was lost) ...
    nango
        .create_silently(json!([{"integration": "exa", "connectionId": CONNECTION_ID,
            "tags": owner_tags()}]))
        .await;
    // ... and we hold it as failing since an earlier refresh failure.
    given(&receiver, &on_exa(creation())).await;
    given(
        &receiver,
        &on_exa(auth_webhook(
            "refresh",
            false,
            None,
            Some(("old_failure", "earlier")),
        )),
    )
    .await;
    // The listing takes a moment; a new refresh failure is delivered meanwhile.
    nango
        .fault(json!({"route": "GET /connections", "hangMs": 700, "count": 1}))
        .await;
    let run_store = store.clone();
    let mut timeouts = fast_timeouts();
    timeouts.attempt = Duration::from_secs(3);
    timeouts.budget = Duration::from_secs(5);
    let client = nango.client(timeouts);
    let running =
        tokio::spawn(async move { run(&reconciler(client, &run_store, settings(1000))).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    given(&receiver, &on_exa(refresh_failure(None))).await;
    let summary = running.await.unwrap();

    assert!(summary.complete, "{summary:?}");
    let stored = store.get(&id(CONNECTION_ID)).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Error, "the newer webhook wins");
    assert_eq!(stored.error.unwrap().description, "invalid_grant");
    assert_eq!(summary.changed, 0, "{summary:?}");
}

#[tokio::test]
async fn a_rate_limited_run_waits_as_nango_asks_and_counts_every_request() {
    let nango = Emulator::start().await;
    let store = store().await;
    nango
        .create_silently(json!([{"integration": "github", "tags": owned_by("user-1", "org-1")}]))
        .await;
    nango
        .control(
            "POST",
            "/_emulator/rate-limit",
            json!({"count": 2, "retryAfter": 1}),
        )
        .await;
    let mut timeouts = fast_timeouts();
    timeouts.budget = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let summary = run(&reconciler(nango.client(timeouts), &store, settings(1000))).await;

    assert!(summary.complete, "{summary:?}");
    assert_eq!((summary.stored_new, summary.nango_requests), (1, 3));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited Retry-After twice: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_absence_nango_contradicts_deletes_nothing_and_recent_connections_are_not_looked_up() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    let nango = MockServer::start().await;
    // The page misses the connection (rows shifted while paging), but Nango still has it.
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(query_param("limit", "1000"))
        .and(query_param("page", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connections": []})))
        .expect(2)
        .mount(&nango)
        .await;
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(query_param("connectionId", CONNECTION_ID))
        .and(query_param("integrationId", "exa-peer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"connections": [{"connection_id": CONNECTION_ID, "provider_config_key": "exa-peer"}]}),
        ))
        .expect(1)
        .mount(&nango)
        .await;

    // Written just now: within the grace period, so not even looked up.
    let cautious = reconciler(
        nango_client(&nango.uri(), fast_timeouts()),
        &store,
        Settings::default(),
    );
    let summary = run(&cautious).await;
    assert!(summary.complete);
    assert_eq!(
        (summary.marked_deleted, summary.confirmed_present),
        (0, 0),
        "{summary:?}"
    );

    let summary = run(&reconciler(
        nango_client(&nango.uri(), fast_timeouts()),
        &store,
        settings(1000),
    ))
    .await;
    assert_eq!(
        (summary.marked_deleted, summary.confirmed_present),
        (0, 1),
        "{summary:?}"
    );
    assert_eq!(
        store.get(&id(CONNECTION_ID)).await.unwrap().unwrap().status,
        Status::Active
    );
}

#[tokio::test]
async fn confirmations_are_capped_per_run() {
    let nango = Emulator::start().await;
    let store = store().await;
    let specs: Vec<Value> = (0..3)
        .map(|_| json!({"integration": "github", "tags": owned_by("user-1", "org-1")}))
        .collect();
    let ids = nango.create_silently(json!(specs)).await;
    let capped = Settings {
        max_confirmations: 2,
        ..settings(1000)
    };
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, capped);
    run(&reconciler).await;
    for id in &ids {
        nango.delete_silently(id).await;
    }
    let first = run(&reconciler).await;
    assert_eq!(
        (first.marked_deleted, first.confirmations_deferred),
        (2, 1),
        "{first:?}"
    );
    let second = run(&reconciler).await;
    assert_eq!(
        (second.marked_deleted, second.confirmations_deferred),
        (1, 0)
    );
}

#[tokio::test]
async fn connections_of_a_removed_integration_are_deleted_without_reading_them_by_id() {
    use wiremock::matchers::{method, path, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const GONE: &str = "0b7c3f4e-5a6d-4e8f-9a0b-1c2d3e4f5a6b";

    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    given(&receiver, &creation().replace(CONNECTION_ID, GONE)).await;
    let nango = MockServer::start().await;
    // The integration was removed in Nango: its connections were soft-deleted without a
    // webhook, so neither the listing nor the exact lookup shows them any more...
    Mock::given(method("GET"))
        .and(path("/connections"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connections": []})))
        .mount(&nango)
        .await;
    // ...and `GET /connections/{id}` would answer 400, never 404 (and may refresh credentials):
    // it is never called.
    Mock::given(path_regex("^/connections/.+"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"code": "unknown_provider_config"}})),
        )
        .expect(0)
        .mount(&nango)
        .await;

    let summary = run(&reconciler(
        nango_client(&nango.uri(), fast_timeouts()),
        &store,
        settings(1000),
    ))
    .await;

    assert_eq!(
        (
            summary.marked_deleted,
            summary.confirmations_deferred,
            summary.nango_requests
        ),
        (2, 0, 3),
        "one page and two exact lookups: {summary:?}"
    );
    for lookup in [CONNECTION_ID, GONE] {
        assert_eq!(
            nango
                .received_requests()
                .await
                .unwrap()
                .iter()
                .filter(|r| r
                    .url
                    .query_pairs()
                    .any(|(k, v)| k == "connectionId" && v == lookup))
                .filter(|r| r.url.query_pairs().any(|(k, v)| k == "limit" && v == "10"))
                .count(),
            1,
            "exactly one exact lookup, with a limit, for {lookup}"
        );
        assert_eq!(
            store.get(&id(lookup)).await.unwrap().unwrap().status,
            Status::Deleted
        );
    }
}

/// 1,000 connections of an integration removed in Nango, 300 that Nango keeps confirming although
/// its listing keeps missing them, and real deletions: with a budget of 250 confirmations a run,
/// every absence is settled within ceil(candidates / budget) runs, and a deletion that comes later
/// waits for none of the others.
#[tokio::test]
async fn a_confirmation_budget_smaller_than_the_backlog_is_spent_fairly() {
    const REMOVED: usize = 1_000;
    const CONFIRMED_EACH_RUN: usize = 300;
    const BUDGET: u32 = 250;
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone());
    let nango = FakeNango::start().await;
    let tags = json!({"end_user_id": "user-1", "organization_id": "org-1"});
    // Oldest news first: the removed integration's, then the ones Nango keeps confirming, then
    // one real deletion.
    let removed: Vec<String> = (0..REMOVED).map(|i| format!("removed-{i:04}")).collect();
    let present: Vec<String> = (0..CONFIRMED_EACH_RUN)
        .map(|i| format!("present-{i:03}"))
        .collect();
    let mut stored: Vec<(&str, &str)> = removed
        .iter()
        .map(|id| (id.as_str(), "removed-integration"))
        .collect();
    stored.extend(present.iter().map(|id| (id.as_str(), "github")));
    stored.push(("deleted-first", "github"));
    put_directly(&table, &stored, 0).await;
    for id in &present {
        nango.add_hidden_from_listing(id, "github", tags.clone());
    }

    let reconciler = reconciler(
        nango_client(&nango.uri(), fast_timeouts()),
        &store,
        Settings {
            max_confirmations: BUDGET,
            ..settings(1000)
        },
    );
    let documented_runs = stored.len().div_ceil(BUDGET as usize);
    let mut runs = 0;
    let mut deleted = 0;
    while deleted < REMOVED as u64 + 1 {
        let summary = run(&reconciler).await;
        assert!(summary.complete, "{summary:?}");
        assert_eq!(summary.nango_requests, 1 + u64::from(BUDGET), "{summary:?}");
        deleted += summary.marked_deleted;
        runs += 1;
        assert!(
            runs <= documented_runs,
            "not settled within {documented_runs} runs"
        );
    }
    assert_eq!(runs, documented_runs);
    let status = |connection: String| {
        let store = store.clone();
        async move { store.get(&id(&connection)).await.unwrap().unwrap().status }
    };
    assert_eq!(status("deleted-first".into()).await, Status::Deleted);
    for id in removed.iter().step_by(97) {
        assert_eq!(status(id.clone()).await, Status::Deleted, "{id}");
    }
    for id in &present {
        assert_eq!(status(id.clone()).await, Status::Active, "{id}");
    }

    // A deletion that comes now goes first: the 300 Nango keeps confirming were asked about more
    // recently, and wait behind it.
    put_directly(&table, &[("deleted-later", "github")], stored.len()).await;
    let next = run(&reconciler).await;
    assert_eq!(next.marked_deleted, 1, "{next:?}");
    assert_eq!(next.confirmed_present, u64::from(BUDGET) - 1);
    assert_eq!(status("deleted-later".into()).await, Status::Deleted);
}

/// Stores live connections of user-1 (org-1) with BatchWriteItem, the `i`th updated at second
/// `first + i` of a day long past: a large table in seconds, in a known order of news.
async fn put_directly(table: &str, connections: &[(&str, &str)], first: usize) {
    for (chunk_index, chunk) in connections.chunks(25).enumerate() {
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, (connection_id, integration_id))| {
                let second = first + chunk_index * 25 + i;
                let at = format!(
                    "2026-01-01T{:02}:{:02}:{:02}.000Z",
                    second / 3600,
                    second / 60 % 60,
                    second % 60
                );
                json!({"PutRequest": {"Item": {
                    "connectionId": {"S": connection_id},
                    "integrationId": {"S": integration_id},
                    "endUserId": {"S": "user-1"},
                    "organizationId": {"S": "org-1"},
                    "tags": {"M": {"end_user_id": {"S": "user-1"}, "organization_id": {"S": "org-1"}}},
                    "status": {"S": "active"},
                    "createdAt": {"S": at},
                    "updatedAt": {"S": at},
                    "version": {"N": "1"},
                }}})
            })
            .collect();
        let answer = dynamodb_json(
            "DynamoDB_20120810.BatchWriteItem",
            json!({"RequestItems": {table: requests}}),
        )
        .await;
        assert_eq!(answer["UnprocessedItems"], json!({}), "{answer}");
    }
}

/// Stores `count` connections made in Nango (a first pass with room to finish), then has Nango
/// delete the first of its listing (the newest) without a webhook; the ids, newest first.
async fn stored_then_newest_deleted_silently(
    nango: &Emulator,
    store: &ConnectionStore,
    count: usize,
) -> Vec<String> {
    let specs: Vec<Value> = (0..count)
        .map(|_| json!({"integration": "github", "tags": owned_by("user-42", "org-7")}))
        .collect();
    nango.create_silently(json!(specs)).await;
    let first = run(&reconciler(
        nango.client(fast_timeouts()),
        store,
        settings(1000),
    ))
    .await;
    assert_eq!(
        (first.complete, first.stored_new),
        (true, count as u64),
        "{first:?}"
    );
    let newest_first: Vec<String> = nango
        .client(fast_timeouts())
        .list_connections(1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.connection_id.unwrap())
        .collect();
    nango.delete_silently(&newest_first[0]).await;
    newest_first
}

#[tokio::test]
async fn a_pass_spans_runs_resumes_from_its_checkpoint_and_deletes_only_at_its_end() {
    let nango = Emulator::start().await;
    let store = store().await;
    let ids = stored_then_newest_deleted_silently(&nango, &store, 9).await;
    // 8 live rows in pages of 2: pages 0-3 full, page 4 empty. Two pages a run, and each run
    // after the first reads again the last page the one before read.
    let reconciler = reconciler(
        nango.client(fast_timeouts()),
        &store,
        Settings {
            max_pages: 2,
            ..settings(2)
        },
    );

    let mut runs = Vec::new();
    for _ in 0..3 {
        let summary = run(&reconciler).await;
        assert!(!summary.complete, "{summary:?}");
        assert!(
            summary
                .incomplete_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("page budget")),
            "{summary:?}"
        );
        assert_eq!(
            (summary.pages, summary.marked_deleted),
            (2, 0),
            "{summary:?}"
        );
        assert_eq!(
            store.get(&id(&ids[0])).await.unwrap().unwrap().status,
            Status::Active,
            "nothing is deleted before the pass ends"
        );
        runs.push(summary);
    }
    let last = run(&reconciler).await;
    assert!(last.complete, "{last:?}");
    assert_eq!(
        (
            last.pages,
            last.marked_deleted,
            last.confirmed_present,
            last.nango_requests
        ),
        (2, 1, 0, 3),
        "pages 3 and 4, then one exact lookup: {last:?}"
    );
    runs.push(last);
    assert_eq!(
        runs.iter().map(|s| s.pass_runs).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        runs.iter().map(|s| s.pass_pages).collect::<Vec<_>>(),
        [2, 4, 6, 8]
    );
    assert!(
        runs.iter()
            .all(|s| s.pass_started_at == runs[0].pass_started_at),
        "one pass: {runs:?}"
    );
    assert_eq!(
        runs[3].stored_live, 9,
        "the sweep counted the absent one too, before it was marked deleted"
    );
    assert_eq!(
        store.get(&id(&ids[0])).await.unwrap().unwrap().status,
        Status::Deleted
    );
    let listed = listed_ids(&store, "user-42", Some("org-7")).await;
    assert_eq!(listed.len(), 8);

    // The next run begins a new pass.
    let next = run(&reconciler).await;
    assert_eq!(next.pass_runs, 1, "{next:?}");
    assert_ne!(next.pass_started_at, runs[0].pass_started_at);
}

#[tokio::test]
async fn rows_that_move_up_between_runs_of_a_pass_are_still_seen() {
    let nango = Emulator::start().await;
    let store = store().await;
    // Six stored, nothing deleted yet.
    let specs: Vec<Value> = (0..6)
        .map(|_| json!({"integration": "github", "tags": owned_by("user-42", "org-7")}))
        .collect();
    nango.create_silently(json!(specs)).await;
    run(&reconciler(
        nango.client(fast_timeouts()),
        &store,
        settings(1000),
    ))
    .await;
    let newest_first: Vec<String> = nango
        .client(fast_timeouts())
        .list_connections(1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.connection_id.unwrap())
        .collect();
    let reconciler = reconciler(
        nango.client(fast_timeouts()),
        &store,
        Settings {
            max_pages: 2,
            ..settings(2)
        },
    );
    // Pages 0 and 1 read: the four newest.
    let first = run(&reconciler).await;
    assert_eq!((first.complete, first.seen), (false, 4), "{first:?}");
    // Between runs the newest is deleted in Nango: every row moves up one place, and the fifth
    // newest is now on page 1, which the first run has read already.
    nango.delete_silently(&newest_first[0]).await;

    let second = run(&reconciler).await;

    assert!(second.complete, "{second:?}");
    assert_eq!(
        (second.pages, second.seen, second.confirmed_present),
        (2, 3, 0),
        "page 1 again (the fifth is on it now) and page 2: no live connection looked absent: {second:?}"
    );
    assert_eq!(second.nango_requests, 2, "two pages, no exact lookup");
    // The deletion happened after this pass had listed it: the next pass finds it.
    assert_eq!(second.marked_deleted, 0);
    let next = run(&reconciler).await;
    assert_eq!(next.marked_deleted, 0, "{next:?}");
    let end = run(&reconciler).await;
    assert_eq!((end.complete, end.marked_deleted), (true, 1), "{end:?}");
    assert_eq!(
        store
            .get(&id(&newest_first[0]))
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Deleted
    );
}

#[tokio::test]
async fn a_page_that_fails_mid_pass_starts_the_pass_over_and_deletes_nothing() {
    let nango = Emulator::start().await;
    let store = store().await;
    let ids = stored_then_newest_deleted_silently(&nango, &store, 7).await;
    // 6 live rows in pages of 2: pages 0-2 full, page 3 empty.
    let reconciler = reconciler(
        nango.client(fast_timeouts()),
        &store,
        Settings {
            max_pages: 2,
            ..settings(2)
        },
    );
    let first = run(&reconciler).await;
    assert_eq!((first.complete, first.pages), (false, 2), "{first:?}");

    // The second run re-reads page 1, then page 2 fails with every retry.
    nango
        .fault(json!({"route": "GET /connections", "page": 2, "status": 500}))
        .await;
    let failed = run(&reconciler).await;
    assert!(!failed.complete, "{failed:?}");
    assert!(
        failed.incomplete_reason.as_deref().is_some_and(
            |r| r.starts_with("page 2") && r.ends_with("the next run starts a new pass")
        ),
        "{failed:?}"
    );
    assert_eq!(
        (failed.pass_runs, failed.marked_deleted),
        (2, 0),
        "{failed:?}"
    );
    assert_eq!(
        store.get(&id(&ids[0])).await.unwrap().unwrap().status,
        Status::Active
    );

    // Nango recovers: a new pass, from page 0, which deletes only when it ends.
    nango.clear_faults().await;
    let restarted = run(&reconciler).await;
    assert_eq!(
        (
            restarted.pass_runs,
            restarted.pass_pages,
            restarted.complete,
            restarted.marked_deleted
        ),
        (1, 2, false, 0),
        "{restarted:?}"
    );
    assert_ne!(restarted.pass_started_at, first.pass_started_at);
    // Pages 1 and 2, then pages 2 and 3 (empty): the pass ends in its third run.
    let middle = run(&reconciler).await;
    assert_eq!(
        (middle.complete, middle.marked_deleted),
        (false, 0),
        "{middle:?}"
    );
    let end = run(&reconciler).await;
    assert!(end.complete, "{end:?}");
    assert_eq!((end.pass_runs, end.marked_deleted), (3, 1), "{end:?}");
    assert_eq!(
        store.get(&id(&ids[0])).await.unwrap().unwrap().status,
        Status::Deleted
    );
}

/// The run's reads of the table, through a proxy that records every request: the pages of Nango's
/// listing are matched by key (BatchGetItem, at most 100 keys), and the sweep reads the table in
/// slices of at most SWEEP_PAGE_ITEMS items, only the attributes it needs. Nothing reads the whole
/// table in one go, and no read is bigger than a slice.
#[tokio::test]
async fn a_pass_reads_the_table_in_slices_never_whole() {
    use crate::dynamo_proxy::DynamoProxy;
    use nango_connect::store::SWEEP_PAGE_ITEMS;
    const COUNT: usize = 2_500;
    let nango = Emulator::start().await;
    let (_, table) = fresh_table().await;
    let specs: Vec<Value> = (0..COUNT)
        .map(|i| json!({"integration": "github", "tags": owned_by(&format!("user-{}", i % 50), "org-1")}))
        .collect();
    nango.create_silently(json!(specs)).await;
    let proxy = DynamoProxy::start(dynamodb_endpoint()).await;
    let store = ConnectionStore::new(dynamodb_client(&proxy.endpoint), table);
    let reconciler = reconciler(nango.client(fast_timeouts()), &store, settings(1000));
    let first = run(&reconciler).await;
    assert_eq!(
        (first.complete, first.stored_new),
        (true, COUNT as u64),
        "{first:?}"
    );
    proxy.clear();

    let steady = run(&reconciler).await;

    assert!(steady.complete, "{steady:?}");
    assert_eq!(
        (steady.unchanged, steady.swept),
        (COUNT as u64, COUNT as u64),
        "{steady:?}"
    );
    let requests = proxy.requests();
    let count = |operation: &str| requests.iter().filter(|(op, _)| op == operation).count();
    // 3 pages (1,000, 1,000, 500): 10 + 10 + 5 batch reads of 100 keys.
    assert_eq!(
        count("BatchGetItem"),
        25 + 1,
        "and one for the listed ids: {requests:?}"
    );
    // The sweep: 2,500 items and a checkpoint, 1,000 a slice.
    assert_eq!(count("Scan"), 3);
    assert_eq!(
        count("PutItem"),
        3 * 2 + 3 + 1,
        "per page its ids and the checkpoint; per slice the checkpoint; the end"
    );
    assert_eq!(count("GetItem"), 1, "the checkpoint");
    assert_eq!(count("Query"), 0);
    assert_eq!(requests.len(), 26 + 3 + 10 + 1, "{requests:?}");
    for (operation, body) in &requests {
        match operation.as_str() {
            "BatchGetItem" => {
                let keys = body["RequestItems"]
                    .as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()["Keys"]
                    .as_array()
                    .unwrap()
                    .len();
                assert!(keys <= 100, "{keys} keys");
            }
            "Scan" => {
                assert_eq!(body["Limit"], json!(SWEEP_PAGE_ITEMS), "{body}");
                assert!(body["ProjectionExpression"].is_string(), "{body}");
                assert!(
                    !body["ProjectionExpression"]
                        .as_str()
                        .unwrap()
                        .contains("tags")
                );
            }
            _ => {}
        }
    }
}
