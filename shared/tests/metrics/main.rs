//! The metrics each function writes, read back as CloudWatch reads them, scenario by scenario.
//! In a process of its own: the `metrics` recorder is global to a process (as one Lambda sandbox
//! runs one function), so these tests take turns ([`Capture`]) and nothing else records here.

// Test helpers panic on purpose: a failed expectation is a failed test. Most of the shared
// harness serves the other integration tests, not these.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../it/contract.rs"]
mod contract;
mod emf;
#[path = "../it/support.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use nango_connect::events::EventPublisher;
use nango_connect::events::stream::StreamEvent;
use nango_connect::handlers::publish_events::PublishEvents;
use nango_connect::handlers::reconcile_connections::ReconcileConnections;
use nango_connect::metrics::{Capture, DEFAULT_NAMESPACE, Metric, function};
use nango_connect::reconcile::{Reconciler, Settings};
use nango_connect::store::ConnectionStore;

use emf::Datapoints;
use support::*;

/// What `function` wrote, read as CloudWatch would; every series it names is in the catalogue,
/// with the catalogue's unit and dimensions, `Function` first.
fn read(capture: &Capture, function: &str) -> Datapoints {
    let lines = capture.lines();
    if std::env::var_os("PRINT_EMF").is_some() {
        println!("{function}:\n{lines}");
    }
    let points = emf::read(&lines);
    for series in points.values.keys() {
        assert_eq!(series.namespace, DEFAULT_NAMESPACE);
        assert_eq!(
            series.dimensions.get("Function").map(String::as_str),
            Some(function)
        );
        let metric = Metric::ALL
            .iter()
            .find(|m| m.name() == series.metric)
            .unwrap_or_else(|| panic!("{} is not in the catalogue", series.metric));
        let definition = metric.definition();
        assert!(
            definition.functions.contains(&function),
            "{} from {function}",
            series.metric
        );
        let mut expected = vec!["Function".to_owned()];
        expected.extend(definition.dimensions.iter().map(|d| d.name.to_owned()));
        assert_eq!(points.dimension_sets[&series.metric], expected);
        for dimension in &definition.dimensions {
            let value = &series.dimensions[dimension.name];
            assert!(
                dimension.values.contains(&value.as_str()),
                "{}={value}",
                dimension.name
            );
        }
        assert_eq!(
            points.units[&series.metric], definition.unit,
            "{}",
            series.metric
        );
    }
    points
}

const RECEIVER: (&str, &str) = ("Function", function::WEBHOOK_RECEIVER);

#[tokio::test]
async fn a_stored_webhook_counts_once_as_stored_and_its_confirmation_as_one_lookup() {
    let capture = Capture::start(function::WEBHOOK_RECEIVER);
    let receiver = webhook_receiver(store().await).await;
    let answer = deliver_genuine(&receiver, &creation()).await;
    assert_eq!(answer.body["result"], "stored");

    let points = read(&capture, function::WEBHOOK_RECEIVER);
    let summary = points.summary();
    assert_eq!(
        points.sum("Webhooks", &[RECEIVER, ("Outcome", "stored")]),
        1.0,
        "{summary}"
    );
    assert_eq!(
        points.sum("Webhooks", &[]),
        1.0,
        "one webhook, counted once: {summary}"
    );
    assert_eq!(
        points.sum("WebhookTypes", &[("Type", "auth")]),
        1.0,
        "{summary}"
    );
    let lookups = receiver.nango.lookups().await as f64;
    assert_eq!(lookups, 1.0);
    let find = ("Operation", "find_connection");
    assert_eq!(
        points.sum("NangoRequests", &[find, ("Answer", "2xx")]),
        lookups,
        "{summary}"
    );
    assert_eq!(points.sum("NangoRequests", &[]), lookups, "{summary}");
    assert_eq!(points.count("NangoLatency", &[find]), 1, "{summary}");
    assert_eq!(points.sum("NangoUnavailable", &[]), 0.0, "{summary}");

    // The same webhook again changes nothing, and says so.
    let again = deliver_genuine(&receiver, &creation()).await;
    assert_eq!(again.body["result"], "unchanged");
    let points = read(&capture, function::WEBHOOK_RECEIVER);
    assert_eq!(
        points.sum("Webhooks", &[("Outcome", "unchanged")]),
        1.0,
        "{}",
        points.summary()
    );
    assert_eq!(
        points.sum("Webhooks", &[("Outcome", "stored")]),
        0.0,
        "counted since the last flush only"
    );
}

