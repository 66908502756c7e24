//! `DELETE /connections/{connectionId}`: Nango first, then our store; only for who may.

use nango_connect::access::OrganizationAccess;
use nango_connect::connection::Status;
use nango_connect::handlers::delete_connection::DeleteConnection;
use nango_connect::nango::ConnectionId;
use nango_connect::store::ConnectionStore;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn delete_handler(
    nango: &MockServer,
    store: ConnectionStore,
    policy: OrganizationAccess,
) -> Checked<DeleteConnection> {
    Checked(DeleteConnection::new(
        nango_client(&nango.uri(), fast_timeouts()),
        store,
        nango_connect::config::ClaimNames::default(),
        policy,
    ))
}

fn delete_as(end_user_id: &str, organization_id: Option<&str>) -> lambda_http::Request {
    Event::from(DELETE_CONNECTION)
        .claims(Some(claims(end_user_id, organization_id)))
        .request()
}

/// user-42's connection (org-7), as its creation webhook left it.
async fn store_with_connection() -> ConnectionStore {
    let store = store().await;
    given(&webhook_receiver(store.clone()).await, &creation()).await;
    store
}

async fn nango_answering(template: ResponseTemplate, expected: u64) -> MockServer {
    let nango = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(format!("/connections/{CONNECTION_ID}")))
        .and(query_param("provider_config_key", "exa-peer"))
        .and(header(
            "authorization",
            format!("Bearer {SECRET_KEY}").as_str(),
        ))
        .respond_with(template)
        .expect(expected)
        .mount(&nango)
        .await;
    nango
}

