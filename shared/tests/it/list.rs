//! `GET /connections`: mine and my organization's, newest first, through the indexes.

use nango_connect::store::ConnectionStore;
use serde_json::json;

use crate::support::*;

async fn deliver_for(store: &ConnectionStore, connection_id: &str, body: &str) {
    let body = body.replace(CONNECTION_ID, connection_id);
    let answer = answer(
        webhook_receiver(store.clone())
            .handle(signed_webhook(&body))
            .await,
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

fn created_by(end_user_id: &str, organization_id: Option<&str>) -> String {
    let mut tags = json!({"end_user_id": end_user_id});
    if let Some(organization_id) = organization_id {
        tags["organization_id"] = json!(organization_id);
    }
    auth_webhook("creation", true, Some(tags), None)
}

fn ids(body: &serde_json::Value) -> Vec<&str> {
    body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_mine_and_my_organizations_newest_first() {
    let store = store().await;
    deliver_for(&store, "c-mine-old", &created_by("user-42", None)).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    deliver_for(
        &store,
        "c-colleague",
        &created_by("colleague-1", Some("org-7")),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    deliver_for(
        &store,
        "c-someone-else",
        &created_by("stranger", Some("org-8")),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    deliver_for(
        &store,
        "c-mine-in-org",
        &created_by("user-42", Some("org-7")),
    )
    .await;
    deliver_for(
        &store,
        "c-mine-old",
        &auth_webhook(
            "refresh",
            false,
            None,
            Some(("refresh_token_external_error", "invalid_grant")),
        ),
    )
    .await;

    let answer = answer(
        list_connections(store)
            .handle(list_as("user-42", Some("org-7")))
            .await,
    );

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        ids(&answer.body),
        ["c-mine-in-org", "c-colleague", "c-mine-old"],
        "no duplicates, newest first"
    );
    let failing = &answer.body["connections"][2];
    assert_eq!(failing["status"], "error");
    assert_eq!(
        failing["error"],
        json!({"type": "refresh_token_external_error", "description": "invalid_grant"})
    );
    assert_eq!(failing["integrationId"], "exa-peer");
    assert_eq!(failing["provider"], "exa");
    assert!(failing["createdAt"].as_str().unwrap() < failing["updatedAt"].as_str().unwrap());
    let healthy = &answer.body["connections"][0];
    assert_eq!(healthy["status"], "active");
    assert_eq!(healthy["error"], serde_json::Value::Null);
    let keys: Vec<_> = healthy.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 7, "exactly the documented fields: {keys:?}");
}

#[tokio::test]
async fn without_an_organization_only_my_own_are_listed() {
    let store = store().await;
    deliver_for(&store, "c-mine", &created_by("user-42", Some("org-7"))).await;
    deliver_for(
        &store,
        "c-colleague",
        &created_by("colleague-1", Some("org-7")),
    )
    .await;
    let answer = answer(
        list_connections(store)
            .handle(list_as("user-42", None))
            .await,
    );
    assert_eq!(ids(&answer.body), ["c-mine"]);
}

#[tokio::test]
async fn nothing_yet_is_an_empty_list() {
    let answer = answer(
        list_connections(store().await)
            .handle(list_as("user-42", None))
            .await,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"connections": []}));
}

#[tokio::test]
async fn no_identity_is_401_and_wrong_method_405() {
    let handler = list_connections(store().await);
    let answer_ = answer(
        handler
            .handle(Event::from(GET_CONNECTIONS).claims(None).request())
            .await,
    );
    assert_eq!(answer_.status, 401);
    assert_eq!(answer_.error_code(), "unauthenticated");
    let answer_ = answer(
        handler
            .handle(Event::from(GET_CONNECTIONS).method("DELETE").request())
            .await,
    );
    assert_eq!(answer_.status, 405);
    assert_eq!(answer_.response.headers()["allow"], "GET");
}

#[tokio::test]
async fn storage_down_is_500() {
    let handler = list_connections(ConnectionStore::new(unreachable_dynamodb(), "t"));
    let answer = answer(handler.handle(list_as("user-42", None)).await);
    assert_eq!(answer.status, 500);
    assert_eq!(answer.error_code(), "storage_error");
}
