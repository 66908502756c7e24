//! `POST /sessions/reconnect`: only for the caller's connections, always with their full tags.

use nango_connect::store::ConnectionStore;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn session_created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "data": {
            "token": "nango_connect_session_reconnect",
            "connect_link": "https://connect.nango.dev/?session_token=nango_connect_session_reconnect",
            "expires_at": "2026-11-26T18:35:00.000Z"
        }
    }))
}

/// A store holding one connection owned by user-42 of org-7, as its creation webhook left it.
async fn store_with_connection(tags: serde_json::Value) -> ConnectionStore {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &auth_webhook("creation", true, Some(tags), None)).await;
    store
}

fn reconnect_as(end_user_id: &str, organization_id: Option<&str>) -> lambda_http::Request {
    Event::from(POST_RECONNECT)
        .claims(Some(claims(end_user_id, organization_id)))
        .request()
}

#[tokio::test]
async fn owner_gets_a_session_carrying_the_full_stored_tags() {
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions/reconnect"))
        .and(header(
            "authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .and(body_json(json!({
            "connection_id": CONNECTION_ID,
            "integration_id": "exa-peer",
            "tags": owner_tags()
        })))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let handler = reconnect_session(&nango.uri(), store_with_connection(owner_tags()).await);

    let answer = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);

    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(
        answer.body["sessionToken"],
        "nango_connect_session_reconnect"
    );
    assert_eq!(answer.body["expiresAt"], "2026-11-26T18:35:00.000Z");
}

