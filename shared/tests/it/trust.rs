//! A signed webhook is a hint, Nango's API is the truth (issue: forged, starved or dropped
//! webhooks must not poison the store). Every body here is correctly signed, as a provider body
//! that Nango forwards unwrapped would be; what Nango really has is the [`FakeNango`]'s list.

use std::time::Duration;

use nango_connect::connection::Status;
use nango_connect::nango::ConnectionId;
use nango_connect::reconcile::{Reconciler, Settings};
use nango_connect::store::ConnectionStore;
use nango_connect::webhook::SigningKeys;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::*;

fn connection_id() -> ConnectionId {
    ConnectionId::parse(CONNECTION_ID).unwrap()
}

async fn listed(store: &ConnectionStore, user: &str, organization: Option<&str>) -> Value {
    let listed = answer(
        list_connections(store.clone())
            .handle(list_as(user, organization))
            .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["connections"].clone()
}

fn mallorys_tags() -> Value {
    json!({"end_user_id": "mallory", "organization_id": "evil", "end_user_email": "mallory@evil.example"})
}

async fn reconcile(
    nango: &FakeNango,
    store: &ConnectionStore,
) -> nango_connect::reconcile::Summary {
    let settings = Settings {
        grace: Duration::ZERO,
        ..Settings::default()
    };
    Reconciler::new(
        nango_client(&nango.uri(), fast_timeouts()),
        store.clone(),
        settings,
    )
    .run(Instant::now() + Duration::from_secs(60))
    .await
    .expect("the table is readable")
}

#[tokio::test]
async fn a_forged_deletion_of_a_live_connection_deletes_nothing() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    let before = store.get(&connection_id()).await.unwrap().unwrap();

    let forged = deliver(&receiver, &auth_webhook("deletion", true, None, None)).await;

    assert_eq!(
        (forged.status, forged.body),
        (200, json!({"result": "not_confirmed"}))
    );
    assert_eq!(store.get(&connection_id()).await.unwrap(), Some(before));
    assert_eq!(
        listed(&store, "user-42", Some("org-7")).await[0]["connectionId"],
        CONNECTION_ID
    );
    // The creation's lookup, then the deletion's, asked again after each lag wait.
    assert_eq!(receiver.nango.lookups().await, 1 + 1 + LAG_WAITS.len());
}

#[tokio::test]
async fn a_forged_creation_naming_another_owner_is_stored_with_nangos_owner() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;

    let forged = deliver(
        &receiver,
        &auth_webhook("creation", true, Some(mallorys_tags()), None),
    )
    .await;

    assert_eq!(forged.body, json!({"result": "stored"}));
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.owner.end_user_id.as_deref(), Some("user-42"));
    assert_eq!(stored.owner.organization_id.as_deref(), Some("org-7"));
    assert_eq!(
        serde_json::to_value(
            stored
                .tags
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        )
        .unwrap(),
        owner_tags(),
        "Nango's tags, not the webhook's"
    );
    assert_eq!(listed(&store, "mallory", Some("evil")).await, json!([]));
    assert_eq!(
        listed(&store, "user-42", Some("org-7"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_forged_status_change_never_claims_an_orphan() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    receiver.nango.remove(CONNECTION_ID);
    // An orphan: a connection stored without an owner (its creation lost).
    given(&receiver, &refresh_failure(None)).await;
    for forged in [
        refresh_failure(Some(mallorys_tags())),
        auth_webhook("override", true, Some(mallorys_tags()), None),
        auth_webhook("refresh", true, Some(mallorys_tags()), None),
    ] {
        assert_eq!(deliver(&receiver, &forged).await.status, 200);
    }
    let stored = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(stored.owner.end_user_id, None);
    assert_eq!(stored.owner.organization_id, None);
    assert_eq!(listed(&store, "mallory", Some("evil")).await, json!([]));
    assert_eq!(
        receiver.nango.lookups().await,
        0,
        "status changes ask nothing"
    );
}

#[tokio::test]
async fn a_creation_nango_does_not_have_is_listed_for_nobody_and_reconciliation_deletes_it() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    receiver.nango.remove(CONNECTION_ID);

    let forged = deliver(&receiver, &creation()).await;

    assert_eq!(forged.body, json!({"result": "stored"}));
    let orphan = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(orphan.owner.end_user_id, None, "no owner");
    assert_eq!(orphan.tags.iter().count(), 0, "no claimed tags");
    assert_eq!(listed(&store, "user-42", Some("org-7")).await, json!([]));

    let summary = reconcile(&receiver.nango, &store).await;
    assert_eq!(summary.marked_deleted, 1, "{summary:?}");
    assert_eq!(
        store.get(&connection_id()).await.unwrap().unwrap().status,
        Status::Deleted
    );
}

#[tokio::test]
async fn a_creation_behind_nangos_replica_lag_is_confirmed_after_a_short_wait() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    // Missing from the first two lookups: the creation's first ask and its first retry.
    receiver
        .nango
        .add_lagging(CONNECTION_ID, "exa-peer", owner_tags(), 2);

    let answer = deliver(&receiver, &creation()).await;

    assert_eq!(answer.body, json!({"result": "stored"}));
    assert_eq!(receiver.nango.lookups().await, 3);
    assert_eq!(
        listed(&store, "user-42", Some("org-7")).await[0]["connectionId"],
        CONNECTION_ID
    );
}