#[tokio::test]
async fn a_forged_signature_counts_as_rejected_and_asks_nango_nothing() {
    let capture = Capture::start(function::WEBHOOK_RECEIVER);
    let receiver = webhook_receiver(store().await).await;
    let forged = Event::from(WEBHOOK)
        .body(&creation())
        .header("X-Nango-Hmac-Sha256", &"0".repeat(64))
        .request();
    let answer = answer(receiver.handle(forged).await);
    assert_eq!(answer.status, 401);

    let points = read(&capture, function::WEBHOOK_RECEIVER);
    let summary = points.summary();
    assert_eq!(
        points.sum("Webhooks", &[("Outcome", "signature_rejected")]),
        1.0,
        "{summary}"
    );
    assert_eq!(points.sum("Webhooks", &[]), 1.0, "{summary}");
    assert_eq!(
        points.count("WebhookTypes", &[]),
        0,
        "an unsigned body's type is not read: {summary}"
    );
    assert_eq!(points.count("NangoRequests", &[]), 0, "{summary}");
}

#[tokio::test]
async fn a_webhook_the_store_cannot_take_counts_as_failed() {
    let capture = Capture::start(function::WEBHOOK_RECEIVER);
    let receiver =
        webhook_receiver(ConnectionStore::new(unreachable_dynamodb(), "connections")).await;
    let answer = deliver_genuine(&receiver, &creation()).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    let points = read(&capture, function::WEBHOOK_RECEIVER);
    assert_eq!(
        points.sum("Webhooks", &[("Outcome", "failed")]),
        1.0,
        "{}",
        points.summary()
    );
}

/// `POST /sessions` as the fixture's caller, to create-session on `nango`.
async fn post_session(nango: &MockServer) -> Answer {
    answer(
        create_session_with(&nango.uri(), fast_timeouts())
            .handle(Event::from(POST_SESSIONS).request())
            .await,
    )
}

fn nango_429() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", "0")
        .set_body_json(json!({"error": {"code": "too_many_request", "message": "slow down"}}))
}

#[tokio::test]
async fn a_nango_429_counts_as_429_on_every_attempt_and_the_answer_by_its_code() {
    let capture = Capture::start(function::CREATE_SESSION);
    let nango = nango_answering("/connect/sessions", nango_429()).await;
    let answer = post_session(&nango).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "nango_unavailable")
    );

    let attempts = nango.received_requests().await.unwrap().len() as f64;
    assert!(attempts > 1.0, "429 is retried");
    let points = read(&capture, function::CREATE_SESSION);
    let summary = points.summary();
    let create = ("Operation", "create_session");
    assert_eq!(
        points.sum("NangoRequests", &[create, ("Answer", "429")]),
        attempts,
        "{summary}"
    );
    assert_eq!(points.sum("NangoRequests", &[]), attempts, "{summary}");
    assert_eq!(
        points.count("NangoLatency", &[create]),
        attempts as usize,
        "{summary}"
    );
    assert_eq!(points.sum("NangoUnavailable", &[]), attempts, "{summary}");
    assert_eq!(
        points.sum("ApiErrors", &[("Code", "nango_unavailable")]),
        1.0,
        "{summary}"
    );
    assert_eq!(points.sum("ApiErrors", &[]), 1.0, "{summary}");
    assert_eq!(points.count("SessionsCreated", &[]), 0, "{summary}");
}

#[tokio::test]
async fn a_session_created_counts_once_and_nango_s_answer_as_2xx() {
    let capture = Capture::start(function::CREATE_SESSION);
    let nango = nango_answering("/connect/sessions", session_created()).await;
    let answer = post_session(&nango).await;
    assert_eq!(answer.status, 201);
    let points = read(&capture, function::CREATE_SESSION);
    let summary = points.summary();
    assert_eq!(points.sum("SessionsCreated", &[]), 1.0, "{summary}");
    assert_eq!(
        points.sum("NangoRequests", &[("Answer", "2xx")]),
        1.0,
        "{summary}"
    );
    assert_eq!(points.count("ApiErrors", &[]), 0, "{summary}");
}

#[tokio::test]
async fn a_nango_timeout_counts_as_timeout() {
    let capture = Capture::start(function::CREATE_SESSION);
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(5)))
        .mount(&nango)
        .await;
    let answer = answer(
        create_session_with(&nango.uri(), fast_timeouts())
            .handle(Event::from(POST_SESSIONS).request())
            .await,
    );
    assert_eq!(answer.status, 504);
    let attempts = nango.received_requests().await.unwrap().len() as f64;
    let points = read(&capture, function::CREATE_SESSION);
    let summary = points.summary();
    assert_eq!(
        points.sum("NangoRequests", &[("Answer", "timeout")]),
        attempts,
        "{summary}"
    );
    assert_eq!(
        points.sum("ApiErrors", &[("Code", "nango_timeout")]),
        1.0,
        "{summary}"
    );
}

