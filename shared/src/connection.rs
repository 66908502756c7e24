//! A connection as this project keeps it, and how each auth webhook changes it.
//!
//! [`apply`] is the whole lifecycle, as a pure function: the store reads the current state, asks
//! `apply` for the next one and writes it only if nothing changed in between.
//!
//! Nango's webhooks carry no event id and no timestamp, and arrive duplicated and in any order.
//! What can be told apart, and so is handled exactly:
//! - a duplicate of any webhook: it changes nothing the second time (no write at all);
//! - a late `creation` (a retry arriving after later events): it only fills in what is still
//!   unknown (owner, tags, facts) and never changes status, error or `createdAt`;
//! - anything after a `deletion`: ignored, so a deleted connection's owner is never silently
//!   resurrected; a `deletion` for a connection never seen leaves a tombstone for the same reason;
//! - a webhook with empty or missing tags: keeps the owner and tags already known;
//! - a webhook naming the same connection id under another integration: not merged (ignored).
//!
//! What cannot be told apart, and so is last-delivered-wins:
//! - two status changes delivered out of order (say an `override` success sent after a `refresh`
//!   failure but delivered before it): the connection shows the older status until the next
//!   webhook. Nango repeats refresh failures and the user can reconnect, so this heals;
//! - two non-empty tag sets delivered out of order: the older set wins until the next webhook.

use crate::nango::tags::{self, Tags};
use crate::nango::{ConnectionId, IntegrationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Error,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Error => "error",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Status::Active),
            "error" => Some(Status::Error),
            "deleted" => Some(Status::Deleted),
            _ => None,
        }
    }
}

/// Why a connection is failing, as Nango put it. Both fields are open text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: String,
    pub description: String,
}

/// Who a connection belongs to, as far as we know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub end_user_id: Option<String>,
    pub organization_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub integration_id: IntegrationId,
    pub provider: Option<String>,
    pub auth_mode: Option<String>,
    pub environment: Option<String>,
    pub owner: Owner,
    pub tags: Tags,
    pub status: Status,
    pub error: Option<Failure>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// Bumped on every write; the store's optimistic-concurrency check.
    pub version: u64,
}

impl Connection {
    pub fn is_owned_by(&self, end_user_id: &str, organization_id: Option<&str>) -> bool {
        self.owner.end_user_id.as_deref() == Some(end_user_id)
            || (organization_id.is_some()
                && self.owner.organization_id.as_deref() == organization_id)
    }

    /// The tags to send with a reconnect: everything stored, plus the owner ids in case the owner
    /// was learned from the deprecated `endUser` object rather than from tags. Nango replaces the
    /// connection's tags with these, so leaving any out would lose them.
    pub fn reconnect_tags(&self) -> Tags {
        let mut tags = self.tags.clone();
        if let Some(end_user_id) = &self.owner.end_user_id {
            tags.insert_missing(tags::END_USER_ID, end_user_id);
        }
        if let Some(organization_id) = &self.owner.organization_id {
            tags.insert_missing(tags::ORGANIZATION_ID, organization_id);
        }
        tags
    }
}

/// What an auth webhook says happened to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `creation` + success.
    Created,
    /// `override` or `refresh` + success: the credentials work (again).
    Authorized,
    /// `override` or `refresh` + failure: the user must reconnect.
    Failed(Failure),
    /// `deletion`.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub connection_id: ConnectionId,
    pub integration_id: IntegrationId,
    pub provider: Option<String>,
    pub auth_mode: Option<String>,
    pub environment: Option<String>,
    pub owner: Owner,
    pub tags: Tags,
    pub change: Change,
}

