//! The webhook receiver: signature first, then idempotent, order-tolerant upserts.

use base64::Engine;
use nango_connect::connection::Status;
use nango_connect::nango::ConnectionId;
use nango_connect::store::ConnectionStore;
use serde_json::json;

use crate::support::*;

fn connection_id() -> ConnectionId {
    ConnectionId::parse(CONNECTION_ID).unwrap()
}

#[tokio::test]
async fn recorded_creation_event_stores_an_owned_active_connection() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let event = Event::from(WEBHOOK);
    let body = event.raw()["body"].as_str().unwrap().to_owned();
    receiver.nango.agree_with(&body);
    // The fixture's header is spelled as Nango spells it: X-Nango-Hmac-Sha256.
    let request = event.header("X-Nango-Hmac-Sha256", &sign(&body)).request();

    let answer = answer(receiver.handle(request).await);

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, json!({"result": "stored"}));
    let stored = store.get(&connection_id()).await.unwrap().expect("stored");
    assert_eq!(stored.status, Status::Active);
    assert_eq!(stored.integration_id.as_str(), "exa-peer");
    assert_eq!(stored.provider.as_deref(), Some("exa"));
    assert_eq!(stored.auth_mode.as_deref(), Some("API_KEY"));
    assert_eq!(stored.environment.as_deref(), Some("dev"));
    assert_eq!(stored.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.owner.organization_id.as_deref(), Some("org-7"));
    assert_eq!(
        stored.tags.get("organization_display_name"),
        Some("Acme Org")
    );
    assert_eq!(stored.tags.iter().count(), 5);
}

#[tokio::test]
async fn signature_header_name_is_case_insensitive() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = creation();
    for name in ["x-nango-hmac-sha256", "X-NANGO-HMAC-SHA256"] {
        let request = Event::from(WEBHOOK)
            .without_header("X-Nango-Hmac-Sha256")
            .body(&body)
            .header(name, &sign(&body))
            .request();
        assert_eq!(answer(receiver.handle(request).await).status, 200, "{name}");
    }
}

#[tokio::test]
async fn base64_encoded_body_is_verified_over_its_decoded_bytes() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = creation();
    let mut event = Event::from(WEBHOOK)
        .header("X-Nango-Hmac-Sha256", &sign(&body))
        .raw()
        .clone();
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body.as_bytes()));
    event["isBase64Encoded"] = json!(true);
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    assert_eq!(answer(receiver.handle(request).await).status, 200);
    assert!(store.get(&connection_id()).await.unwrap().is_some());
}

#[tokio::test]
async fn wrong_missing_or_legacy_signature_is_401_and_writes_nothing() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = creation();
    let legacy = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            format!("{SIGNING_KEY}{body}").as_bytes(),
        ))
    };
    let requests = [
        Event::from(WEBHOOK)
            .body(&body)
            .without_header("X-Nango-Hmac-Sha256")
            .request(),
        Event::from(WEBHOOK)
            .body(&body)
            .header("X-Nango-Hmac-Sha256", &"ab".repeat(32))
            .request(),
        Event::from(WEBHOOK)
            .body(&body)
            .header(
                "X-Nango-Hmac-Sha256",
                &hex::encode(nango_connect::webhook::signature::sign(
                    b"other-key",
                    body.as_bytes(),
                )),
            )
            .request(),
        Event::from(WEBHOOK)
            .body(&body)
            .without_header("X-Nango-Hmac-Sha256")
            .header("X-Nango-Signature", &legacy)
            .request(),
        // Signed over other bytes than those delivered.
        Event::from(WEBHOOK)
            .body(&body.replace("user-42", "user-43"))
            .header("X-Nango-Hmac-Sha256", &sign(&body))
            .request(),
    ];
    for request in requests {
        let answer = answer(receiver.handle(request).await);
        assert_eq!(answer.status, 401);
        assert_eq!(answer.error_code(), "invalid_signature");
    }
    assert_eq!(store.get(&connection_id()).await.unwrap(), None);
}