fn deadline_in(seconds: u64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now + Duration::from_secs(seconds)).as_millis() as u64
}

fn reconciliation(nango: &FakeNango, store: ConnectionStore) -> ReconcileConnections {
    let settings = Settings {
        page_size: 100,
        grace: Duration::ZERO,
        ..Settings::default()
    };
    ReconcileConnections::new(Reconciler::new(
        nango_client(&nango.uri(), fast_timeouts()),
        store,
        settings,
    ))
}

#[tokio::test]
async fn a_reconciliation_run_counts_what_it_found_and_that_it_completed() {
    let capture = Capture::start(function::RECONCILE_CONNECTIONS);
    let nango = FakeNango::start().await;
    nango.add("lost-creation-1", "exa-peer", owner_tags());
    nango.add("lost-creation-2", "exa-peer", owner_tags());
    let summary = reconciliation(&nango, store().await)
        .handle(deadline_in(120))
        .await
        .unwrap();
    assert_eq!((summary.stored_new, summary.complete), (2, true));

    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    let text = points.summary();
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "complete")]),
        1.0,
        "{text}"
    );
    assert_eq!(points.sum("ReconcileRuns", &[]), 1.0, "{text}");
    assert_eq!(points.sum("ReconcileRowsSeen", &[]), 2.0, "{text}");
    assert_eq!(points.sum("ReconcileStoredNew", &[]), 2.0, "{text}");
    assert_eq!(points.sum("ReconcileDrift", &[]), 2.0, "{text}");
    assert_eq!(points.count("ReconcileDuration", &[]), 1, "{text}");
    assert_eq!(
        points.sum("ReconcileNangoRequests", &[]),
        summary.nango_requests as f64,
        "{text}"
    );
    assert_eq!(
        points.sum(
            "NangoRequests",
            &[("Operation", "list_connections"), ("Answer", "2xx")]
        ),
        summary.nango_requests as f64,
        "{text}"
    );
}

#[tokio::test]
async fn a_steady_run_counts_no_drift_and_a_failed_run_counts_as_failed() {
    let capture = Capture::start(function::RECONCILE_CONNECTIONS);
    let nango = FakeNango::start().await;
    nango.add("lost-creation-1", "exa-peer", owner_tags());
    let store = store().await;
    reconciliation(&nango, store.clone())
        .handle(deadline_in(120))
        .await
        .unwrap();
    capture.lines();

    reconciliation(&nango, store)
        .handle(deadline_in(120))
        .await
        .unwrap();
    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    let text = points.summary();
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "complete")]),
        1.0,
        "{text}"
    );
    assert_eq!(points.sum("ReconcileDrift", &[]), 0.0, "{text}");
    assert_eq!(points.sum("ReconcileRowsSeen", &[]), 1.0, "{text}");

    let failing = reconciliation(
        &nango,
        ConnectionStore::new(unreachable_dynamodb(), "connections"),
    );
    assert!(failing.handle(deadline_in(120)).await.is_err());
    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "failed")]),
        1.0,
        "{}",
        points.summary()
    );
    assert_eq!(
        points.sum("ReconcileRuns", &[]),
        1.0,
        "{}",
        points.summary()
    );
}

#[tokio::test]
async fn published_events_are_counted_and_a_refused_one_as_failed() {
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone());
    given(&webhook_receiver(store).await, &creation()).await;
    let records = stream_records(&table).await;
    assert_eq!(records.len(), 1);
    let batch = || -> StreamEvent {
        serde_json::from_value(json!({ "Records": records.clone() })).unwrap()
    };

    let capture = Capture::start(function::PUBLISH_EVENTS);
    let bus = MockServer::start().await;
    let accepted: Value = json!({"FailedEntryCount": 0, "Entries": [{"EventId": "event-1"}]});
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(accepted.to_string(), "application/x-amz-json-1.1"),
        )
        .up_to_n_times(1)
        .mount(&bus)
        .await;
    let refused: Value = json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]});
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(refused.to_string(), "application/x-amz-json-1.1"),
        )
        .mount(&bus)
        .await;
    let publisher = PublishEvents::new(EventPublisher::new(
        eventbridge_client(&bus.uri()),
        BUS_NAME,
    ));

    publisher.handle(batch()).await;
    let points = read(&capture, function::PUBLISH_EVENTS);
    assert_eq!(
        points.sum("EventsPublished", &[]),
        1.0,
        "{}",
        points.summary()
    );
    assert_eq!(points.count("EventsFailed", &[]), 0, "{}", points.summary());

    publisher.handle(batch()).await;
    let points = read(&capture, function::PUBLISH_EVENTS);
    assert_eq!(points.sum("EventsFailed", &[]), 1.0, "{}", points.summary());
    assert_eq!(
        points.count("EventsPublished", &[]),
        0,
        "{}",
        points.summary()
    );
}

