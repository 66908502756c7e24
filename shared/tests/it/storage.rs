//! The store's hard paths, reproduced on purpose: a write that lands between our read and our
//! conditional put, contention we give up on, items DynamoDB will never take, key rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nango_connect::bootstrap::SecretSource;
use nango_connect::connection::{
    AuthEvent, Change, Failure, MAX_ERROR_DESCRIPTION_CHARS, Owner, Status,
};
use nango_connect::nango::{ConnectionId, IntegrationId, Tags};
use nango_connect::store::{ConnectionStore, Recorded, StoreError};
use nango_connect::webhook::SigningKeys;
use serde_json::json;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::dynamo_proxy::DynamoProxy;
use crate::support::*;

fn event(change: Change) -> AuthEvent {
    AuthEvent {
        connection_id: ConnectionId::parse(CONNECTION_ID).unwrap(),
        integration_id: IntegrationId::parse("exa-peer").unwrap(),
        provider: Some("exa".into()),
        auth_mode: Some("API_KEY".into()),
        environment: Some("dev".into()),
        owner: Owner::default(),
        tags: Tags::new(),
        change,
    }
}

/// The table a store writes to.
fn fresh_table_name(store: &ConnectionStore) -> String {
    store.table().to_owned()
}

/// Two stores on one table: one straight to DynamoDB Local, one through a proxy.
async fn direct_and_proxied() -> (ConnectionStore, ConnectionStore, DynamoProxy) {
    let (client, table) = fresh_table().await;
    let proxy = DynamoProxy::start(dynamodb_endpoint()).await;
    let proxied = ConnectionStore::new(dynamodb_client(&proxy.endpoint), table.clone());
    (ConnectionStore::new(client, table), proxied, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_our_read_and_our_put_is_kept_and_ours_applied_on_top() {
    let (direct, proxied, proxy) = direct_and_proxied().await;
    direct.record(&event(Change::Created)).await.unwrap();
    direct
        .record(&event(Change::Failed(Failure::new("first", "before"))))
        .await
        .unwrap();
    // Before our first put goes out, someone else records another failure.
    let injected = Arc::new(AtomicBool::new(false));
    let (once, other) = (injected.clone(), direct.clone());
    proxy.before(move |operation| {
        (operation == "PutItem" && !once.swap(true, Ordering::SeqCst)).then(|| {
            let other = other.clone();
            Box::pin(async move {
                let meanwhile = event(Change::Failed(Failure::new("second", "meanwhile")));
                assert!(matches!(
                    other.record(&meanwhile).await,
                    Ok(Recorded::Written(_))
                ));
            }) as _
        })
    });

    let recorded = proxied.record(&event(Change::Authorized)).await.unwrap();

    assert!(injected.load(Ordering::SeqCst), "the race was staged");
    assert_eq!(recorded, Recorded::Written(Status::Active));
    let stored = direct
        .get(&event(Change::Created).connection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.status, stored.error), (Status::Active, None));
    assert_eq!(
        stored.version, 4,
        "created, failed, failed meanwhile, then ours"
    );
    assert_eq!(
        proxy.operations(),
        ["PutItem", "PutItem"],
        "our first put lost the race, handed back the stored item, and was redone: no read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_contention_gives_up_with_a_retryable_500() {
    let (direct, proxied, proxy) = direct_and_proxied().await;
    direct.record(&event(Change::Created)).await.unwrap();
    let other = direct.clone();
    // Every put of ours is beaten by another write, alternating so each one is a real change.
    let flip = Arc::new(AtomicBool::new(false));
    proxy.before(move |operation| {
        (operation == "PutItem").then(|| {
            let (other, flip) = (other.clone(), flip.clone());
            Box::pin(async move {
                let change = if flip.fetch_xor(true, Ordering::SeqCst) {
                    Change::Authorized
                } else {
                    Change::Failed(Failure::new("other", "writer"))
                };
                other.record(&event(change)).await.unwrap();
            }) as _
        })
    });

    let result = proxied
        .record(&event(Change::Failed(Failure::new("ours", "never lands"))))
        .await;
    assert!(matches!(result, Err(StoreError::Contention)), "{result:?}");
    assert!(result.unwrap_err().is_transient());

    let receiver = webhook_receiver(proxied).await;
    let answer = deliver(
        &receiver,
        &auth_webhook("refresh", false, None, Some(("ours", "never lands"))),
    )
    .await;
    assert_eq!((answer.status, answer.error_code()), (500, "storage_error"));
}

#[tokio::test]
async fn a_webhook_dynamodb_will_never_take_is_acknowledged_not_an_endless_500() {
    // A table whose key is not `connectionId`: DynamoDB refuses every put with a ValidationException.
    let (client, table) = fresh_table().await;
    let wrong = format!("{table}-wrong-key");
    let definition = json!({
        "TableName": wrong,
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST"
    });
    dynamodb_json("DynamoDB_20120810.CreateTable", definition).await;
    let store = ConnectionStore::new(client, wrong);

    let result = store.record(&event(Change::Created)).await;
    assert!(matches!(result, Err(StoreError::Rejected(_))), "{result:?}");

    // Acknowledged (a retry cannot help, and a 4xx would count towards Nango's breaker), and
    // logged as an error; reconciliation recovers the connection from Nango's listing.
    let answer = deliver(&webhook_receiver(store).await, &creation()).await;
    assert_eq!(
        (answer.status, answer.body),
        (200, json!({"result": "unstorable"}))
    );
}

#[tokio::test]
async fn a_webhook_too_big_to_store_whole_is_stored_bounded() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    // Tags come from Nango's row: bounded as Nango bounds them, owner tags first.
    let mut tags = owner_tags();
    for i in 0..500 {
        tags[format!("label_{i:03}")] = json!("x".repeat(255));
    }
    given(&receiver, &auth_webhook("creation", true, Some(tags), None)).await;
    let stored = store
        .get(&event(Change::Created).connection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.tags.iter().count(), 10, "Nango's own limit");
    assert_eq!(
        stored.tags.get("end_user_id"),
        Some("user-42"),
        "owner tags kept first"
    );

    let description = "é".repeat(450_000); // 900 KB of UTF-8
    let body = auth_webhook(
        "refresh",
        false,
        Some(owner_tags()),
        Some(("refresh_token_external_error", &description)),
    );
    assert!(body.len() > 900_000 && body.len() < 1024 * 1024);

    let answer = given(&receiver, &body).await;
    assert_eq!(answer.body["result"], "stored");
    let stored = store
        .get(&event(Change::Created).connection_id)
        .await
        .unwrap()
        .unwrap();
    let error = stored.error.unwrap();
    assert_eq!(
        error.description.chars().count(),
        MAX_ERROR_DESCRIPTION_CHARS
    );
}

/// Secrets Manager's `GetSecretValue`, answering with `signing_key`.
fn secret_holding(signing_key: &str) -> Mock {
    let secret = json!({"NANGO_SECRET_KEY": "unused", "NANGO_WEBHOOK_SIGNING_KEY": signing_key});
    Mock::given(method("POST"))
        .and(header("x-amz-target", "secretsmanager.GetSecretValue"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-amz-json-1.1")
                .set_body_json(json!({
                    "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:nango-AbCdEf",
                    "Name": "nango",
                    "SecretString": secret.to_string(),
                })),
        )
}

/// Secrets Manager, as far as `GetSecretValue` goes, answering with `signing_key`.
async fn secrets_manager(signing_key: &str, expected_reads: u64) -> MockServer {
    let server = MockServer::start().await;
    secret_holding(signing_key)
        .expect(expected_reads)
        .mount(&server)
        .await;
    server
}

fn secret_source(server: &MockServer) -> SecretSource {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .http_client(aws_http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .endpoint_url(server.uri())
        .build();
    SecretSource::new(
        aws_sdk_secretsmanager::Client::from_conf(config),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nango-AbCdEf",
    )
}

fn signed_with(key: &str, body: &str) -> lambda_http::Request {
    let signature = hex::encode(nango_connect::webhook::signature::sign(
        key.as_bytes(),
        body.as_bytes(),
    ));
    Event::from(WEBHOOK)
        .body(body)
        .header("X-Nango-Hmac-Sha256", &signature)
        .request()
}

#[tokio::test]
async fn after_a_key_rotation_the_secret_is_read_again_once_per_interval_at_most() {
    let secrets = secrets_manager("rotated-key", 1).await;
    let keys = SigningKeys::reloading(
        vec![SIGNING_KEY.into()],
        secret_source(&secrets),
        Duration::from_secs(60),
    );
    let nango = FakeNango::start().await;
    nango.add(CONNECTION_ID, "exa-peer", owner_tags());
    let receiver =
        receiver_confirming_with(store().await, &nango.uri(), "http://127.0.0.1:1", keys);

    let rotated = answer(
        receiver
            .handle(signed_with("rotated-key", &creation()))
            .await,
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["result"], "stored");
    // Forgeries right after cannot make us read the secret again (wiremock checks: one read). The
    // keys were not read for them, so they may be stale: 503, which Nango would retry, never the
    // 401 that it would not.
    for _ in 0..5 {
        let forged = answer(receiver.handle(signed_with("forged", &creation())).await);
        assert_eq!(
            (forged.status, forged.error_code()),
            (503, "signing_keys_stale")
        );
    }
    // And the new key is the one held now.
    let again = answer(
        receiver
            .handle(signed_with("rotated-key", &creation()))
            .await,
    );
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn a_signature_refused_right_after_reading_the_keys_is_401() {
    let secrets = secrets_manager(SIGNING_KEY, 1).await;
    let keys = SigningKeys::reloading(
        vec![SIGNING_KEY.into()],
        secret_source(&secrets),
        Duration::from_secs(60),
    );
    let receiver =
        receiver_confirming_with(store().await, UNREACHABLE_NANGO, "http://127.0.0.1:1", keys);
    let forged = answer(receiver.handle(signed_with("forged", &creation())).await);
    assert_eq!(
        (forged.status, forged.error_code()),
        (401, "invalid_signature")
    );
}

/// A rotation while someone floods the URL with bad signatures: every genuine webhook signed with
/// the new key gets through within Nango's three attempts, and none is refused with a 401 (which
/// Nango never retries). Time is scaled down: a 300 ms reload interval, and Nango's waits of 3 s
/// and 6 s (0.6 and 1.2 intervals in production) as 180 ms and 360 ms.
#[tokio::test]
async fn a_rotation_under_a_flood_of_forgeries_loses_no_webhook() {
    let interval = Duration::from_millis(300);
    let nango_waits = [Duration::from_millis(180), Duration::from_millis(360)];
    let secrets = MockServer::start().await;
    secret_holding(SIGNING_KEY).mount(&secrets).await;
    let keys = SigningKeys::reloading(vec![SIGNING_KEY.into()], secret_source(&secrets), interval);
    let nango = FakeNango::start().await;
    nango.add(CONNECTION_ID, "exa-peer", owner_tags());
    let receiver = std::sync::Arc::new(receiver_confirming_with(
        store().await,
        &nango.uri(),
        "http://127.0.0.1:1",
        keys,
    ));

    // The flood: a forgery every 5 ms, from before the rotation to after the last delivery.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = tokio::spawn({
        let receiver = receiver.clone();
        let flooding = flooding.clone();
        async move {
            let mut refused = (0, 0);
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let forged = answer(receiver.handle(signed_with("forged", &creation())).await);
                match forged.status {
                    401 => refused.0 += 1,
                    503 => refused.1 += 1,
                    other => panic!("a forgery got {other}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            refused
        }
    });
    tokio::time::sleep(interval / 2).await;
    // The rotation: the secret now holds the new key.
    secrets.reset().await;
    secret_holding("rotated-key").mount(&secrets).await;

    // Genuine webhooks signed with the new key, at different phases of the reload interval.
    let mut attempts_needed = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(70 * round)).await;
        let mut attempt = 1;
        loop {
            let delivered = answer(
                receiver
                    .handle(signed_with("rotated-key", &creation()))
                    .await,
            );
            assert_ne!(delivered.status, 401, "a genuine webhook refused for good");
            if delivered.status == 200 {
                break;
            }
            assert_eq!(delivered.error_code(), "signing_keys_stale");
            assert!(attempt < 3, "Nango gives up after its third attempt");
            tokio::time::sleep(nango_waits[attempt - 1]).await;
            attempt += 1;
        }
        attempts_needed.push(attempt);
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let (refused_401, refused_503) = flood.await.unwrap();
    assert!(
        refused_401 + refused_503 > 50,
        "the flood ran: {refused_401} + {refused_503}"
    );
    assert_eq!(attempts_needed.len(), 6);
}

#[tokio::test]
async fn keys_from_plain_variables_are_never_read_again() {
    let receiver = webhook_receiver(store().await).await;
    let answer = answer(
        receiver
            .handle(signed_with("rotated-key", &creation()))
            .await,
    );
    assert_eq!(
        (answer.status, answer.error_code()),
        (401, "invalid_signature")
    );
}

#[tokio::test]
async fn common_webhooks_take_one_round_trip_and_the_rest_no_separate_read() {
    let (direct, proxied, proxy) = direct_and_proxied().await;
    let failure = || {
        event(Change::Failed(Failure::new(
            "refresh_token_external_error",
            "invalid_grant",
        )))
    };
    let expect = |label: &str, expected: &[&str]| {
        let operations = proxy.operations();
        assert_eq!(operations, expected, "{label}");
        proxy.clear();
    };

    // A new connection: one conditional put.
    proxied.record(&event(Change::Created)).await.unwrap();
    expect("new connection", &["PutItem"]);
    // A refresh failure of a connection this container has seen: one conditional put.
    proxied.record(&failure()).await.unwrap();
    expect("change to a seen connection", &["PutItem"]);
    // Its duplicate: judged unchanged on what we remember, confirmed by one read.
    assert_eq!(
        proxied.record(&failure()).await.unwrap(),
        Recorded::Unchanged
    );
    expect("duplicate of a seen change", &["GetItem"]);

    // Another container's connection: our guess (new) fails and hands back the stored item,
    // so there is never a separate read before a write.
    let other = ConnectionStore::new(dynamodb_client(&proxy.endpoint), fresh_table_name(&direct));
    other.record(&event(Change::Authorized)).await.unwrap();
    expect(
        "first change seen by another container",
        &["PutItem", "PutItem"],
    );
    let elsewhere =
        ConnectionStore::new(dynamodb_client(&proxy.endpoint), fresh_table_name(&direct));
    assert_eq!(
        elsewhere.record(&event(Change::Authorized)).await.unwrap(),
        Recorded::Unchanged
    );
    expect("duplicate first seen by another container", &["PutItem"]);
}
