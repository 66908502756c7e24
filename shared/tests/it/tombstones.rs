//! What a deleted connection keeps, and for how long, against DynamoDB Local: a tombstone without
//! tags that expires, and an expired tombstone that every read treats as gone while every write
//! over it is still conditioned on its version.

use std::time::Duration;

use nango_connect::connection::{AuthEvent, Change, Owner, Status};
use nango_connect::nango::{ConnectionId, IntegrationId, Tags};
use nango_connect::store::{ConnectionStore, Owners, Recorded};
use serde_json::{Value, json};

use crate::dynamo_proxy::DynamoProxy;
use crate::support::*;

fn id() -> ConnectionId {
    ConnectionId::parse(CONNECTION_ID).unwrap()
}

/// user-42's connection, its tags carrying an email and a display name.
fn event(change: Change) -> AuthEvent {
    let tags = Tags::from_json(Some(owner_tags()));
    AuthEvent {
        connection_id: id(),
        integration_id: IntegrationId::parse("exa-peer").unwrap(),
        provider: Some("exa".into()),
        auth_mode: Some("API_KEY".into()),
        environment: Some("dev".into()),
        owner: Owner::from_tags(&tags),
        tags,
        change,
    }
}

/// The item as DynamoDB holds it, read around the store.
async fn raw_item(table: &str, connection_id: &str) -> Value {
    dynamodb_json(
        "DynamoDB_20120810.GetItem",
        json!({"TableName": table, "Key": {"connectionId": {"S": connection_id}}, "ConsistentRead": true}),
    )
    .await["Item"]
        .clone()
}

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An item written by hand, as DynamoDB's time to live finds it: expired an hour ago, not yet
/// removed (AWS takes up to a few days).
async fn put_expired(table: &str, connection_id: &str, status: &str, owner: &str, version: u64) {
    dynamodb_json(
        "DynamoDB_20120810.PutItem",
        json!({"TableName": table, "Item": {
            "connectionId": {"S": connection_id},
            "integrationId": {"S": "exa-peer"},
            "endUserId": {"S": owner},
            "status": {"S": status},
            "tags": {"M": {}},
            "createdAt": {"S": "2026-01-01T10:00:00.000Z"},
            "updatedAt": {"S": "2026-01-01T10:00:00.000Z"},
            "deletedAt": {"S": "2026-01-01T10:00:00.000Z"},
            "version": {"N": version.to_string()},
            "expiresAt": {"N": (epoch_now() - 3600).to_string()},
        }}),
    )
    .await;
}

#[tokio::test]
async fn a_deletion_leaves_a_tombstone_without_tags_that_expires_after_the_retention() {
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone())
        .with_tombstone_retention(Duration::from_secs(2 * 86_400));
    store.record(&event(Change::Created)).await.unwrap();
    let live = raw_item(&table, CONNECTION_ID).await;
    assert_eq!(
        live["tags"]["M"]["end_user_email"]["S"],
        "alice@example.com"
    );
    assert!(
        live.get("expiresAt").is_none(),
        "a live connection expires never"
    );

    let before = epoch_now();
    assert_eq!(
        store.record(&event(Change::Deleted)).await.unwrap(),
        Recorded::Written(Status::Deleted)
    );
    let tombstone = raw_item(&table, CONNECTION_ID).await;
    let mut names: Vec<&str> = tombstone
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "connectionId",
            "createdAt",
            "deletedAt",
            "endUserId",
            "expiresAt",
            "integrationId",
            "organizationId",
            "status",
            "tags",
            "updatedAt",
            "version"
        ]
    );
    assert_eq!(
        tombstone["tags"],
        json!({"M": {}}),
        "no email, no display name"
    );
    let expires_at: i64 = tombstone["expiresAt"]["N"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let retention = 2 * 86_400;
    assert!(
        (before + retention - 1..=epoch_now() + retention).contains(&expires_at),
        "{expires_at}: deletedAt + 2 days"
    );
    // Still there, and still refusing what comes after.
    assert_eq!(
        store.get(&id()).await.unwrap().map(|c| c.status),
        Some(Status::Deleted)
    );
    assert_eq!(
        store.record(&event(Change::Created)).await.unwrap(),
        Recorded::Unchanged
    );
}

