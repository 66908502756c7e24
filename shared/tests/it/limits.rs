//! Each caller's share and the one Nango budget (`rate_limit`), against token buckets in
//! DynamoDB Local and a wiremock Nango over real HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use nango_connect::config::{AllowedIntegrations, ClaimNames};
use nango_connect::handlers::create_session::CreateSession;
use nango_connect::rate_limit::{Buckets, CallerLimits, NangoBudget, Priority, Rate, Take};

use crate::support::*;

async fn nango_creating_sessions() -> MockServer {
    nango_answering("/connect/sessions", session_created()).await
}

/// Plenty: what a test of something else gives the other limit.
fn plenty() -> Rate {
    Rate::per_minute(100_000, 10_000)
}

fn create_session(
    nango: &MockServer,
    buckets: &Buckets,
    user: Rate,
    organization: Rate,
    budget: Rate,
) -> Checked<CreateSession> {
    let client = nango_client(&nango.uri(), fast_timeouts())
        .with_budget(NangoBudget::new(buckets.clone(), budget, 0), Priority::User);
    Checked(
        CreateSession::new(
            client,
            ClaimNames::default(),
            AllowedIntegrations::default(),
        )
        .with_caller_limits(Some(CallerLimits::new(buckets.clone(), user, organization))),
    )
}

fn as_caller(user: &str, organization: &str) -> lambda_http::Request {
    Event::from(POST_SESSIONS)
        .claims(Some(claims(user, Some(organization))))
        .request()
}

async fn nango_calls(nango: &MockServer) -> usize {
    nango.received_requests().await.unwrap_or_default().len()
}

#[tokio::test]
async fn a_caller_over_their_share_gets_429_with_retry_after_and_nango_is_not_called() {
    let nango = nango_creating_sessions().await;
    let buckets = fresh_rate_limit_table().await;
    let handler = create_session(&nango, &buckets, Rate::per_minute(3, 3), plenty(), plenty());
    for _ in 0..3 {
        let answer = answer(handler.handle(as_caller("user-1", "org-1")).await);
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let refused = answer(handler.handle(as_caller("user-1", "org-1")).await);
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, "rate_limited")
    );
    // One token comes back every 20 s.
    let retry_after: u64 = refused.response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (19..=20).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        nango_calls(&nango).await,
        3,
        "the refused request never reached Nango"
    );

    // Someone else, even of the same organization, has their own share.
    let other = answer(handler.handle(as_caller("user-2", "org-1")).await);
    assert_eq!(other.status, 201, "{}", other.body);
}

/// Once a sandbox has found a bucket empty, it refuses the rest of a flood itself: no write to
/// DynamoDB until the next token is due.
#[tokio::test]
async fn a_flood_after_the_first_refusal_costs_dynamodb_nothing() {
    let buckets = fresh_rate_limit_table().await;
    let proxy = crate::dynamo_proxy::DynamoProxy::start(dynamodb_endpoint()).await;
    let through_proxy = Buckets::new(dynamodb_client(&proxy.endpoint), buckets.table());
    let rate = Rate::per_minute(1, 1);
    assert_eq!(
        through_proxy.take("user#flood", rate, 0).await.unwrap(),
        Take::Taken
    );
    assert!(matches!(
        through_proxy.take("user#flood", rate, 0).await.unwrap(),
        Take::Refused { .. }
    ));
    let writes = proxy.operations().len();
    for _ in 0..50 {
        let Take::Refused { retry_after } =
            through_proxy.take("user#flood", rate, 0).await.unwrap()
        else {
            panic!("admitted during a flood");
        };
        assert!(retry_after > Duration::from_secs(50));
    }
    assert_eq!(proxy.operations().len(), writes, "{:?}", proxy.operations());
    // Another bucket is asked as ever.
    assert_eq!(
        through_proxy.take("user#other", rate, 0).await.unwrap(),
        Take::Taken
    );
    assert_eq!(proxy.operations().len(), writes + 1);
}

#[tokio::test]
async fn an_organization_s_users_share_its_bucket() {
    let nango = nango_creating_sessions().await;
    let buckets = fresh_rate_limit_table().await;
    let handler = create_session(&nango, &buckets, plenty(), Rate::per_minute(4, 4), plenty());
    for user in ["user-1", "user-2", "user-3", "user-4"] {
        assert_eq!(
            answer(handler.handle(as_caller(user, "org-1")).await).status,
            201
        );
    }
    let refused = answer(handler.handle(as_caller("user-5", "org-1")).await);
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, "rate_limited")
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("organization")
    );
    let elsewhere = answer(handler.handle(as_caller("user-5", "org-2")).await);
    assert_eq!(elsewhere.status, 201);
}