#[tokio::test]
async fn tags_survive_an_empty_tag_override_and_are_sent_again() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions/reconnect"))
        .and(body_json(json!({
            "connection_id": CONNECTION_ID,
            "integration_id": "exa-peer",
            "tags": owner_tags()
        })))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let store = store_with_connection(owner_tags()).await;
    let override_answer = deliver(
        &webhook_receiver(store.clone()).await,
        &auth_webhook("override", true, Some(json!({})), None),
    )
    .await;
    assert_eq!(override_answer.status, 200, "{}", override_answer.body);
    let answer = answer(
        reconnect_session(&nango.uri(), store)
            .handle(reconnect_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[tokio::test]
async fn a_member_of_the_owning_organization_may_reconnect() {
    let nango = MockServer::start().await;
    // The owner's tags, not the colleague's: a reconnect must not move the connection to them.
    Mock::given(path("/connect/sessions/reconnect"))
        .and(body_json(json!({
            "connection_id": CONNECTION_ID,
            "integration_id": "exa-peer",
            "tags": owner_tags()
        })))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let handler = reconnect_session(&nango.uri(), store_with_connection(owner_tags()).await);
    let answer = answer(
        handler
            .handle(reconnect_as("colleague-1", Some("org-7")))
            .await,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
}

#[tokio::test]
async fn reconnect_for_someone_elses_connection_is_404_like_an_unknown_one() {
    let nango = nango_that_must_not_be_called().await;
    let handler = reconnect_session(&nango.uri(), store_with_connection(owner_tags()).await);

    let stranger = answer(
        handler
            .handle(reconnect_as("mallory", Some("org-666")))
            .await,
    );
    let unknown = answer(
        handler
            .handle(
                Event::from(POST_RECONNECT)
                    .body(r#"{"connectionId":"00000000-0000-4000-8000-000000000000"}"#)
                    .request(),
            )
            .await,
    );

    assert_eq!(stranger.status, 404);
    assert_eq!(stranger.error_code(), "connection_not_found");
    assert_eq!(
        stranger.body, unknown.body,
        "the same answer: existence is not revealed"
    );
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn deleted_connection_is_404() {
    let nango = nango_that_must_not_be_called().await;
    let store = store_with_connection(owner_tags()).await;
    given(
        &webhook_receiver(store.clone()).await,
        &auth_webhook("deletion", true, Some(owner_tags()), None),
    )
    .await;
    let answer = answer(
        reconnect_session(&nango.uri(), store)
            .handle(reconnect_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn missing_or_malformed_body_is_400() {
    let nango = nango_that_must_not_be_called().await;
    let handler = reconnect_session(&nango.uri(), store().await);
    let requests = [
        Event::from(POST_RECONNECT).no_body().request(),
        Event::from(POST_RECONNECT).body("{}").request(),
        Event::from(POST_RECONNECT)
            .body(r#"{"connectionId":""}"#)
            .request(),
        Event::from(POST_RECONNECT)
            .body(r#"{"connectionId":42}"#)
            .request(),
        Event::from(POST_RECONNECT)
            .body(r#"{"connectionId":"c","tags":{"end_user_id":"me"}}"#)
            .request(),
        Event::from(POST_RECONNECT)
            .body(&format!(r#"["{CONNECTION_ID}"]"#))
            .request(),
    ];
    for request in requests {
        let answer = answer(handler.handle(request).await);
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.error_code(), "invalid_body");
    }
}

#[tokio::test]
async fn no_identity_is_401() {
    let handler = reconnect_session("http://127.0.0.1:1", store().await);
    let answer = answer(
        handler
            .handle(Event::from(POST_RECONNECT).claims(None).request())
            .await,
    );
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn connection_gone_from_nango_is_404_and_any_other_refusal_502_with_nangos_code() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions/reconnect"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": "invalid_body",
            "message": "ConnectionID or IntegrationId does not exists"
        }})))
        .mount(&nango)
        .await;
    // Deleted in Nango (a delete racing this reconnect, say): its exact lookup finds nothing.
    Mock::given(path("/connections"))
        .and(query_param("connectionId", CONNECTION_ID))
        .and(query_param("integrationId", "exa-peer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"connections": []})))
        .up_to_n_times(1)
        .mount(&nango)
        .await;
    let handler = reconnect_session(&nango.uri(), store_with_connection(owner_tags()).await);
    let gone = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);
    assert_eq!(
        (gone.status, gone.error_code()),
        (404, "connection_not_found"),
        "{}",
        gone.body
    );

    // Nango still has it: the refusal is Nango's own, passed on.
    Mock::given(path("/connections"))
        .and(query_param("connectionId", CONNECTION_ID))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"connections": [
                {"connection_id": CONNECTION_ID, "provider_config_key": "exa-peer"}
            ]})),
        )
        .mount(&nango)
        .await;
    let refused = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);
    assert_eq!(refused.status, 502);
    assert_eq!(refused.body["error"]["nangoCode"], "invalid_body");
}

#[tokio::test]
async fn storage_down_is_500() {
    let handler = reconnect_session(
        "http://127.0.0.1:1",
        ConnectionStore::new(unreachable_dynamodb(), "t"),
    );
    let answer = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);
    assert_eq!(answer.status, 500);
    assert_eq!(answer.error_code(), "storage_error");
}

fn allowing(list: &str) -> nango_connect::config::AllowedIntegrations {
    nango_connect::config::AllowedIntegrations::from_source(&[("NANGO_ALLOWED_INTEGRATIONS", list)])
        .unwrap()
}

#[tokio::test]
async fn a_connection_of_an_integration_not_allowed_is_refused_before_nango_is_called() {
    let nango = nango_that_must_not_be_called().await;
    let store = store_with_connection(owner_tags()).await;
    let handler = reconnect_session_allowing(
        &nango.uri(),
        store.clone(),
        nango_connect::access::OrganizationAccess::Shared,
        allowing("github, linear"),
    );

    let answer = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);

    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "integration_not_allowed"),
        "the same rule and answer as a new session for it: {}",
        answer.body
    );
    assert_eq!(
        answer.body["error"]["message"],
        "Integration 'exa-peer' is not allowed."
    );
    // Someone else's connection stays a plain 404, whatever its integration.
    let theirs = answer_of(&handler, reconnect_as("mallory", None)).await;
    assert_eq!(
        (theirs.status, theirs.error_code()),
        (404, "connection_not_found")
    );
    assert!(nango.received_requests().await.unwrap().is_empty());
}

async fn answer_of(
    handler: &Checked<nango_connect::handlers::reconnect_session::ReconnectSession>,
    request: lambda_http::Request,
) -> Answer {
    answer(handler.handle(request).await)
}

#[tokio::test]
async fn a_connection_of_an_allowed_integration_is_reconnected() {
    let nango = MockServer::start().await;
    Mock::given(path("/connect/sessions/reconnect"))
        .respond_with(session_created())
        .expect(1)
        .mount(&nango)
        .await;
    let handler = reconnect_session_allowing(
        &nango.uri(),
        store_with_connection(owner_tags()).await,
        nango_connect::access::OrganizationAccess::Shared,
        allowing("github,exa-peer"),
    );
    let answer = answer(handler.handle(reconnect_as("user-42", Some("org-7"))).await);
    assert_eq!(answer.status, 201, "{}", answer.body);
}
