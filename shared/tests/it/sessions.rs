//! `POST /sessions` against a wiremock Nango over real HTTP.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use nango_connect::config::NangoTimeouts;

use crate::support::*;

fn nango_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"code": code, "message": "from Nango"}}))
}

fn request() -> lambda_http::Request {
    Event::from(POST_SESSIONS).request()
}

#[tokio::test]
async fn session_is_tagged_with_the_callers_identity() {
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions"))
        .and(header(
            "authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "tags": {
                "end_user_id": "user-42",
                "end_user_email": "alice@example.com",
                "end_user_display_name": "Alice Example",
                "organization_id": "org-7"
            },
            "allowed_integrations": ["github"]
        })))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;

    let answer = answer(
        create_session(&nango.uri(), Some("github,linear"))
            .handle(request())
            .await,
    );

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "sessionToken": "nango_connect_session_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "connectLink": "https://connect.nango.dev/?session_token=nango_connect_session_0123",
            "expiresAt": "2026-11-26T18:35:00.000Z"
        })
    );
}

#[tokio::test]
async fn invalid_email_claim_is_not_sent_and_absent_claims_are_not_tags() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .and(body_json(json!({"tags": {"end_user_id": "user-9"}})))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let request = Event::from(POST_SESSIONS)
        .claims(Some(json!({"sub": "user-9", "email": "not an email"})))
        .no_body()
        .request();
    let answer = answer(create_session(&nango.uri(), None).handle(request).await);
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[tokio::test]
async fn without_a_choice_the_configured_list_is_sent() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .and(body_json(json!({
            "tags": {"end_user_id": "user-9"},
            "allowed_integrations": ["github", "linear"]
        })))
        .respond_with(session_created())
        .expect(3)
        .mount(&nango)
        .await;
    let handler = create_session(&nango.uri(), Some("linear, github"));
    for body in [None, Some("{}"), Some(r#"{"allowedIntegrations":[]}"#)] {
        let event = Event::from(POST_SESSIONS).claims(Some(json!({"sub": "user-9"})));
        let event = match body {
            Some(body) => event.body(body),
            None => event.no_body(),
        };
        let answer = answer(handler.handle(event.request()).await);
        assert_eq!(answer.status, 201, "{body:?}: {}", answer.body);
    }
}

#[tokio::test]
async fn integration_outside_the_allowed_list_is_400_and_nango_is_not_called() {
    let nango = nango_that_must_not_be_called().await;
    let request = Event::from(POST_SESSIONS)
        .body(r#"{"allowedIntegrations":["github","salesforce"]}"#)
        .request();
    let answer = answer(
        create_session(&nango.uri(), Some("github"))
            .handle(request)
            .await,
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_code(), "integration_not_allowed");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("salesforce")
    );
}