#[tokio::test]
async fn an_expired_tombstone_is_gone_and_a_creation_over_it_is_new_and_continues_its_version() {
    let (client, table) = fresh_table().await;
    put_expired(&table, CONNECTION_ID, "deleted", "mallory", 3).await;
    let direct = ConnectionStore::new(client, table.clone());
    assert_eq!(direct.get(&id()).await.unwrap(), None);
    assert!(swept_ids(&direct).await.is_empty());

    // A container that never saw it: its guess (nothing stored) fails, the failed put hands back
    // the expired item, and the write goes over it conditioned on its version — not on absence,
    // which would fail again until the store gave up.
    let proxy = DynamoProxy::start(dynamodb_endpoint()).await;
    let proxied = ConnectionStore::new(dynamodb_client(&proxy.endpoint), table.clone());
    assert_eq!(
        proxied.record(&event(Change::Created)).await.unwrap(),
        Recorded::Written(Status::Active)
    );
    assert_eq!(proxy.operations(), ["PutItem", "PutItem"]);

    let stored = direct.get(&id()).await.unwrap().expect("stored");
    assert_eq!(stored.status, Status::Active);
    assert_eq!(
        stored.owner.end_user_id.as_deref(),
        Some("user-42"),
        "stored as new: the expired tombstone's owner is not kept"
    );
    assert_ne!(stored.created_at, "2026-01-01T10:00:00.000Z");
    assert_eq!(stored.version, 4, "versions only grow");
    assert!(
        raw_item(&table, CONNECTION_ID)
            .await
            .get("expiresAt")
            .is_none()
    );

    // A state read before (as reconciliation and the delete route pass it) takes the same path.
    put_expired(&table, "other-connection", "deleted", "mallory", 7).await;
    let mut other = event(Change::Created);
    other.connection_id = ConnectionId::parse("other-connection").unwrap();
    let read = direct.get(&other.connection_id).await.unwrap();
    assert_eq!(read, None);
    proxy.clear();
    assert_eq!(
        proxied.record_from(&other, Some(read)).await.unwrap(),
        Recorded::Written(Status::Active)
    );
    assert_eq!(proxy.operations(), ["PutItem", "PutItem"]);
    assert_eq!(
        direct
            .get(&other.connection_id)
            .await
            .unwrap()
            .map(|c| c.version),
        Some(8)
    );
}

#[tokio::test]
async fn an_expired_tombstone_remembered_by_a_container_is_read_again_before_anything_is_refused() {
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone());
    store.record(&event(Change::Created)).await.unwrap();
    store.record(&event(Change::Deleted)).await.unwrap();
    // The tombstone this container remembers expires (its retention was shorter elsewhere).
    dynamodb_json(
        "DynamoDB_20120810.UpdateItem",
        json!({"TableName": table, "Key": {"connectionId": {"S": CONNECTION_ID}},
               "UpdateExpression": "SET expiresAt = :past",
               "ExpressionAttributeValues": {":past": {"N": (epoch_now() - 60).to_string()}}}),
    )
    .await;
    assert_eq!(
        store.record(&event(Change::Created)).await.unwrap(),
        Recorded::Written(Status::Active)
    );
    assert_eq!(store.get(&id()).await.unwrap().map(|c| c.version), Some(3));
}

#[tokio::test]
async fn expired_items_are_left_out_of_the_listing_and_the_scan() {
    let (client, table) = fresh_table().await;
    let store = ConnectionStore::new(client, table.clone());
    store.record(&event(Change::Created)).await.unwrap();
    // Only tombstones are written with an expiry, but whatever carries one is gone once it has
    // passed: even an item that says it is active.
    put_expired(&table, "expired-active", "active", "user-42", 1).await;
    put_expired(&table, "expired-tombstone", "deleted", "user-42", 2).await;

    let user = nango_connect::identity::EndUserId::parse("user-42").unwrap();
    let owners = Owners {
        end_user_id: &user,
        organization_id: None,
    };
    let page = store.list_page(&owners, 10, None).await.unwrap();
    let listed: Vec<&str> = page.connections.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(listed, [CONNECTION_ID]);
    assert_eq!(swept_ids(&store).await, [CONNECTION_ID]);
}