/// One user floods `POST /sessions` while nine others use it now and then: the nine never see a
/// 429, the one is held to their share, and Nango sees no more than the shares allow. The rates
/// are the defaults' (20 a minute, bursts of 10), over 10 seconds rather than a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_busy_user_cannot_take_the_others_share() {
    let nango = nango_creating_sessions().await;
    let buckets = fresh_rate_limit_table().await;
    let handler = Arc::new(create_session(
        &nango,
        &buckets,
        Rate::per_minute(20, 10),
        Rate::per_minute(120, 30),
        plenty(),
    ));
    let run_for = Duration::from_secs(10);
    let started = Instant::now();
    let flooder_admitted = Arc::new(AtomicUsize::new(0));
    let flooder_refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // The busy one: 20 requests a second, each user in an organization of its own... except
    // that the busy one shares org-1 with three of the nine.
    for _ in 0..2 {
        let (handler, admitted, refused) = (
            handler.clone(),
            flooder_admitted.clone(),
            flooder_refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while started.elapsed() < run_for {
                tick.tick().await;
                match answer(handler.handle(as_caller("busy", "org-1")).await).status {
                    201 => admitted.fetch_add(1, Ordering::Relaxed),
                    429 => refused.fetch_add(1, Ordering::Relaxed),
                    other => panic!("the busy user got {other}"),
                };
            }
        }));
    }
    let others_refused = Arc::new(AtomicUsize::new(0));
    let others_served = Arc::new(AtomicUsize::new(0));
    for n in 0..9 {
        let (handler, refused, served) = (
            handler.clone(),
            others_refused.clone(),
            others_served.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let organization = if n < 3 {
                "org-1".to_owned()
            } else {
                format!("org-{n}")
            };
            // One request every 2 s (5 in the run), started at different times.
            tokio::time::sleep(Duration::from_millis(200 * n)).await;
            while started.elapsed() < run_for {
                match answer(
                    handler
                        .handle(as_caller(&format!("user-{n}"), &organization))
                        .await,
                )
                .status
                {
                    201 => served.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = flooder_admitted.load(Ordering::Relaxed);
    assert_eq!(
        others_refused.load(Ordering::Relaxed),
        0,
        "the nine were refused"
    );
    assert!(others_served.load(Ordering::Relaxed) >= 9 * 4);
    // A burst of 10, then one every 3 s.
    let share = 10 + (elapsed / 3.0).ceil() as usize;
    assert!(
        admitted <= share,
        "the busy user got {admitted}, over their share of {share}"
    );
    assert!(
        flooder_refused.load(Ordering::Relaxed) > 100,
        "the busy user was held back"
    );
    assert_eq!(
        nango_calls(&nango).await,
        admitted + others_served.load(Ordering::Relaxed),
        "every admitted request, and no refused one, reached Nango"
    );
}

/// Every function's calls take from one budget: however many callers, Nango receives at most
/// the burst plus the rate over the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nango_receives_no_more_than_the_budget_from_everyone_together() {
    let nango = nango_creating_sessions().await;
    let buckets = fresh_rate_limit_table().await;
    // 120 a minute (one every 500 ms), bursts of 5.
    let budget = Rate::per_minute(120, 5);
    let handler = Arc::new(create_session(&nango, &buckets, plenty(), plenty(), budget));
    let started = Instant::now();
    let run_for = Duration::from_secs(4);
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (handler, answers) = (handler.clone(), answers.clone());
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < run_for {
                let answer = answer(handler.handle(as_caller(&format!("user-{n}"), "org")).await);
                answers
                    .lock()
                    .unwrap()
                    .push((answer.status, answer.error_code().to_owned()));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = nango_calls(&nango).await;
    let allowed = 5 + (elapsed / 0.5).ceil() as usize;
    assert!(
        calls <= allowed,
        "Nango received {calls} in {elapsed:.1} s, over the budget's {allowed}"
    );
    assert!(calls >= 5, "the budget was used");
    let answers = answers.lock().unwrap();
    // Users waited for the budget within their time; whoever could not wait that long was told
    // to come back (503 nango_unavailable, with Retry-After), never answered by Nango with a 429.
    for (status, code) in answers.iter() {
        assert!(
            *status == 201 || (*status == 503 && code == "nango_unavailable"),
            "{status} {code}"
        );
    }
    assert_eq!(
        answers.iter().filter(|(status, _)| *status == 201).count(),
        calls
    );
}

#[tokio::test]
async fn background_calls_leave_the_reserve_to_users() {
    let buckets = fresh_rate_limit_table().await;
    // Bursts of 5, one token a minute back; 3 kept for users.
    let budget = NangoBudget::new(buckets, Rate::per_minute(1, 5), 3);
    assert_eq!(
        budget.take(Priority::Background).await.unwrap(),
        Take::Taken
    );
    assert_eq!(
        budget.take(Priority::Background).await.unwrap(),
        Take::Taken
    );
    assert!(matches!(
        budget.take(Priority::Background).await.unwrap(),
        Take::Refused { .. }
    ));
    for _ in 0..3 {
        assert_eq!(budget.take(Priority::User).await.unwrap(), Take::Taken);
    }
    let Take::Refused { retry_after } = budget.take(Priority::User).await.unwrap() else {
        panic!("the budget is empty");
    };
    assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60));
}

/// A 429 from Nango holds off every function's calls (each with its own client) for as long as
/// Nango asked, without one more request to Nango.
#[tokio::test]
async fn a_429_from_nango_holds_every_function_off_for_its_retry_after() {
    let nango = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "3")
                .set_body_json(json!({"error": {"code": "too_many_request"}})),
        )
        .mount(&nango)
        .await;
    let buckets = fresh_rate_limit_table().await;
    let budget = NangoBudget::new(buckets, plenty(), 0);
    let receiver_side = nango_client(&nango.uri(), fast_timeouts())
        .with_budget(budget.clone(), Priority::Background);
    let session_side =
        nango_client(&nango.uri(), fast_timeouts()).with_budget(budget, Priority::User);

    assert!(receiver_side.list_connections(10, 0).await.is_err());
    assert_eq!(
        nango_calls(&nango).await,
        1,
        "one 429; Retry-After outlasts the call's time budget"
    );
    // The other function: its budget is drained for 3 s, longer than its 1.5 s to wait.
    let err = session_side.list_connections(10, 0).await.unwrap_err();
    assert!(
        err.to_string().contains("unavailable") || err.to_string().contains("budget"),
        "{err}"
    );
    assert_eq!(
        nango_calls(&nango).await,
        1,
        "no request while the budget is drained"
    );
}