async fn stored_status(store: &ConnectionStore) -> Status {
    store
        .get(&ConnectionId::parse(CONNECTION_ID).unwrap())
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn the_owner_deletes_in_nango_then_here_and_nothing_brings_it_back() {
    let nango = nango_answering(
        ResponseTemplate::new(200).set_body_json(json!({"success": true})),
        1,
    )
    .await;
    let store = store_with_connection().await;
    let handler = delete_handler(&nango, store.clone(), OrganizationAccess::Shared);

    let deleted = answer(handler.handle(delete_as("user-42", Some("org-7"))).await);

    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(deleted.body, serde_json::Value::Null, "no body");
    assert_eq!(stored_status(&store).await, Status::Deleted);
    let listed = answer(
        list_connections(store.clone())
            .handle(list_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(listed.body["connections"], json!([]));
    let late = deliver(&webhook_receiver(store.clone()).await, &creation()).await;
    assert_eq!(late.body["result"], "unchanged");
    // Deleting it again: it is nobody's any more.
    let again = answer(handler.handle(delete_as("user-42", Some("org-7"))).await);
    assert_eq!(
        (again.status, again.error_code()),
        (404, "connection_not_found")
    );
}

#[tokio::test]
async fn already_gone_in_nango_counts_as_deleted() {
    for gone in [
        ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": "unknown_connection", "message": "No connection"}}),
        ),
        ResponseTemplate::new(404).set_body_json(json!({"error": {"code": "not_found"}})),
    ] {
        let nango = nango_answering(gone, 1).await;
        let store = store_with_connection().await;
        let answer = answer(
            delete_handler(&nango, store.clone(), OrganizationAccess::Shared)
                .handle(delete_as("user-42", Some("org-7")))
                .await,
        );
        assert_eq!(answer.status, 204, "{}", answer.body);
        assert_eq!(stored_status(&store).await, Status::Deleted);
    }
}

#[tokio::test]
async fn who_may_delete_follows_the_policy_and_others_get_404_without_a_call_to_nango() {
    for (policy, colleague_may) in [
        (OrganizationAccess::Shared, true),
        (OrganizationAccess::Visible, false),
        (OrganizationAccess::Private, false),
    ] {
        let nango = nango_answering(
            ResponseTemplate::new(200).set_body_json(json!({"success": true})),
            u64::from(colleague_may),
        )
        .await;
        let store = store_with_connection().await;
        let handler = delete_handler(&nango, store.clone(), policy);
        let stranger = answer(handler.handle(delete_as("mallory", Some("org-666"))).await);
        assert_eq!(
            (stranger.status, stranger.error_code()),
            (404, "connection_not_found"),
            "{policy:?}"
        );
        let colleague = answer(
            handler
                .handle(delete_as("colleague-1", Some("org-7")))
                .await,
        );
        if colleague_may {
            assert_eq!(colleague.status, 204, "{policy:?}");
            assert_eq!(stored_status(&store).await, Status::Deleted);
        } else {
            assert_eq!(
                (colleague.status, colleague.error_code()),
                (404, "connection_not_found"),
                "{policy:?}"
            );
            assert_eq!(
                stored_status(&store).await,
                Status::Active,
                "{policy:?}: untouched"
            );
        }
    }
}

#[tokio::test]
async fn unknown_or_impossible_ids_are_404_without_a_call_to_nango() {
    let nango = nango_that_must_not_be_called().await;
    let handler = delete_handler(
        &nango,
        store_with_connection().await,
        OrganizationAccess::Shared,
    );
    for id in ["00000000-0000-4000-8000-000000000000", "..", ""] {
        let mut event =
            Event::from(DELETE_CONNECTION).claims(Some(claims("user-42", Some("org-7"))));
        event = event.path_parameter("connectionId", id);
        let answer = answer(handler.handle(event.request()).await);
        assert_eq!(
            (answer.status, answer.error_code()),
            (404, "connection_not_found"),
            "{id:?}"
        );
    }
}

#[tokio::test]
async fn nango_failing_leaves_the_store_unchanged_so_the_user_can_retry() {
    for (template, expected_calls, status, code) in [
        (ResponseTemplate::new(500), 4, 503, "nango_unavailable"),
        (
            ResponseTemplate::new(429).insert_header("Retry-After", "30"),
            1,
            503,
            "nango_unavailable",
        ),
        (
            ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)),
            3,
            504,
            "nango_timeout",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"error": {"code": "unknown_account"}})),
            1,
            502,
            "nango_rejected",
        ),
    ] {
        let nango = MockServer::start().await;
        Mock::given(method("DELETE"))
            .respond_with(template)
            .mount(&nango)
            .await;
        let store = store_with_connection().await;
        let answer = answer(
            delete_handler(&nango, store.clone(), OrganizationAccess::Shared)
                .handle(delete_as("user-42", Some("org-7")))
                .await,
        );
        assert_eq!((answer.status, answer.error_code()), (status, code));
        let calls = nango.received_requests().await.unwrap_or_default().len();
        assert!(
            calls >= 1 && calls <= expected_calls,
            "{code}: {calls} calls"
        );
        assert_eq!(
            stored_status(&store).await,
            Status::Active,
            "{code}: nothing changed here"
        );
    }
}

#[tokio::test]
async fn no_identity_is_401_wrong_method_405_and_storage_down_500() {
    let nango = nango_that_must_not_be_called().await;
    let handler = delete_handler(&nango, store().await, OrganizationAccess::Shared);
    let anonymous = answer(
        handler
            .handle(Event::from(DELETE_CONNECTION).claims(None).request())
            .await,
    );
    assert_eq!(
        (anonymous.status, anonymous.error_code()),
        (401, "unauthenticated")
    );
    let get = answer(
        handler
            .handle(Event::from(DELETE_CONNECTION).method("GET").request())
            .await,
    );
    assert_eq!(get.status, 405);
    assert_eq!(get.response.headers()["allow"], "DELETE");
    let down = Checked(DeleteConnection::new(
        nango_client(&nango.uri(), fast_timeouts()),
        ConnectionStore::new(unreachable_dynamodb(), "t"),
        nango_connect::config::ClaimNames::default(),
        OrganizationAccess::Shared,
    ));
    let answer = answer(down.handle(delete_as("user-42", Some("org-7"))).await);
    assert_eq!((answer.status, answer.error_code()), (500, "storage_error"));
}