#[tokio::test]
async fn integration_id_nango_could_never_have_is_400_and_nango_is_not_called() {
    let nango = nango_that_must_not_be_called().await;
    for allowed in [None, Some("github")] {
        let request = Event::from(POST_SESSIONS)
            .body(r#"{"allowedIntegrations":["github","githüb"]}"#)
            .request();
        let answer = answer(create_session(&nango.uri(), allowed).handle(request).await);
        assert_eq!(answer.status, 400, "{allowed:?}");
        assert_eq!(answer.error_code(), "integration_not_allowed");
        assert!(answer.body["error"]["nangoCode"].is_null());
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_invalid_body() {
    let nango = nango_that_must_not_be_called().await;
    for body in [
        "not json",
        r#"{"allowedIntegrations":"github"}"#,
        r#"{"allowedIntegrations":[""]}"#,
        r#"{"allowed_integrations":["github"]}"#,
        r#"{"endUserId":"someone-else"}"#,
        // serde would read an array as the struct's fields in order: not a body we document.
        r#"[["github"]]"#,
        r#""github""#,
        "null",
    ] {
        let request = Event::from(POST_SESSIONS).body(body).request();
        let answer = answer(create_session(&nango.uri(), None).handle(request).await);
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.error_code(), "invalid_body", "{body}");
    }
}

#[tokio::test]
async fn no_verified_claims_is_401_whatever_the_body_or_headers_say() {
    let nango = nango_that_must_not_be_called().await;
    let handler = create_session(&nango.uri(), None);
    let requests = [
        Event::from(POST_SESSIONS).claims(None).request(),
        Event::from(POST_SESSIONS).claims(Some(json!({}))).request(),
        Event::from(POST_SESSIONS)
            .claims(Some(json!({"email": "alice@example.com"})))
            .request(),
        Event::from(POST_SESSIONS)
            .claims(None)
            .header("x-end-user-id", "user-42")
            .body(r#"{"sub":"user-42"}"#)
            .request(),
    ];
    for request in requests {
        let answer = answer(handler.handle(request).await);
        assert_eq!(answer.status, 401);
        assert_eq!(answer.error_code(), "unauthenticated");
    }
}

#[tokio::test]
async fn integration_unknown_to_nango_is_400_when_the_caller_chose_it_else_502() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "invalid_body",
            "errors": [{"code": "custom", "message": "Integration does not exist", "path": ["allowed_integrations", "0"]}]
        }})))
        .mount(&nango)
        .await;
    let theirs = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(theirs.status, 400);
    assert_eq!(theirs.body["error"]["code"], "integration_not_allowed");
    assert_eq!(theirs.body["error"]["nangoCode"], "invalid_body");

    // Without a choice of the caller's, the list is our configuration: not the caller's to fix.
    let request = Event::from(POST_SESSIONS).no_body().request();
    let ours = answer(
        create_session(&nango.uri(), Some("githubb"))
            .handle(request)
            .await,
    );
    assert_eq!(ours.status, 502);
    assert_eq!(ours.body["error"]["code"], "nango_rejected");
}

#[tokio::test]
async fn nango_refusing_our_key_is_502_and_leaks_no_secret() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(nango_error(401, "unknown_account"))
        .expect(1)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 502);
    assert_eq!(answer.body["error"]["code"], "nango_rejected");
    assert_eq!(answer.body["error"]["nangoCode"], "unknown_account");
    assert!(!answer.body.to_string().contains(SECRET_KEY));
}

#[tokio::test]
async fn nango_400_is_not_retried() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(nango_error(400, "invalid_body"))
        .expect(1)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 502);
    assert_eq!(answer.body["error"]["nangoCode"], "invalid_body");
}

#[tokio::test]
async fn nango_429_is_retried_after_retry_after() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(nango_error(429, "too_many_request").insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&nango)
        .await;
    Mock::given(path("/connect/sessions"))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let started = std::time::Instant::now();
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as Nango asked"
    );
}

#[tokio::test]
async fn nango_429_that_outlasts_the_budget_is_503_with_retry_after() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(nango_error(429, "too_many_request").insert_header("Retry-After", "30"))
        .expect(1)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 503);
    assert_eq!(answer.error_code(), "nango_unavailable");
    assert_eq!(answer.response.headers()["retry-after"], "30");
}

#[tokio::test]
async fn nango_retry_after_as_an_http_date_is_passed_on_in_seconds() {
    let nango = MockServer::start().await;
    let in_a_minute =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    Mock::given(path("/connect/sessions"))
        .respond_with(
            nango_error(503, "server_error").insert_header("Retry-After", in_a_minute.as_str()),
        )
        .expect(1)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "nango_unavailable")
    );
    let seconds: u64 = answer.response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((58..=61).contains(&seconds), "{seconds}");
}

/// Found by fuzzing `parse_retry_after`: a Retry-After of u64::MAX seconds (or a date in the year
/// 9999) made `Instant::now() + wait` overflow, and the handler panicked instead of answering.
#[tokio::test]
async fn nango_retry_after_beyond_any_clock_is_capped_not_a_crash() {
    for huge in ["18446744073709551615", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let nango = MockServer::start().await;
        Mock::given(path("/connect/sessions"))
            .respond_with(nango_error(429, "too_many_request").insert_header("Retry-After", huge))
            .expect(1)
            .mount(&nango)
            .await;
        let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
        assert_eq!(
            (answer.status, answer.error_code()),
            (503, "nango_unavailable"),
            "{huge}"
        );
        assert_eq!(answer.response.headers()["retry-after"], "3600", "{huge}");
    }
}