#[tokio::test]
async fn a_rate_limit_table_that_cannot_be_read_lets_requests_through() {
    let nango = nango_creating_sessions().await;
    let buckets = Buckets::new(unreachable_dynamodb(), "rate-limits");
    let handler = create_session(
        &nango,
        &buckets,
        Rate::per_minute(1, 1),
        Rate::per_minute(1, 1),
        Rate::per_minute(1, 1),
    );
    for _ in 0..3 {
        assert_eq!(
            answer(handler.handle(as_caller("user-1", "org-1")).await).status,
            201
        );
    }
    assert_eq!(nango_calls(&nango).await, 3);
}

/// Reconciliation takes from the same budget, in the background: it waits for tokens above the
/// users' reserve and says how long in its summary.
#[tokio::test]
async fn reconciliation_waits_for_the_budget_and_says_so_in_its_summary() {
    use nango_connect::reconcile::{Reconciler, Settings};

    let nango = FakeNango::start().await;
    for n in 0..3 {
        nango.add(&format!("budgeted-{n}"), "exa-peer", owner_tags());
    }
    let buckets = fresh_rate_limit_table().await;
    // Bursts of 3, one token back every second; 1 kept for users: background has 2 at once.
    let budget = NangoBudget::new(buckets, Rate::per_minute(60, 3), 1);
    let client =
        nango_client(&nango.uri(), fast_timeouts()).with_budget(budget, Priority::Background);
    let settings = Settings {
        page_size: 1,
        grace: Duration::ZERO,
        ..Settings::default()
    };
    let reconciler = Reconciler::new(client, store().await, settings);
    let summary = reconciler
        .run(tokio::time::Instant::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(summary.complete, "{summary:?}");
    assert_eq!(summary.stored_new, 3);
    // Four pages (the last one short) and no more than two at once: it waited.
    assert!(summary.nango_requests >= 4, "{summary:?}");
    // Two more pages than tokens: about two seconds of waiting, less the time each page took.
    assert!(summary.nango_budget_wait_ms >= 500, "{summary:?}");
}