#[tokio::test]
async fn a_deletion_behind_nangos_replica_lag_waits_for_the_next_reconciliation() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    // Nango deleted it, but its replica still shows it for longer than the receiver waits.
    receiver
        .nango
        .add_lagging(CONNECTION_ID, "exa-peer", owner_tags(), 0);
    let deletion = auth_webhook("deletion", true, None, None);
    assert_eq!(
        deliver(&receiver, &deletion).await.body,
        json!({"result": "not_confirmed"})
    );
    assert_eq!(
        store.get(&connection_id()).await.unwrap().unwrap().status,
        Status::Active,
        "a deletion is never applied on a contradicted answer"
    );
    // The replica catches up; the next complete run deletes it.
    receiver.nango.remove(CONNECTION_ID);
    let summary = reconcile(&receiver.nango, &store).await;
    assert_eq!(summary.marked_deleted, 1, "{summary:?}");
}

#[tokio::test]
async fn nango_unreachable_during_confirmation_and_reconciliation_ends_right() {
    let store = store().await;
    let nango = FakeNango::start().await;
    nango.add(CONNECTION_ID, "exa-peer", owner_tags());
    const OTHER: &str = "0b7c3f4e-5a6d-4e8f-9a0b-1c2d3e4f5a6b";
    nango.add(OTHER, "exa-peer", owner_tags());
    let confirming = receiver_confirming_with(
        store.clone(),
        &nango.uri(),
        "http://127.0.0.1:1",
        SigningKeys::fixed(vec![SIGNING_KEY.into()]),
    );
    given(&confirming, &creation().replace(CONNECTION_ID, OTHER)).await;

    // Nango cannot be reached: nothing is trusted, nothing is lost, and no 5xx.
    let unreachable = receiver_confirming_with(
        store.clone(),
        UNREACHABLE_NANGO,
        "http://127.0.0.1:1",
        SigningKeys::fixed(vec![SIGNING_KEY.into()]),
    );
    let creation_answer = deliver(&unreachable, &creation()).await;
    assert_eq!(creation_answer.body, json!({"result": "stored"}));
    let deletion_answer = deliver(
        &unreachable,
        &auth_webhook("deletion", true, None, None).replace(CONNECTION_ID, OTHER),
    )
    .await;
    assert_eq!(deletion_answer.body, json!({"result": "not_confirmed"}));
    assert_eq!(
        store
            .get(&connection_id())
            .await
            .unwrap()
            .unwrap()
            .owner
            .end_user_id,
        None,
        "kept as an unconfirmed orphan"
    );
    assert_eq!(
        listed(&store, "user-42", Some("org-7"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Reconciliation, with Nango back, decides: the creation was real, the deletion was not.
    let summary = reconcile(&nango, &store).await;
    assert_eq!(
        (summary.changed, summary.marked_deleted),
        (1, 0),
        "{summary:?}"
    );
    let listed_now = listed(&store, "user-42", Some("org-7")).await;
    let ids: Vec<&str> = listed_now
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&CONNECTION_ID) && ids.contains(&OTHER));
}

#[tokio::test]
async fn reconciliation_undoes_a_deletion_nango_does_not_show() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    given(&receiver, &creation()).await;
    // A deletion confirmed against a lagging replica, say: Nango still has the connection.
    receiver.nango.remove(CONNECTION_ID);
    given(&receiver, &auth_webhook("deletion", true, None, None)).await;
    assert_eq!(listed(&store, "user-42", Some("org-7")).await, json!([]));
    let mut nangos = owner_tags();
    nangos["end_user_id"] = json!("user-43");
    receiver.nango.add(CONNECTION_ID, "exa-peer", nangos);

    let summary = reconcile(&receiver.nango, &store).await;

    assert_eq!(summary.restored, 1, "{summary:?}");
    let revived = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(revived.status, Status::Active);
    assert_eq!(revived.deleted_at, None);
    assert_eq!(
        revived.owner.end_user_id.as_deref(),
        Some("user-43"),
        "owned as Nango's tags say"
    );
    assert_eq!(
        listed(&store, "user-43", Some("org-7")).await[0]["connectionId"],
        CONNECTION_ID
    );
    assert_eq!(reconcile(&receiver.nango, &store).await.restored, 0, "once");
}