/// The state after `event`, or `None` when it changes nothing (a duplicate, or anything after a
/// deletion). `now` is an RFC 3339 timestamp, used for `updatedAt` and, on first sight, `createdAt`.
pub fn apply(current: Option<&Connection>, event: &AuthEvent, now: &str) -> Option<Connection> {
    let mut next = match current {
        Some(connection) if connection.status == Status::Deleted => return None,
        // Nango names a connection by id *and* integration; one id under another integration is
        // not this connection, and must not be merged into it.
        Some(connection) if connection.integration_id != event.integration_id => return None,
        Some(connection) => connection.clone(),
        None => Connection {
            id: event.connection_id.clone(),
            integration_id: event.integration_id.clone(),
            provider: None,
            auth_mode: None,
            environment: None,
            owner: Owner::default(),
            tags: Tags::new(),
            status: Status::Active,
            error: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            deleted_at: None,
            version: 0,
        },
    };
    fill(&mut next.provider, &event.provider);
    fill(&mut next.auth_mode, &event.auth_mode);
    fill(&mut next.environment, &event.environment);

    match &event.change {
        Change::Created => {
            // Possibly late: it may only add what nothing newer has said yet.
            if next.tags.is_empty() {
                next.tags = event.tags.clone();
            }
            fill(&mut next.owner.end_user_id, &event.owner.end_user_id);
            fill(
                &mut next.owner.organization_id,
                &event.owner.organization_id,
            );
        }
        Change::Authorized => {
            next.status = Status::Active;
            next.error = None;
            learn(&mut next, event);
        }
        Change::Failed(failure) => {
            next.status = Status::Error;
            next.error = Some(failure.clone());
            learn(&mut next, event);
        }
        Change::Deleted => {
            next.status = Status::Deleted;
            next.deleted_at = Some(now.to_owned());
        }
    }

    if current == Some(&next) {
        return None;
    }
    next.updated_at = now.to_owned();
    Some(next)
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// A non-creation event describes the connection as it is now: its tags and owner replace ours,
/// except where it says nothing.
fn learn(next: &mut Connection, event: &AuthEvent) {
    if !event.tags.is_empty() {
        next.tags = event.tags.clone();
    }
    if event.owner.end_user_id.is_some() {
        next.owner.end_user_id.clone_from(&event.owner.end_user_id);
    }
    if event.owner.organization_id.is_some() {
        next.owner
            .organization_id
            .clone_from(&event.owner.organization_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-26T10:00:00.000Z";
    const T1: &str = "2026-11-26T10:05:00.000Z";
    const T2: &str = "2026-11-26T10:10:00.000Z";

    fn owner_tags() -> Tags {
        [("end_user_id", "user-42"), ("organization_id", "org-7")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn event(change: Change, tags: Tags) -> AuthEvent {
        AuthEvent {
            connection_id: ConnectionId::parse("conn-1").unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: Some("github".into()),
            auth_mode: Some("OAUTH2".into()),
            environment: Some("dev".into()),
            owner: Owner {
                end_user_id: tags.get("end_user_id").map(str::to_owned),
                organization_id: tags.get("organization_id").map(str::to_owned),
            },
            tags,
            change,
        }
    }

    fn failure() -> Change {
        Change::Failed(Failure {
            kind: "refresh_token_external_error".into(),
            description: "invalid_grant".into(),
        })
    }

    fn created() -> Connection {
        apply(None, &event(Change::Created, owner_tags()), T0).unwrap()
    }

    #[test]
    fn creation_stores_an_active_owned_connection() {
        let connection = created();
        assert_eq!(connection.status, Status::Active);
        assert_eq!(connection.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(connection.owner.organization_id.as_deref(), Some("org-7"));
        assert_eq!(connection.tags, owner_tags());
        assert_eq!(connection.created_at, T0);
        assert_eq!(connection.updated_at, T0);
    }

    #[test]
    fn duplicate_webhook_changes_nothing() {
        let connection = created();
        assert_eq!(
            apply(Some(&connection), &event(Change::Created, owner_tags()), T1),
            None
        );
        let failed = apply(Some(&connection), &event(failure(), owner_tags()), T1).unwrap();
        assert_eq!(
            apply(Some(&failed), &event(failure(), owner_tags()), T2),
            None
        );
    }

    #[test]
    fn refresh_failure_then_override_success_clears_the_error() {
        let failed = apply(Some(&created()), &event(failure(), Tags::new()), T1).unwrap();
        assert_eq!(failed.status, Status::Error);
        assert_eq!(
            failed.error.as_ref().map(|e| e.description.as_str()),
            Some("invalid_grant")
        );
        let healed = apply(Some(&failed), &event(Change::Authorized, Tags::new()), T2).unwrap();
        assert_eq!(healed.status, Status::Active);
        assert_eq!(healed.error, None);
        assert_eq!(healed.created_at, T0);
        assert_eq!(healed.updated_at, T2);
    }

    #[test]
    fn override_with_empty_tags_keeps_owner_and_tags() {
        let healed = apply(
            Some(&created()),
            &event(Change::Authorized, Tags::new()),
            T1,
        );
        // Already active with the same facts: nothing to write.
        assert_eq!(healed, None);
        let failed = apply(Some(&created()), &event(failure(), Tags::new()), T1).unwrap();
        let healed = apply(Some(&failed), &event(Change::Authorized, Tags::new()), T2).unwrap();
        assert_eq!(healed.tags, owner_tags());
        assert_eq!(healed.owner.end_user_id.as_deref(), Some("user-42"));
    }

    #[test]
    fn late_creation_does_not_undo_a_later_failure() {
        let failed = apply(Some(&created()), &event(failure(), owner_tags()), T1).unwrap();
        assert_eq!(
            apply(Some(&failed), &event(Change::Created, owner_tags()), T2),
            None
        );
    }

    #[test]
    fn late_creation_teaches_the_owner_of_a_connection_first_seen_without_one() {
        let orphan = apply(None, &event(failure(), Tags::new()), T0).unwrap();
        assert_eq!(orphan.owner, Owner::default());
        assert_eq!(orphan.status, Status::Error);
        let owned = apply(Some(&orphan), &event(Change::Created, owner_tags()), T1).unwrap();
        assert_eq!(owned.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(
            owned.status,
            Status::Error,
            "a late creation keeps the newer status"
        );
        assert_eq!(owned.created_at, T0, "createdAt never moves");
    }

    #[test]
    fn nothing_resurrects_a_deleted_connection() {
        let deleted = apply(Some(&created()), &event(Change::Deleted, Tags::new()), T1).unwrap();
        assert_eq!(deleted.status, Status::Deleted);
        assert_eq!(deleted.deleted_at.as_deref(), Some(T1));
        assert_eq!(deleted.owner.end_user_id.as_deref(), Some("user-42"));
        for change in [
            Change::Created,
            Change::Authorized,
            failure(),
            Change::Deleted,
        ] {
            assert_eq!(
                apply(Some(&deleted), &event(change, owner_tags()), T2),
                None
            );
        }
    }

    #[test]
    fn the_same_id_under_another_integration_is_not_merged() {
        let mut other = event(failure(), owner_tags());
        other.integration_id = IntegrationId::parse("linear").unwrap();
        assert_eq!(apply(Some(&created()), &other, T1), None);
    }

    #[test]
    fn deletion_of_an_unknown_connection_leaves_a_tombstone() {
        let tombstone = apply(None, &event(Change::Deleted, Tags::new()), T0).unwrap();
        assert_eq!(tombstone.status, Status::Deleted);
        assert_eq!(
            apply(Some(&tombstone), &event(Change::Created, owner_tags()), T1),
            None
        );
    }

    #[test]
    fn non_empty_tags_on_a_later_event_replace_the_stored_ones() {
        let mut moved = owner_tags();
        moved.insert("organization_id", "org-8");
        let next = apply(Some(&created()), &event(failure(), moved.clone()), T1).unwrap();
        assert_eq!(next.tags, moved);
        assert_eq!(next.owner.organization_id.as_deref(), Some("org-8"));
    }

    #[test]
    fn reconnect_tags_carry_the_owner_even_when_learned_outside_tags() {
        let mut connection = created();
        connection.tags = Tags::new();
        let tags = connection.reconnect_tags();
        assert_eq!(tags.get("end_user_id"), Some("user-42"));
        assert_eq!(tags.get("organization_id"), Some("org-7"));
    }

    #[test]
    fn ownership_is_by_end_user_or_organization() {
        let connection = created();
        assert!(connection.is_owned_by("user-42", None));
        assert!(connection.is_owned_by("someone-else", Some("org-7")));
        assert!(!connection.is_owned_by("someone-else", Some("org-8")));
        assert!(!connection.is_owned_by("someone-else", None));
    }
}