/// A long run records more values than one EMF line may carry (100 per metric): they leave in
/// several lines, and none is lost.
#[tokio::test]
async fn many_latencies_leave_in_lines_of_at_most_100_values_and_none_is_lost() {
    let capture = Capture::start(function::RECONCILE_CONNECTIONS);
    for _ in 0..250 {
        Metric::NangoLatency.observe(&["find_connection"], Duration::from_millis(3));
    }
    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    assert_eq!(
        points.count("NangoLatency", &[("Operation", "find_connection")]),
        250
    );
}

#[tokio::test]
async fn a_caller_over_their_share_counts_as_rate_limited_and_a_wait_for_the_budget_as_a_wait() {
    use nango_connect::config::{AllowedIntegrations, ClaimNames};
    use nango_connect::handlers::create_session::CreateSession;
    use nango_connect::rate_limit::{CallerLimits, NangoBudget, Priority, Rate};

    let capture = Capture::start(function::CREATE_SESSION);
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(session_created())
        .mount(&nango)
        .await;
    let buckets = fresh_rate_limit_table().await;
    // One request a minute each; the Nango budget one every 500 ms.
    let client = nango_client(&nango.uri(), fast_timeouts()).with_budget(
        NangoBudget::new(buckets.clone(), Rate::per_minute(120, 1), 0),
        Priority::User,
    );
    let handler = CreateSession::new(
        client,
        ClaimNames::default(),
        AllowedIntegrations::default(),
    )
    .with_caller_limits(Some(CallerLimits::new(
        buckets,
        Rate::per_minute(1, 1),
        Rate::per_minute(100, 100),
    )));
    let as_user = |user: &str| {
        Event::from(POST_SESSIONS)
            .claims(Some(claims(user, Some("org-1"))))
            .request()
    };
    assert_eq!(answer(handler.handle(as_user("user-1")).await).status, 201);
    assert_eq!(answer(handler.handle(as_user("user-1")).await).status, 429);
    // Another user: admitted, but the budget's next token is 500 ms away.
    assert_eq!(answer(handler.handle(as_user("user-2")).await).status, 201);

    let points = read(&capture, function::CREATE_SESSION);
    let summary = points.summary();
    assert_eq!(
        points.sum("RateLimited", &[("Scope", "user")]),
        1.0,
        "{summary}"
    );
    assert_eq!(points.sum("RateLimited", &[]), 1.0, "{summary}");
    assert_eq!(
        points.sum("ApiErrors", &[("Code", "rate_limited")]),
        1.0,
        "{summary}"
    );
    assert_eq!(
        points.sum("NangoBudgetWaits", &[("Priority", "user")]),
        1.0,
        "{summary}"
    );
    assert_eq!(points.sum("SessionsCreated", &[]), 2.0, "{summary}");
    assert_eq!(points.sum("NangoRequests", &[]), 2.0, "{summary}");
}

/// A pass larger than one run's page budget: the first run carries it on (`continued`), the
/// last one ends it (`complete`).
#[tokio::test]
async fn a_pass_over_several_runs_counts_continued_then_complete() {
    let capture = Capture::start(function::RECONCILE_CONNECTIONS);
    let nango = FakeNango::start().await;
    for n in 0..3 {
        nango.add(&format!("lost-creation-{n}"), "exa-peer", owner_tags());
    }
    let store = store().await;
    let settings = Settings {
        page_size: 1,
        max_pages: 1,
        grace: Duration::ZERO,
        ..Settings::default()
    };
    let reconciliation = ReconcileConnections::new(Reconciler::new(
        nango_client(&nango.uri(), fast_timeouts()),
        store,
        settings,
    ));
    let first = reconciliation.handle(deadline_in(120)).await.unwrap();
    assert!(!first.complete && !first.abandoned, "{first:?}");
    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "continued")]),
        1.0,
        "{}",
        points.summary()
    );
    assert_eq!(
        points.sum("ReconcileRuns", &[]),
        1.0,
        "{}",
        points.summary()
    );

    let mut runs = 1;
    while !reconciliation
        .handle(deadline_in(120))
        .await
        .unwrap()
        .complete
    {
        runs += 1;
        assert!(runs < 10, "the pass never ends");
    }
    let points = read(&capture, function::RECONCILE_CONNECTIONS);
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "complete")]),
        1.0,
        "{}",
        points.summary()
    );
    assert_eq!(
        points.sum("ReconcileRuns", &[("Result", "continued")]),
        f64::from(runs - 1),
        "{}",
        points.summary()
    );
}