/// Nango forwards a provider's webhook it cannot match unwrapped, signed with our key: whatever
/// JSON the provider sent. A 4xx would count towards Nango's circuit breaker (5 in 10 s drop every
/// delivery for 60 s), so a signed body we can never use is acknowledged, and nothing is written.
#[tokio::test]
async fn signed_but_unusable_bodies_are_acknowledged_and_write_nothing() {
    let (client, table) = fresh_table().await;
    let receiver = webhook_receiver(ConnectionStore::new(client, table.clone())).await;
    for body in [
        "not json",
        "[1,2,3]",
        r#"[{"type":"auth","operation":"deletion","connectionId":"a2968dec-61fa-4a65-8b14-60bb4a851878"}]"#,
        r#"{"hello":"world"}"#,
        r#"{"type":42}"#,
        r#"{"type":"auth","operation":"creation"}"#,
        r#"{"type":"auth","operation":"deletion","providerConfigKey":"exa-peer"}"#,
    ] {
        let answer = deliver(&receiver, body).await;
        assert_eq!(
            (answer.status, &answer.body),
            (200, &json!({"result": "unusable"})),
            "{body}"
        );
    }
    assert_eq!(receiver.nango.lookups().await, 0, "Nango was not asked");
    let items = dynamodb_json("DynamoDB_20120810.Scan", json!({"TableName": table})).await;
    assert_eq!(items["Count"], 0, "nothing written");
}

#[tokio::test]
async fn unknown_auth_operations_are_acknowledged_and_ignored() {
    // Other webhook types are published to the event bus: see events.rs.
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = auth_webhook("teleport", true, Some(owner_tags()), None);
    let answer = deliver(&receiver, &body).await;
    assert_eq!(answer.status, 200, "{body}");
    assert_eq!(answer.body, json!({"result": "ignored"}));
    assert_eq!(store.get(&connection_id()).await.unwrap(), None);
}

#[tokio::test]
async fn failed_creation_creates_no_connection() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = auth_webhook(
        "creation",
        false,
        None,
        Some(("invalid_callback", "access_denied")),
    );
    let answer = deliver(&receiver, &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"result": "logged"}));
    assert_eq!(store.get(&connection_id()).await.unwrap(), None);
}

#[tokio::test]
async fn duplicate_delivery_ends_in_the_same_state_as_one() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = creation();
    given(&receiver, &body).await;
    let once = store.get(&connection_id()).await.unwrap();

    let again = deliver(&receiver, &body).await;

    assert_eq!(again.status, 200);
    assert_eq!(again.body, json!({"result": "unchanged"}));
    assert_eq!(
        store.get(&connection_id()).await.unwrap(),
        once,
        "not even updatedAt or version moved"
    );
}

#[tokio::test]
async fn refresh_failure_then_override_success_goes_error_then_active() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;

    given(
        &receiver,
        &refresh_failure(Some(json!({"end_user_id": "user-42"}))),
    )
    .await;
    let failed = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Error);
    let error = failed.error.clone().unwrap();
    assert_eq!(
        (error.kind.as_str(), error.description.as_str()),
        ("refresh_token_external_error", "invalid_grant")
    );

    given(
        &receiver,
        &auth_webhook("override", true, Some(json!({})), None),
    )
    .await;
    let healed = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(healed.status, Status::Active);
    assert_eq!(healed.error, None);
    assert_eq!(
        healed.created_at, failed.created_at,
        "createdAt never moves"
    );
}

#[tokio::test]
async fn override_failure_marks_the_connection_in_error() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    let body = auth_webhook(
        "override",
        false,
        Some(json!({})),
        Some(("invalid_credentials", "401 from provider")),
    );
    given(&receiver, &body).await;
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Error);
    assert_eq!(stored.error.unwrap().kind, "invalid_credentials");
}

#[tokio::test]
async fn override_with_empty_tags_keeps_owner_and_tags() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    given(&receiver, &refresh_failure(None)).await;

    given(
        &receiver,
        &auth_webhook("override", true, Some(json!({})), None),
    )
    .await;

    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.owner.organization_id.as_deref(), Some("org-7"));
    assert_eq!(stored.tags.iter().count(), 4);
    assert_eq!(stored.status, Status::Active);
}

