//! Who may act on a connection: the organization policy, and claims that name nobody.

use nango_connect::access::OrganizationAccess;
use nango_connect::store::ConnectionStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// Alice's connection in org `acme`, and Bob's own connection, also in `acme`.
async fn team_store() -> ConnectionStore {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    for (id, owner) in [
        (
            "c-alice",
            json!({"end_user_id": "alice", "organization_id": "acme"}),
        ),
        (
            "c-bob",
            json!({"end_user_id": "bob", "organization_id": "acme"}),
        ),
    ] {
        let body = auth_webhook("creation", true, Some(owner), None).replace(CONNECTION_ID, id);
        given(&receiver, &body).await;
    }
    store
}

fn listed(answer: &Answer) -> Vec<String> {
    answer.body["connections"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", answer.body))
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap().to_owned())
        .collect()
}

fn reconnect_request(claims: Value, connection_id: &str) -> lambda_http::Request {
    Event::from(POST_RECONNECT)
        .claims(Some(claims))
        .body(&json!({"connectionId": connection_id}).to_string())
        .request()
}

async fn nango_counting_reconnects() -> MockServer {
    let nango = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/connect/sessions/reconnect"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {
            "token": "nango_connect_session_x",
            "connect_link": "https://connect.nango.dev/?session_token=nango_connect_session_x",
            "expires_at": "2026-11-26T18:35:00.000Z"
        }})))
        .mount(&nango)
        .await;
    nango
}

#[tokio::test]
async fn each_policy_gives_colleagues_what_it_names() {
    // (policy, Bob sees Alice's, Bob may reconnect Alice's)
    for (policy, sees, reconnects) in [
        (OrganizationAccess::Shared, true, true),
        (OrganizationAccess::Visible, true, false),
        (OrganizationAccess::Private, false, false),
    ] {
        let store = team_store().await;
        let bob = claims("bob", Some("acme"));

        let list = answer(
            list_connections_under(store.clone(), policy)
                .handle(
                    Event::from(GET_CONNECTIONS)
                        .claims(Some(bob.clone()))
                        .request(),
                )
                .await,
        );
        assert_eq!(list.status, 200, "{policy:?}: {}", list.body);
        let expected: Vec<&str> = if sees {
            vec!["c-bob", "c-alice"]
        } else {
            vec!["c-bob"]
        };
        assert_eq!(listed(&list), expected, "{policy:?}");

        let nango = nango_counting_reconnects().await;
        let handler = reconnect_session_under(&nango.uri(), store.clone(), policy);
        let theirs = answer(
            handler
                .handle(reconnect_request(bob.clone(), "c-alice"))
                .await,
        );
        let own = answer(handler.handle(reconnect_request(bob, "c-bob")).await);
        assert_eq!(own.status, 201, "{policy:?}: the end user always may");
        if reconnects {
            assert_eq!(theirs.status, 201, "{policy:?}: {}", theirs.body);
        } else {
            assert_eq!(
                (theirs.status, theirs.error_code()),
                (404, "connection_not_found"),
                "{policy:?}"
            );
        }
        let calls = nango.received_requests().await.unwrap_or_default().len();
        assert_eq!(
            calls,
            1 + usize::from(reconnects),
            "{policy:?}: Nango asked only when allowed"
        );
    }
}

/// What API Gateway hands over for an `org_id` the identity provider did not emit as a string.
const ORGANIZATION_CLAIMS_THAT_NAME_NOBODY: [&str; 6] = [
    "null",
    "undefined",
    "",
    "[acme beta]",
    "{\"id\":\"acme\"}",
    "None",
];

#[tokio::test]
async fn callers_whose_organization_claim_names_nobody_share_nothing() {
    for value in ORGANIZATION_CLAIMS_THAT_NAME_NOBODY {
        let store = store().await;
        let receiver = webhook_receiver(store.clone()).await;
        // Carol's token said the same thing; her connection's tags (set by some other backend,
        // say) even name the organization literally.
        let carols = auth_webhook(
            "creation",
            true,
            Some(json!({"end_user_id": "carol", "organization_id": value})),
            None,
        );
        given(&receiver, &carols).await;
        let mut dave = claims("dave", None);
        dave["org_id"] = json!(value);

        let list = answer(
            list_connections(store.clone())
                .handle(
                    Event::from(GET_CONNECTIONS)
                        .claims(Some(dave.clone()))
                        .request(),
                )
                .await,
        );
        assert_eq!(
            (list.status, listed(&list).len()),
            (200, 0),
            "org_id {value:?}"
        );

        let nango = nango_that_must_not_be_called().await;
        let reconnect = answer(
            reconnect_session(&nango.uri(), store)
                .handle(reconnect_request(dave, CONNECTION_ID))
                .await,
        );
        assert_eq!(reconnect.status, 404, "org_id {value:?}");
    }
}

#[tokio::test]
async fn an_end_user_claim_that_names_nobody_is_401() {
    for value in ["null", "undefined", "", "[a b]", "{}"] {
        let mut claims = claims("x", Some("acme"));
        claims["sub"] = json!(value);
        let list = answer(
            list_connections(store().await)
                .handle(Event::from(GET_CONNECTIONS).claims(Some(claims)).request())
                .await,
        );
        assert_eq!(
            (list.status, list.error_code()),
            (401, "unauthenticated"),
            "sub {value:?}"
        );
    }
}

#[tokio::test]
async fn a_webhook_naming_another_owner_does_not_hand_the_connection_over() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    let mallory = json!({"end_user_id": "mallory", "organization_id": "evil"});
    let failure = refresh_failure(Some(mallory.clone()));
    given(&receiver, &failure).await;

    let mallorys = answer(
        list_connections(store.clone())
            .handle(list_as("mallory", Some("evil")))
            .await,
    );
    assert_eq!(listed(&mallorys).len(), 0, "the owner did not move");
    let owners = answer(
        list_connections(store)
            .handle(list_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(listed(&owners), [CONNECTION_ID]);
    assert_eq!(
        owners.body["connections"][0]["status"], "error",
        "the rest applied"
    );
}