#[tokio::test]
async fn nango_5xx_is_retried_with_backoff() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(nango_error(500, "server_error"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&nango)
        .await;
    Mock::given(path("/connect/sessions"))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[tokio::test]
async fn nango_down_for_good_is_503_after_bounded_attempts() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(503))
        .expect(fast_timeouts().max_attempts as u64)
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 503);
    assert_eq!(answer.error_code(), "nango_unavailable");
}

#[tokio::test]
async fn slow_nango_is_504_and_no_attempt_starts_that_the_budget_cannot_fit() {
    let nango = MockServer::start().await;
    // 1 s per attempt and 2.5 s in all: a second attempt fits, a third would not.
    Mock::given(path("/connect/sessions"))
        .respond_with(session_created().set_delay(Duration::from_secs(5)))
        .expect(2)
        .mount(&nango)
        .await;
    let timeouts = NangoTimeouts {
        attempt: Duration::from_secs(1),
        budget: Duration::from_millis(2500),
        max_attempts: 10,
        ..fast_timeouts()
    };
    let answer = answer(
        create_session_with(&nango.uri(), timeouts)
            .handle(request())
            .await,
    );
    assert_eq!(answer.status, 504);
    assert_eq!(answer.error_code(), "nango_timeout");
}

#[tokio::test]
async fn unreachable_nango_is_503() {
    let answer = answer(
        create_session("http://127.0.0.1:1", None)
            .handle(request())
            .await,
    );
    assert_eq!(answer.status, 503);
    assert_eq!(answer.error_code(), "nango_unavailable");
}

#[tokio::test]
async fn unreadable_success_from_nango_is_502() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions"))
        .respond_with(ResponseTemplate::new(201).set_body_string("<html>"))
        .mount(&nango)
        .await;
    let answer = answer(create_session(&nango.uri(), None).handle(request()).await);
    assert_eq!(answer.status, 502);
    assert_eq!(answer.error_code(), "nango_invalid_response");
}

#[tokio::test]
async fn oversized_body_is_413_and_wrong_method_405() {
    let handler = create_session("http://127.0.0.1:1", None);
    let big = format!(r#"{{"allowedIntegrations":["{}"]}}"#, "x".repeat(20_000));
    let answer_ = answer(
        handler
            .handle(Event::from(POST_SESSIONS).body(&big).request())
            .await,
    );
    assert_eq!(answer_.status, 413);
    assert_eq!(answer_.error_code(), "payload_too_large");
    let answer_ = answer(
        handler
            .handle(Event::from(POST_SESSIONS).method("GET").request())
            .await,
    );
    assert_eq!(answer_.status, 405);
    assert_eq!(answer_.response.headers()["allow"], "POST");
}

#[test]
fn handler_builds_from_the_environment_it_documents() {
    use nango_connect::handlers::create_session::CreateSession;
    use nango_connect::transport::Tls;
    let dynamodb = || dynamodb_client("http://127.0.0.1:1");
    assert!(
        CreateSession::from_env(&[("NANGO_SECRET_KEY", SECRET_KEY)], &Tls::new(), dynamodb())
            .is_ok()
    );
    let missing = CreateSession::from_env(
        &[("NANGO_HOST", "https://api.nango.dev")],
        &Tls::new(),
        dynamodb(),
    )
    .err()
    .unwrap();
    assert!(missing.to_string().contains("NANGO_SECRET_KEY"));
    let limits = CreateSession::from_env(
        &[
            ("NANGO_SECRET_KEY", SECRET_KEY),
            ("RATE_LIMIT_TABLE", "rate-limits"),
            ("USER_REQUESTS_PER_MINUTE", "0"),
        ],
        &Tls::new(),
        dynamodb(),
    )
    .err()
    .unwrap();
    assert!(limits.to_string().contains("USER_REQUESTS_PER_MINUTE"));
}