#[tokio::test]
async fn late_creation_does_not_undo_later_events() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let creation = creation();
    given(&receiver, &creation).await;
    given(&receiver, &refresh_failure(None)).await;
    let before = store.get(&connection_id()).await.unwrap();

    // Nango retries the creation webhook after the refresh failure went through.
    let answer = deliver(&receiver, &creation).await;

    assert_eq!(answer.body, json!({"result": "unchanged"}));
    assert_eq!(store.get(&connection_id()).await.unwrap(), before);
}

#[tokio::test]
async fn webhook_for_an_unknown_connection_is_stored_and_only_nango_names_its_owner() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let lister = list_connections(store.clone());

    // The creation webhook was lost; the first we hear is a reconnect without tags.
    let answer_ = deliver(
        &receiver,
        &auth_webhook("override", true, Some(json!({})), None),
    )
    .await;
    assert_eq!(answer_.status, 200);
    let orphan = store
        .get(&connection_id())
        .await
        .unwrap()
        .expect("stored anyway");
    assert_eq!(orphan.owner.end_user_id, None);
    assert_eq!(orphan.status, Status::Active);
    let listed = answer(lister.handle(list_as("user-42", Some("org-7"))).await);
    assert_eq!(listed.body["connections"], json!([]), "nobody owns it yet");

    // A refresh failure naming an owner does not claim it: a status change is applied, an owner
    // only ever comes from Nango's own row.
    given(&receiver, &refresh_failure(Some(owner_tags()))).await;
    let still_orphan = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(still_orphan.owner.end_user_id, None);
    assert_eq!(still_orphan.status, Status::Error);
    let listed = answer(lister.handle(list_as("user-42", Some("org-7"))).await);
    assert_eq!(listed.body["connections"], json!([]), "nobody owns it yet");

    // The late creation, confirmed by Nango's listing, names the owner.
    given(&receiver, &creation()).await;
    let owned = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(owned.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(owned.created_at, orphan.created_at);
    let listed = answer(lister.handle(list_as("user-42", Some("org-7"))).await);
    assert_eq!(listed.body["connections"][0]["connectionId"], CONNECTION_ID);
    assert_eq!(listed.body["connections"][0]["status"], "error");
}

#[tokio::test]
async fn deletion_unlists_the_connection_and_nothing_resurrects_it() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let lister = list_connections(store.clone());
    let creation = creation();
    given(&receiver, &creation).await;

    receiver.nango.remove(CONNECTION_ID);
    let answer_ = deliver(
        &receiver,
        &auth_webhook("deletion", true, Some(owner_tags()), None),
    )
    .await;
    assert_eq!(answer_.body, json!({"result": "stored"}));
    let deleted = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(deleted.status, Status::Deleted);
    assert!(deleted.deleted_at.is_some());

    for late in [
        creation,
        refresh_failure(Some(owner_tags())),
        auth_webhook("override", true, Some(owner_tags()), None),
    ] {
        let answer_ = deliver(&receiver, &late).await;
        assert_eq!(answer_.body, json!({"result": "unchanged"}));
    }
    assert_eq!(store.get(&connection_id()).await.unwrap(), Some(deleted));
    let listed = answer(lister.handle(list_as("user-42", Some("org-7"))).await);
    assert_eq!(listed.body["connections"], json!([]));
}