#[tokio::test]
async fn a_webhook_of_another_environment_writes_nothing() {
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone());
    let nango = FakeNango::start().await;
    nango.add(CONNECTION_ID, "exa-peer", owner_tags());
    let receiver = Checked(
        receiver_confirming_with(
            store.clone(),
            &nango.uri(),
            "http://127.0.0.1:1",
            SigningKeys::fixed(vec![SIGNING_KEY.into()]),
        )
        .0
        .for_environment(Some("prod".into())),
    );
    let without_environment =
        auth_webhook("deletion", true, None, None).replace(r#""environment":"dev","#, "");
    for body in [
        creation(),
        auth_webhook("deletion", true, None, None),
        refresh_failure(None),
        without_environment,
    ] {
        let answer = deliver(&receiver, &body).await;
        assert_eq!(
            (answer.status, answer.body),
            (200, json!({"result": "other_environment"})),
            "{body}"
        );
    }
    assert_eq!(nango.lookups().await, 0);
    let items = dynamodb_json("DynamoDB_20120810.Scan", json!({"TableName": table})).await;
    assert_eq!(items["Count"], 0, "nothing written");

    // Its own environment's webhooks are applied.
    let prod = creation().replace(r#""environment":"dev""#, r#""environment":"prod""#);
    assert_eq!(
        deliver(&receiver, &prod).await.body,
        json!({"result": "stored"})
    );
}

#[tokio::test]
async fn a_forged_deletion_of_an_id_nango_never_had_leaves_a_tombstone_owned_by_nobody() {
    let store = store().await;
    let receiver = webhook_receiver(store.clone()).await;
    receiver.nango.remove(CONNECTION_ID);
    let forged = auth_webhook("deletion", true, Some(mallorys_tags()), None);
    assert_eq!(
        deliver(&receiver, &forged).await.body,
        json!({"result": "stored"})
    );
    let tombstone = store.get(&connection_id()).await.unwrap().unwrap();
    assert_eq!(tombstone.status, Status::Deleted);
    assert_eq!(tombstone.owner.end_user_id, None);
    assert_eq!(tombstone.owner.organization_id, None);
    assert_eq!(tombstone.tags.iter().count(), 0);
}
