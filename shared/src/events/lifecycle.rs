//! A stored connection's change (its old and new item) → at most one lifecycle event.
//!
//! The app hears about a connection once it is *listable*: stored, not deleted, and with an owner
//! (end user or organization) — the connections `GET /connections` shows. So:
//! - `connection.connected`: it becomes listable — a new connection stored with its owner, one
//!   first stored without an owner (its creation webhook late or lost) when its owner is learned,
//!   or a deleted one that Nango's listing shows live again (`previousStatus: "deleted"`).
//!   It carries the status it has then, which may already be `error`;
//! - `connection.failed`: a listable connection goes from `active` to `error`;
//! - `connection.reconnected`: a listable connection goes from `error` back to `active` because the
//!   user completed a reconnect (Nango's `override` success: `reconnectedAt` moved);
//! - `connection.recovered`: a listable connection goes from `error` back to `active` by itself (a
//!   refresh succeeded, or reconciliation found its credentials working);
//! - `connection.deleted`: a listable connection is marked deleted (or its item is removed).
//!
//! Everything else publishes nothing: a write that changes only `updatedAt`, `version`, tags or
//! facts (provider, auth mode), an error that changes its description while staying `error`, and
//! anything about a connection that was never listable (an orphan's failures, a tombstone).

use serde::Serialize;

use super::{Event, SCHEMA_VERSION};
use crate::connection::{Connection, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Connected,
    Failed,
    Reconnected,
    Recovered,
    Deleted,
}

impl Lifecycle {
    /// The event's `detail-type`: stable, part of the contract.
    pub fn detail_type(self) -> &'static str {
        match self {
            Lifecycle::Connected => "connection.connected",
            Lifecycle::Failed => "connection.failed",
            Lifecycle::Reconnected => "connection.reconnected",
            Lifecycle::Recovered => "connection.recovered",
            Lifecycle::Deleted => "connection.deleted",
        }
    }
}

/// Shown in `GET /connections`: not deleted, and someone's.
fn listable(connection: &Connection) -> bool {
    connection.status != Status::Deleted && connection.owner.is_known()
}

/// What the change from `old` to `new` means to the app, if anything. `None` for `new` is an item
/// removed from the table (the store never does that, but an operator might).
pub fn classify(old: Option<&Connection>, new: Option<&Connection>) -> Option<Lifecycle> {
    let was = old.is_some_and(listable);
    let Some(new) = new else {
        return was.then_some(Lifecycle::Deleted);
    };
    if new.status == Status::Deleted {
        return was.then_some(Lifecycle::Deleted);
    }
    match (was, listable(new)) {
        (false, true) => Some(Lifecycle::Connected),
        (true, true) => match (old.map(|o| o.status), new.status) {
            (Some(Status::Active), Status::Error) => Some(Lifecycle::Failed),
            (Some(Status::Error), Status::Active)
                if old.and_then(|o| o.reconnected_at.as_ref()) != new.reconnected_at.as_ref() =>
            {
                Some(Lifecycle::Reconnected)
            }
            (Some(Status::Error), Status::Active) => Some(Lifecycle::Recovered),
            _ => None,
        },
        _ => None,
    }
}

/// The detail of every lifecycle event, schema version [`SCHEMA_VERSION`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    schema_version: u32,
    connection_id: &'a str,
    integration_id: &'a str,
    provider: Option<&'a str>,
    environment: Option<&'a str>,
    owner: OwnerDetail<'a>,
    status: &'static str,
    previous_status: Option<&'static str>,
    error: Option<ErrorDetail<'a>>,
    changed_at: &'a str,
    /// The stored item's version: grows with every write of this connection, so a consumer can
    /// order the events of one connection and drop a duplicate (same id, same version).
    connection_version: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerDetail<'a> {
    end_user_id: Option<&'a str>,
    organization_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    description: &'a str,
}