#[tokio::test]
async fn concurrent_deliveries_lose_no_update() {
    let store = store().await;
    let receiver = std::sync::Arc::new(webhook_receiver(store.clone()).await);
    let creation = creation();
    let failure = refresh_failure(None);
    // Nango's two webhook URLs and its retries can deliver these at the same moment.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let receiver = receiver.clone();
        let body = if i % 2 == 0 {
            creation.clone()
        } else {
            failure.clone()
        };
        tasks.push(tokio::spawn(async move {
            deliver(&receiver, &body).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    // Whatever the interleaving: the owner from the creation and the error from the failure.
    assert_eq!(stored.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.status, Status::Error);
    assert_eq!(stored.version, 2, "exactly two changes were written");
}

#[tokio::test]
async fn oversized_body_is_413_unless_nango_signed_it() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let big = format!(
        r#"{{"type":"auth","padding":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let signed = Event::from(WEBHOOK)
        .body(&big)
        .header("X-Nango-Hmac-Sha256", &sign(&big))
        .request();
    // Signed by Nango (a large provider forward): acknowledged, never parsed.
    let answer_ = answer(receiver.handle(signed).await);
    assert_eq!(
        (answer_.status, answer_.body),
        (200, json!({"result": "unusable"}))
    );
    let unsigned = Event::from(WEBHOOK)
        .body(&big)
        .header("X-Nango-Hmac-Sha256", &sign("something else"))
        .request();
    let answer_ = answer(receiver.handle(unsigned).await);
    assert_eq!(answer_.status, 413);
    assert_eq!(answer_.error_code(), "payload_too_large");

    // Without a declared length, the body's own length counts.
    let undeclared = Event::from(WEBHOOK)
        .body(&big)
        .without_header("content-length")
        .header("X-Nango-Hmac-Sha256", &sign("something else"))
        .request();
    assert_eq!(answer(receiver.handle(undeclared).await).status, 413);

    // A declared length over the limit is enough, whatever the body.
    let declared = Event::from(WEBHOOK)
        .header("content-length", "2000000")
        .request();
    assert_eq!(answer(receiver.handle(declared).await).status, 413);
}

#[tokio::test]
async fn only_post_is_accepted() {
    let receiver = webhook_receiver(store().await).await;
    let answer = answer(
        receiver
            .handle(Event::from(WEBHOOK).method("GET").no_body().request())
            .await,
    );
    assert_eq!(answer.status, 405);
    assert_eq!(answer.error_code(), "method_not_allowed");
    assert_eq!(answer.response.headers()["allow"], "POST");
}

#[tokio::test]
async fn storage_failure_is_500_so_nango_retries() {
    let receiver = webhook_receiver(nango_connect::store::ConnectionStore::new(
        unreachable_dynamodb(),
        "connections",
    ))
    .await;
    let body = creation();
    let answer = deliver(&receiver, &body).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.error_code(), "storage_error");
    assert!(
        !answer.body.to_string().contains("127.0.0.1"),
        "no internals in the body"
    );
}

#[tokio::test]
async fn refresh_success_heals_a_failing_connection() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    given(&receiver, &refresh_failure(None)).await;
    given(
        &receiver,
        &auth_webhook(
            "refresh",
            true,
            Some(json!({"end_user_id": "user-42"})),
            None,
        ),
    )
    .await;
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Active);
    assert_eq!(stored.error, None);
}

#[tokio::test]
async fn deletion_counts_whatever_its_success_flag_says() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    receiver.nango.remove(CONNECTION_ID);
    let answer = deliver(&receiver, &auth_webhook("deletion", false, None, None)).await;
    assert_eq!(answer.body, json!({"result": "stored"}));
    assert_eq!(
        store.get(&connection_id()).await.unwrap().unwrap().status,
        Status::Deleted
    );
}

#[tokio::test]
async fn deletion_of_a_connection_never_seen_keeps_a_late_creation_out() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(
        &receiver,
        &auth_webhook("deletion", true, Some(json!({})), None),
    )
    .await;
    let late = deliver(&receiver, &creation()).await;
    assert_eq!(late.body, json!({"result": "unchanged"}));
    let listed = answer(
        list_connections(store.clone())
            .handle(list_as("user-42", Some("org-7")))
            .await,
    );
    assert_eq!(listed.body["connections"], json!([]));
}

/// The deprecated `endUser` object of a creation webhook is a claim like any other: the owner
/// comes from the tags of Nango's row (what our own session put there).
#[tokio::test]
async fn the_deprecated_end_user_object_names_no_owner_nango_does_not() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    let body = auth_webhook("creation", true, Some(json!({})), None).replace(
        r#""environment""#,
        r#""endUser":{"endUserEmail":"bob@example.com","endUserId":"bob","organizationId":"org-9","tags":{}},"environment""#,
    );
    assert_eq!(deliver(&receiver, &body).await.status, 200);
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.owner.organization_id.as_deref(), Some("org-7"));
}