/// The event for `old` → `new`, if the change means something to the app.
pub fn event(old: Option<&Connection>, new: Option<&Connection>) -> Option<Event> {
    let lifecycle = classify(old, new)?;
    // A removed item is described by what it was.
    let (subject, status) = match new {
        Some(new) => (new, new.status),
        None => (old?, Status::Deleted),
    };
    let changed_at = match lifecycle {
        Lifecycle::Deleted => subject.deleted_at.as_deref().unwrap_or(&subject.updated_at),
        _ => &subject.updated_at,
    };
    // A tombstone no longer keeps provider and environment (see `connection`): the connection as
    // it was still says them.
    let fact = |pick: fn(&Connection) -> Option<&str>| {
        pick(subject).or_else(|| old.and_then(|old| pick(old)))
    };
    let detail = Detail {
        schema_version: SCHEMA_VERSION,
        connection_id: subject.id.as_str(),
        integration_id: subject.integration_id.as_str(),
        provider: fact(|c| c.provider.as_deref()),
        environment: fact(|c| c.environment.as_deref()),
        owner: OwnerDetail {
            end_user_id: subject.owner.end_user_id.as_deref(),
            organization_id: subject.owner.organization_id.as_deref(),
        },
        status: status.as_str(),
        previous_status: old.map(|o| o.status.as_str()),
        error: match status {
            Status::Error => subject.error.as_ref().map(|e| ErrorDetail {
                kind: &e.kind,
                description: &e.description,
            }),
            _ => None,
        },
        changed_at,
        connection_version: subject.version,
    };
    Some(Event {
        detail_type: lifecycle.detail_type().to_owned(),
        // A struct of strings and numbers always serializes.
        detail: serde_json::to_string(&detail).unwrap_or_default(),
        time: Some(changed_at.to_owned()),
        ordering_key: Some(subject.id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{AuthEvent, Change, Failure, Owner, apply};
    use crate::nango::{ConnectionId, IntegrationId, Tags};

    const T0: &str = "2026-11-26T10:00:00.000Z";
    const T1: &str = "2026-11-26T10:05:00.000Z";
    const T2: &str = "2026-11-26T10:10:00.000Z";

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn owned() -> Tags {
        tags(&[("end_user_id", "user-42"), ("organization_id", "org-7")])
    }

    fn webhook(change: Change, tags: Tags) -> AuthEvent {
        AuthEvent {
            connection_id: ConnectionId::parse("conn-1").unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: Some("github".into()),
            auth_mode: Some("OAUTH2".into()),
            environment: Some("dev".into()),
            owner: Owner::from_tags(&tags),
            tags,
            change,
        }
    }

    fn failure(description: &str) -> Change {
        Change::Failed(Failure {
            kind: "refresh_token_external_error".into(),
            description: description.into(),
        })
    }

    /// What the store would write: `apply`, with the version bumped as the store does.
    fn write(current: Option<&Connection>, change: Change, tags: Tags, now: &str) -> Connection {
        let mut next = apply(current, &webhook(change, tags), now).expect("a write");
        next.version = current.map_or(1, |c| c.version + 1);
        next
    }

    fn detail(event: &Event) -> serde_json::Value {
        serde_json::from_str(&event.detail).unwrap()
    }

    #[test]
    fn a_tombstone_nangos_listing_revives_is_connected_again() {
        let created = write(None, Change::Created, owned(), T0);
        let tombstone = write(Some(&created), Change::Deleted, Tags::new(), T1);
        let observed = Change::Observed(crate::connection::Observation {
            auth_error: false,
            created_at: None,
            as_of: T2.into(),
        });
        let revived = write(Some(&tombstone), observed, owned(), T2);
        let connected = event(Some(&tombstone), Some(&revived)).unwrap();
        assert_eq!(connected.detail_type, "connection.connected");
        assert_eq!(detail(&connected)["previousStatus"], "deleted");
        assert_eq!(detail(&connected)["status"], "active");
        assert_eq!(detail(&connected)["owner"]["endUserId"], "user-42");
    }

    #[test]
    fn a_new_owned_connection_is_connected() {
        let new = write(None, Change::Created, owned(), T0);
        let connected = event(None, Some(&new)).unwrap();
        assert_eq!(connected.detail_type, "connection.connected");
        assert_eq!(connected.time.as_deref(), Some(T0));
        assert_eq!(
            detail(&connected),
            serde_json::json!({
                "schemaVersion": 1,
                "connectionId": "conn-1",
                "integrationId": "github",
                "provider": "github",
                "environment": "dev",
                "owner": {"endUserId": "user-42", "organizationId": "org-7"},
                "status": "active",
                "previousStatus": null,
                "error": null,
                "changedAt": T0,
                "connectionVersion": 1,
            })
        );
    }

    #[test]
    fn an_orphan_is_connected_when_its_owner_is_learned_and_not_before() {
        let orphan = write(None, failure("invalid_grant"), Tags::new(), T0);
        assert_eq!(classify(None, Some(&orphan)), None, "nobody to tell yet");
        let again = write(Some(&orphan), Change::Authorized, Tags::new(), T1);
        assert_eq!(classify(Some(&orphan), Some(&again)), None);
        let owned = write(Some(&again), Change::Created, owned(), T2);
        let connected = event(Some(&again), Some(&owned)).unwrap();
        assert_eq!(connected.detail_type, "connection.connected");
        assert_eq!(detail(&connected)["owner"]["endUserId"], "user-42");
        assert_eq!(detail(&connected)["previousStatus"], "active");
    }

    #[test]
    fn a_connection_first_seen_failing_with_its_owner_is_connected_with_its_error() {
        let new = write(None, failure("invalid_grant"), owned(), T0);
        let connected = event(None, Some(&new)).unwrap();
        assert_eq!(connected.detail_type, "connection.connected");
        assert_eq!(detail(&connected)["status"], "error");
        assert_eq!(
            detail(&connected)["error"],
            serde_json::json!({"type": "refresh_token_external_error", "description": "invalid_grant"})
        );
    }

    #[test]
    fn failure_and_recovery_are_one_event_each() {
        let connected = write(None, Change::Created, owned(), T0);
        let failed = write(Some(&connected), failure("invalid_grant"), Tags::new(), T1);
        let failure_event = event(Some(&connected), Some(&failed)).unwrap();
        assert_eq!(failure_event.detail_type, "connection.failed");
        let failure_detail = detail(&failure_event);
        assert_eq!(failure_detail["error"]["description"], "invalid_grant");
        assert_eq!(failure_detail["previousStatus"], "active");
        assert_eq!(failure_detail["connectionVersion"], 2);

        let recovered = write(Some(&failed), Change::Authorized, Tags::new(), T2);
        let recovery_event = event(Some(&failed), Some(&recovered)).unwrap();
        assert_eq!(recovery_event.detail_type, "connection.recovered");
        assert_eq!(detail(&recovery_event)["status"], "active");
        assert_eq!(detail(&recovery_event)["error"], serde_json::Value::Null);
    }

    #[test]
    fn a_completed_reconnect_is_reconnected_not_recovered() {
        let connected = write(None, Change::Created, owned(), T0);
        let failed = write(Some(&connected), failure("invalid_grant"), Tags::new(), T1);
        let reconnected = write(Some(&failed), Change::Reconnected, Tags::new(), T2);
        let reconnect_event = event(Some(&failed), Some(&reconnected)).unwrap();
        assert_eq!(reconnect_event.detail_type, "connection.reconnected");
        assert_eq!(detail(&reconnect_event)["previousStatus"], "error");
        // Reconnecting a connection that works changes nothing the app sees.
        assert_eq!(
            apply(
                Some(&connected),
                &webhook(Change::Reconnected, Tags::new()),
                T2
            ),
            None
        );
        // A failure after, then a refresh that succeeds: that one recovered by itself.
        let failed_again = write(
            Some(&reconnected),
            failure("invalid_grant"),
            Tags::new(),
            T1,
        );
        let recovered = write(Some(&failed_again), Change::Authorized, Tags::new(), T2);
        assert_eq!(
            event(Some(&failed_again), Some(&recovered))
                .unwrap()
                .detail_type,
            "connection.recovered"
        );
    }

    #[test]
    fn deletion_of_a_listable_connection_is_one_event() {
        let connected = write(None, Change::Created, owned(), T0);
        let deleted = write(Some(&connected), Change::Deleted, Tags::new(), T1);
        assert_eq!(deleted.provider, None, "a tombstone keeps no facts");
        let deletion = event(Some(&connected), Some(&deleted)).unwrap();
        assert_eq!(deletion.detail_type, "connection.deleted");
        assert_eq!(
            detail(&deletion),
            serde_json::json!({
                "schemaVersion": 1,
                "connectionId": "conn-1",
                "integrationId": "github",
                // From the old image: as informative as before tombstones were trimmed.
                "provider": "github",
                "environment": "dev",
                "owner": {"endUserId": "user-42", "organizationId": "org-7"},
                "status": "deleted",
                "previousStatus": "active",
                "error": null,
                "changedAt": T1,
                "connectionVersion": 2,
            })
        );
        // The item removed outright (by an operator) says the same.
        let removed = event_for_removal(&connected);
        assert_eq!(removed.detail_type, "connection.deleted");
        assert_eq!(detail(&removed)["status"], "deleted");
    }

    fn event_for_removal(old: &Connection) -> Event {
        event(Some(old), None).unwrap()
    }

    #[test]
    fn writes_that_change_nothing_the_app_sees_publish_nothing() {
        let connected = write(None, Change::Created, owned(), T0);
        // Same state, new updatedAt and version (a store that writes anyway).
        let mut touched = connected.clone();
        touched.updated_at = T1.into();
        touched.version += 1;
        assert_eq!(classify(Some(&connected), Some(&touched)), None);
        // Tags changed (an organization display name, say), status unchanged.
        let retagged = write(
            Some(&connected),
            Change::Authorized,
            tags(&[
                ("end_user_id", "user-42"),
                ("organization_id", "org-7"),
                ("organization_display_name", "Acme"),
            ]),
            T1,
        );
        assert_eq!(classify(Some(&connected), Some(&retagged)), None);
        // A failing connection whose error text changes stays failed: no second event.
        let failed = write(Some(&connected), failure("invalid_grant"), Tags::new(), T1);
        let failed_again = write(Some(&failed), failure("expired"), Tags::new(), T2);
        assert_eq!(classify(Some(&failed), Some(&failed_again)), None);
    }

    #[test]
    fn nothing_about_a_connection_that_was_never_listable() {
        let tombstone = write(None, Change::Deleted, Tags::new(), T0);
        assert_eq!(classify(None, Some(&tombstone)), None);
        let orphan = write(None, failure("invalid_grant"), Tags::new(), T0);
        let deleted = write(Some(&orphan), Change::Deleted, Tags::new(), T1);
        assert_eq!(classify(Some(&orphan), Some(&deleted)), None);
        assert_eq!(classify(Some(&orphan), None), None);
        // A deleted connection written again (by hand) says nothing more.
        let connected = write(None, Change::Created, owned(), T0);
        let gone = write(Some(&connected), Change::Deleted, Tags::new(), T1);
        let mut touched = gone.clone();
        touched.version += 1;
        assert_eq!(classify(Some(&gone), Some(&touched)), None);
    }
}
