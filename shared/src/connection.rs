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
//!   resurrected; a `deletion` for a connection never seen leaves a tombstone for the same reason.
//!   The one exception is Nango's own listing: a tombstone that a listing read after it (and after
//!   the listing's lag) still shows live comes back, as a connection first seen then, owned as
//!   Nango's tags say (a wrong deletion undone: see [`crate::confirmation`]).
//!   A tombstone keeps only id, integration, owner ids, status, version and dates: tags (emails,
//!   display names), error and facts are dropped at deletion;
//! - a webhook with empty or missing tags: keeps the owner and tags already known;
//! - a webhook naming another owner than the one we know: the owner stays (see below);
//! - a webhook naming the same connection id under another integration: not merged (ignored).
//!
//! What cannot be told apart, and so is last-delivered-wins:
//! - two status changes delivered out of order (say an `override` success sent after a `refresh`
//!   failure but delivered before it): the connection shows the older status until the next
//!   webhook. Nango repeats refresh failures and the user can reconnect, so this heals;
//! - two non-empty tag sets delivered out of order: the older set wins until the next webhook.
//!
//! Reconciliation ([`crate::reconcile`]) goes through the same function, with [`Change::Observed`]:
//! what Nango's `GET /connections` says of a connection now. A listing is read from a replica and
//! may be older than the last webhook, so an observation changes status, error and tags only of a
//! connection nothing newer has written (`updatedAt` before the observation's `as_of`); it always
//! stores a connection we never heard of and teaches an owner still unknown.
//!
//! The owner (end user and organization, as one) is set once, by the first webhook or reconciliation
//! that names one, and never changed after: who may see, reconnect and delete a connection must not
//! depend on which webhook came last, nor be movable by whoever can get a differently tagged webhook
//! sent. A later webhook that names another owner is still applied (status, error, tags: those mirror
//! Nango) and the disagreement is reported by [`owner_conflict`] for the log.

use crate::identity::{EndUserId, OrganizationId};
use crate::nango::tags::{self, Tags};
use crate::nango::{ConnectionId, IntegrationId};

/// The most of a failure's type and description we keep. Nango's are short; a provider's error
/// text can be anything, and a webhook may be up to 1 MB: what is stored must always fit in a
/// DynamoDB item (400 KB), or the webhook could never be written.
pub const MAX_ERROR_TYPE_CHARS: usize = 256;
pub const MAX_ERROR_DESCRIPTION_CHARS: usize = 2048;
/// The most of `provider`, `authMode` and `environment` we keep.
pub const MAX_LABEL_CHARS: usize = 256;

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

/// Why a connection is failing, as Nango put it. Both fields are open text, cut to a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: String,
    pub description: String,
}

impl Failure {
    pub fn new(kind: &str, description: &str) -> Self {
        Failure {
            kind: bounded(kind, MAX_ERROR_TYPE_CHARS),
            description: bounded(description, MAX_ERROR_DESCRIPTION_CHARS),
        }
    }
}

/// `value`, cut to at most `max` characters.
pub fn bounded(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((end, _)) => value[..end].to_owned(),
        None => value.to_owned(),
    }
}

/// Who a connection belongs to. Unknown while both are `None`; once known, it never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub end_user_id: Option<EndUserId>,
    pub organization_id: Option<OrganizationId>,
}

impl Owner {
    /// The owner Nango's tags name: only ids that pass [`EndUserId::parse`] /
    /// [`OrganizationId::parse`] count.
    pub fn from_tags(tags: &Tags) -> Self {
        Owner {
            end_user_id: tags
                .get(tags::END_USER_ID)
                .and_then(|id| EndUserId::parse(id).ok()),
            organization_id: tags
                .get(tags::ORGANIZATION_ID)
                .and_then(|id| OrganizationId::parse(id).ok()),
        }
    }

    pub fn is_known(&self) -> bool {
        self.end_user_id.is_some() || self.organization_id.is_some()
    }
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
    /// When the user last brought it back from `error` by completing a reconnect (`override`).
    pub reconnected_at: Option<String>,
    /// Bumped on every write; the store's optimistic-concurrency check.
    pub version: u64,
}

impl Connection {
    /// What a deleted connection keeps: only what the lifecycle needs to refuse what comes after
    /// (id, integration, owner ids, status, version, dates). Tags (emails, display names), the
    /// error and the facts are dropped, since nobody may read them any more and a tombstone
    /// outlives the connection (until its time to live, see the store).
    fn into_tombstone(self, now: &str) -> Connection {
        Connection {
            id: self.id,
            integration_id: self.integration_id,
            provider: None,
            auth_mode: None,
            environment: None,
            owner: self.owner,
            tags: Tags::new(),
            status: Status::Deleted,
            error: None,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: Some(now.to_owned()),
            reconnected_at: None,
            version: self.version,
        }
    }

    /// The tags to send with a reconnect: everything stored, with the owner ids as we know them
    /// (they may have been learned from the deprecated `endUser` object, and tags that name someone
    /// else must not be handed back to Nango). Nango replaces the connection's tags with these, so
    /// leaving any out would lose them.
    pub fn reconnect_tags(&self) -> Tags {
        let mut tags = self.tags.clone();
        if let Some(end_user_id) = &self.owner.end_user_id {
            tags.set_owner(tags::END_USER_ID, end_user_id.as_str());
        }
        if let Some(organization_id) = &self.owner.organization_id {
            tags.set_owner(tags::ORGANIZATION_ID, organization_id.as_str());
        }
        tags
    }
}

/// What an auth webhook says happened to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `creation` + success.
    Created,
    /// `refresh` + success: the credentials work again.
    Authorized,
    /// `override` + success: the user completed a reconnect; the credentials work again.
    Reconnected,
    /// `override` or `refresh` + failure: the user must reconnect.
    Failed(Failure),
    /// `deletion`, or reconciliation's confirmed absence from Nango.
    Deleted,
    /// Reconciliation: Nango lists the connection, with or without an `auth` error.
    Observed(Observation),
}

/// What one row of Nango's `GET /connections` says of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// `errors` holds one of type `auth`: the credentials are broken. (`sync` errors are not.)
    pub auth_error: bool,
    /// Nango's `created`, as RFC 3339 UTC with milliseconds; used only for a connection we never
    /// stored, so that it sorts where Nango created it rather than where we found it.
    pub created_at: Option<String>,
    /// The listing may lag behind writes this long before it was read: a stored connection written
    /// at or after `as_of` has news the listing may not show yet, and keeps its status, error and
    /// tags (the next run sees the listing catch up).
    pub as_of: String,
}

/// The failure an observed `auth` error gets when no webhook said why: Nango's listing carries only
/// the error's type (and a log id), never its description. A failure a webhook stored is more
/// precise, and is kept.
pub const OBSERVED_FAILURE_TYPE: &str = "auth";
pub const OBSERVED_FAILURE_DESCRIPTION: &str = "Nango reports this connection's credentials as broken; the webhook that said why was not received. The user must reconnect.";

impl Failure {
    pub fn observed() -> Self {
        Failure::new(OBSERVED_FAILURE_TYPE, OBSERVED_FAILURE_DESCRIPTION)
    }
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

impl AuthEvent {
    /// `connection` was deleted in Nango, as we learned it ourselves (a delete we asked for, or an
    /// absence reconciliation confirmed) rather than from a webhook: nothing else is known.
    pub fn deletion_of(connection: &Connection) -> Self {
        AuthEvent {
            connection_id: connection.id.clone(),
            integration_id: connection.integration_id.clone(),
            provider: None,
            auth_mode: None,
            environment: None,
            owner: Owner::default(),
            tags: Tags::new(),
            change: Change::Deleted,
        }
    }
}

/// The state after `event`, or `None` when it changes nothing (a duplicate, or anything after a
/// deletion). `now` is an RFC 3339 timestamp, used for `updatedAt` and, on first sight, `createdAt`.
pub fn apply(current: Option<&Connection>, event: &AuthEvent, now: &str) -> Option<Connection> {
    let mut next = match current {
        // Nango's listing, read after the deletion was stored (and after its lag), still shows the
        // connection live: the deletion was wrong (a forged webhook confirmed against a lagging
        // replica, say). It comes back as a connection first seen now, owned as Nango says.
        Some(connection)
            if connection.status == Status::Deleted
                && connection.integration_id == event.integration_id
                && matches!(&event.change, Change::Observed(o) if connection.updated_at < o.as_of) =>
        {
            revived(connection)
        }
        Some(connection) if connection.status == Status::Deleted => return None,
        // Nango names a connection by id *and* integration; one id under another integration is
        // not this connection, and must not be merged into it.
        Some(connection) if connection.integration_id != event.integration_id => return None,
        Some(connection) => connection.clone(),
        None => {
            let created_at = match &event.change {
                Change::Observed(Observation {
                    created_at: Some(created_at),
                    ..
                }) => created_at,
                _ => now,
            };
            first_seen(
                &event.connection_id,
                &event.integration_id,
                created_at,
                now,
                0,
            )
        }
    };
    fill(&mut next.provider, &event.provider);
    fill(&mut next.auth_mode, &event.auth_mode);
    fill(&mut next.environment, &event.environment);
    if !next.owner.is_known() {
        next.owner.clone_from(&event.owner);
    }

    match &event.change {
        Change::Created => {
            // Possibly late: it may only add what nothing newer has said yet.
            if next.tags.is_empty() {
                next.tags = event.tags.clone();
            }
        }
        Change::Authorized | Change::Reconnected => {
            if event.change == Change::Reconnected && next.status == Status::Error {
                next.reconnected_at = Some(now.to_owned());
            }
            next.status = Status::Active;
            next.error = None;
            learn_tags(&mut next, event);
        }
        Change::Failed(failure) => {
            next.status = Status::Error;
            next.error = Some(failure.clone());
            learn_tags(&mut next, event);
        }
        Change::Deleted => next = next.into_tombstone(now),
        Change::Observed(observation) => {
            let newer_than_listing = current.is_some_and(|c| c.updated_at >= observation.as_of);
            if !newer_than_listing {
                if observation.auth_error {
                    if next.status != Status::Error || next.error.is_none() {
                        next.status = Status::Error;
                        next.error = Some(Failure::observed());
                    }
                } else {
                    next.status = Status::Active;
                    next.error = None;
                }
                learn_tags(&mut next, event);
            }
        }
    }

    if current == Some(&next) {
        return None;
    }
    next.updated_at = now.to_owned();
    Some(next)
}

/// What a tombstone passes on to the connection it becomes again: its identity, when we first
/// heard of it, and its version (the store's write is conditioned on it).
fn revived(tombstone: &Connection) -> Connection {
    first_seen(
        &tombstone.id,
        &tombstone.integration_id,
        &tombstone.created_at,
        &tombstone.updated_at,
        tombstone.version,
    )
}

/// A connection about which nothing is known yet but its identity.
fn first_seen(
    id: &ConnectionId,
    integration_id: &IntegrationId,
    created_at: &str,
    updated_at: &str,
    version: u64,
) -> Connection {
    Connection {
        id: id.clone(),
        integration_id: integration_id.clone(),
        provider: None,
        auth_mode: None,
        environment: None,
        owner: Owner::default(),
        tags: Tags::new(),
        status: Status::Active,
        error: None,
        created_at: created_at.to_owned(),
        updated_at: updated_at.to_owned(),
        deleted_at: None,
        reconnected_at: None,
        version,
    }
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// A non-creation event describes the connection's tags as they are now in Nango: they replace
/// ours, unless it says nothing.
fn learn_tags(next: &mut Connection, event: &AuthEvent) {
    if !event.tags.is_empty() {
        next.tags = event.tags.clone();
    }
}

/// The known owner and the other one `event` names, when they differ: the event is applied all the
/// same, but the owner stays, and this is worth a warning.
pub fn owner_conflict<'a>(
    current: Option<&'a Connection>,
    event: &'a AuthEvent,
) -> Option<(&'a Owner, &'a Owner)> {
    let known = &current?.owner;
    (known.is_known() && event.owner.is_known() && *known != event.owner)
        .then_some((known, &event.owner))
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
            owner: Owner::from_tags(&tags),
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
    fn a_tombstone_keeps_only_what_the_lifecycle_needs() {
        let mut tags = owner_tags();
        tags.insert("end_user_email", "alice@example.com");
        tags.insert("end_user_display_name", "Alice Example");
        tags.insert("organization_display_name", "Acme Org");
        let connected = apply(None, &event(Change::Created, tags.clone()), T0).unwrap();
        let reconnected = apply(Some(&connected), &event(failure(), tags.clone()), T1)
            .and_then(|failed| apply(Some(&failed), &event(Change::Reconnected, tags), T1))
            .unwrap();
        assert!(reconnected.reconnected_at.is_some() && reconnected.provider.is_some());
        let deleted = apply(Some(&reconnected), &event(Change::Deleted, Tags::new()), T2).unwrap();
        assert_eq!(
            deleted,
            Connection {
                id: reconnected.id.clone(),
                integration_id: reconnected.integration_id.clone(),
                provider: None,
                auth_mode: None,
                environment: None,
                owner: reconnected.owner.clone(),
                tags: Tags::new(),
                status: Status::Deleted,
                error: None,
                created_at: T0.into(),
                updated_at: T2.into(),
                deleted_at: Some(T2.into()),
                reconnected_at: None,
                version: reconnected.version,
            }
        );
        // A deletion of a failing connection drops its error too; one never seen keeps nothing
        // of the deletion webhook but what it names.
        let failed = apply(Some(&created()), &event(failure(), owner_tags()), T1).unwrap();
        let deleted = apply(Some(&failed), &event(Change::Deleted, owner_tags()), T2).unwrap();
        assert_eq!((deleted.error, deleted.tags), (None, Tags::new()));
        let unseen = apply(None, &event(Change::Deleted, owner_tags()), T0).unwrap();
        assert_eq!(unseen.tags, Tags::new());
        assert_eq!((unseen.provider, unseen.environment), (None, None));
    }

    #[test]
    fn nothing_resurrects_a_deleted_connection() {
        let deleted = apply(Some(&created()), &event(Change::Deleted, Tags::new()), T1).unwrap();
        assert_eq!(deleted.status, Status::Deleted);
        assert_eq!(deleted.deleted_at.as_deref(), Some(T1));
        assert_eq!(deleted.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(deleted.tags, Tags::new(), "tags are not kept");
        for change in [
            Change::Created,
            Change::Authorized,
            failure(),
            Change::Deleted,
            // A listing that may not show the deletion yet (see the revival test for one that does).
            observed(false, T1),
            observed(true, T0),
        ] {
            assert_eq!(
                apply(Some(&deleted), &event(change, owner_tags()), T2),
                None
            );
        }
    }

    #[test]
    fn a_listing_read_after_a_deletion_revives_the_connection_owned_as_nango_says() {
        let deleted = apply(Some(&created()), &event(Change::Deleted, Tags::new()), T1).unwrap();
        // A listing that may predate the deletion proves nothing.
        assert_eq!(
            apply(
                Some(&deleted),
                &event(observed(false, T0), owner_tags()),
                T2
            ),
            None
        );
        let mut nangos = Tags::new();
        nangos.insert("end_user_id", "user-9");
        let revived = apply(
            Some(&deleted),
            &event(observed(true, T2), nangos.clone()),
            T2,
        )
        .expect("revived");
        assert_eq!(revived.status, Status::Error, "as the listing says");
        assert_eq!(revived.error, Some(Failure::observed()));
        assert_eq!(revived.owner.end_user_id.as_deref(), Some("user-9"));
        assert_eq!(
            revived.owner.organization_id, None,
            "the tombstone's owner is not kept"
        );
        assert_eq!(revived.tags, nangos);
        assert_eq!(revived.deleted_at, None);
        assert_eq!(revived.created_at, deleted.created_at);
        assert_eq!(revived.version, deleted.version);
        // Under another integration, the tombstone stays.
        let mut other = event(observed(false, T2), owner_tags());
        other.integration_id = IntegrationId::parse("linear").unwrap();
        assert_eq!(apply(Some(&deleted), &other, T2), None);
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
    fn a_later_webhook_naming_another_owner_moves_tags_and_status_but_not_the_owner() {
        let mut moved = owner_tags();
        moved.insert("end_user_id", "mallory");
        moved.insert("organization_id", "org-8");
        let current = created();
        let other = event(failure(), moved.clone());
        let next = apply(Some(&current), &other, T1).unwrap();
        assert_eq!(next.owner, current.owner, "the owner stays");
        assert_eq!(next.status, Status::Error, "the rest is applied");
        assert_eq!(next.tags, moved, "tags mirror Nango's");
        assert_eq!(
            owner_conflict(Some(&current), &other),
            Some((&current.owner, &other.owner))
        );
        assert_eq!(
            owner_conflict(Some(&current), &event(failure(), owner_tags())),
            None
        );
        assert_eq!(
            owner_conflict(Some(&current), &event(failure(), Tags::new())),
            None
        );
        assert_eq!(owner_conflict(None, &other), None);
    }

    #[test]
    fn the_first_owner_named_is_taken_whole() {
        let orphan = apply(None, &event(failure(), Tags::new()), T0).unwrap();
        let mut only_user = Tags::new();
        only_user.insert("end_user_id", "user-42");
        let owned = apply(Some(&orphan), &event(failure(), only_user), T1).unwrap();
        assert_eq!(owned.owner.organization_id, None);
        // An organization named later does not complete it: that would move who may act on it.
        let later = apply(Some(&owned), &event(Change::Authorized, owner_tags()), T2).unwrap();
        assert_eq!(later.owner, owned.owner);
    }

    #[test]
    fn reconnect_tags_carry_the_known_owner() {
        let mut connection = created();
        connection.tags = Tags::new();
        let tags = connection.reconnect_tags();
        assert_eq!(tags.get("end_user_id"), Some("user-42"));
        assert_eq!(tags.get("organization_id"), Some("org-7"));
        // Stored tags that name someone else are not handed back to Nango.
        connection.tags = [("end_user_id".to_owned(), "mallory".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            connection.reconnect_tags().get("end_user_id"),
            Some("user-42")
        );
    }

    fn observed(auth_error: bool, as_of: &str) -> Change {
        Change::Observed(Observation {
            auth_error,
            created_at: Some("2026-11-01T08:00:00.000Z".into()),
            as_of: as_of.into(),
        })
    }

    #[test]
    fn an_observed_connection_never_stored_is_stored_with_its_owner_and_nangos_creation_time() {
        let found = apply(None, &event(observed(false, T0), owner_tags()), T1).unwrap();
        assert_eq!(found.status, Status::Active);
        assert_eq!(found.owner.end_user_id.as_deref(), Some("user-42"));
        assert_eq!(found.owner.organization_id.as_deref(), Some("org-7"));
        assert_eq!(found.tags, owner_tags());
        assert_eq!(found.created_at, "2026-11-01T08:00:00.000Z");
        assert_eq!(found.updated_at, T1);
        let broken = apply(None, &event(observed(true, T0), owner_tags()), T1).unwrap();
        assert_eq!(broken.status, Status::Error);
        assert_eq!(broken.error, Some(Failure::observed()));
    }

    #[test]
    fn an_observed_auth_error_keeps_the_failure_a_webhook_described() {
        let failed = apply(Some(&created()), &event(failure(), owner_tags()), T1).unwrap();
        assert_eq!(
            apply(Some(&failed), &event(observed(true, T2), owner_tags()), T2),
            None,
            "already error, with a more precise failure"
        );
        let broken = apply(
            Some(&created()),
            &event(observed(true, T2), owner_tags()),
            T2,
        )
        .unwrap();
        assert_eq!(broken.status, Status::Error);
        assert_eq!(broken.error, Some(Failure::observed()));
        assert_eq!(broken.created_at, T0, "createdAt never moves");
    }

    #[test]
    fn an_observation_without_auth_error_heals_and_a_repeat_changes_nothing() {
        let failed = apply(Some(&created()), &event(failure(), owner_tags()), T1).unwrap();
        let healed = apply(Some(&failed), &event(observed(false, T2), owner_tags()), T2).unwrap();
        assert_eq!(healed.status, Status::Active);
        assert_eq!(healed.error, None);
        assert_eq!(
            apply(Some(&healed), &event(observed(false, T2), owner_tags()), T2),
            None
        );
    }

    #[test]
    fn an_observation_older_than_the_last_write_changes_no_status_but_teaches_the_owner() {
        // A refresh failure stored at T1; a listing trusted only up to T0 cannot undo it.
        let orphan = apply(None, &event(failure(), Tags::new()), T1).unwrap();
        let next = apply(Some(&orphan), &event(observed(false, T0), owner_tags()), T2).unwrap();
        assert_eq!(next.status, Status::Error);
        assert_eq!(next.error, orphan.error);
        assert_eq!(next.owner.end_user_id.as_deref(), Some("user-42"));
        // Tags follow the same rule as the status: the listing is not yet trusted.
        assert_eq!(next.tags, Tags::new());
    }

    #[test]
    fn an_observation_never_moves_a_known_owner() {
        let mut moved = owner_tags();
        moved.insert("end_user_id", "mallory");
        let next = apply(
            Some(&created()),
            &event(observed(true, T2), moved.clone()),
            T2,
        )
        .unwrap();
        assert_eq!(next.owner, created().owner);
        assert_eq!(next.tags, moved, "tags mirror Nango's");
    }

    #[test]
    fn failures_are_bounded() {
        let failure = Failure::new(&"t".repeat(1000), &"é".repeat(1_000_000));
        assert_eq!(failure.kind.chars().count(), MAX_ERROR_TYPE_CHARS);
        assert_eq!(
            failure.description.chars().count(),
            MAX_ERROR_DESCRIPTION_CHARS
        );
        assert_eq!(
            Failure::new("a", "b"),
            Failure {
                kind: "a".into(),
                description: "b".into()
            }
        );
    }
}

/// The lifecycle's promises, for any sequence of auth webhooks and reconciliation observations for
/// one connection, delivered with duplicates and in any order.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const OWNERS: [(&str, Option<&str>); 3] = [
        ("user-1", Some("org-1")),
        ("user-2", Some("org-2")),
        ("user-1", None),
    ];

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            Just(Change::Created),
            Just(Change::Authorized),
            Just(Change::Reconnected),
            Just(Change::Failed(Failure::new(
                "refresh_token_external_error",
                "invalid_grant"
            ))),
            Just(Change::Failed(Failure::new("unknown", ""))),
            Just(Change::Deleted),
            // Listings trusted up to a time before, within or after the deliveries' timestamps.
            (
                any::<bool>(),
                prop::option::of(Just("2026-11-01T08:00:00.000Z".to_owned())),
                prop::sample::select(vec![
                    "2026-11-26T09:00:00.000Z",
                    "2026-11-26T10:00:05.000Z",
                    "2026-11-26T11:00:00.000Z",
                ]),
            )
                .prop_map(|(auth_error, created_at, as_of)| Change::Observed(
                    Observation {
                        auth_error,
                        created_at,
                        as_of: as_of.to_owned(),
                    }
                )),
        ]
    }

    /// An owner named by the webhook's tags, or none (empty tags).
    fn tags() -> impl Strategy<Value = Tags> {
        prop_oneof![
            Just(Tags::new()),
            (0..OWNERS.len()).prop_map(|i| {
                let (user, organization) = OWNERS[i];
                let mut tags = Tags::new();
                tags.insert(tags::END_USER_ID, user);
                if let Some(organization) = organization {
                    tags.insert(tags::ORGANIZATION_ID, organization);
                }
                tags
            }),
        ]
    }

    fn webhook() -> impl Strategy<Value = AuthEvent> {
        (change(), tags(), any::<bool>()).prop_map(|(change, tags, other_integration)| AuthEvent {
            connection_id: ConnectionId::parse("conn-1").unwrap(),
            integration_id: IntegrationId::parse(if other_integration {
                "linear"
            } else {
                "github"
            })
            .unwrap(),
            provider: Some("github".into()),
            auth_mode: Some("OAUTH2".into()),
            environment: Some("dev".into()),
            owner: Owner::from_tags(&tags),
            tags,
            change,
        })
    }

    /// Webhooks and reconciliation runs as delivered: some sent once, some duplicated, all shuffled.
    fn deliveries() -> impl Strategy<Value = Vec<AuthEvent>> {
        prop::collection::vec((webhook(), 1..3usize), 1..12)
            .prop_map(|sent| {
                sent.into_iter()
                    .flat_map(|(webhook, copies)| std::iter::repeat_n(webhook, copies))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    fn timestamp(i: usize) -> String {
        format!("2026-11-26T10:{:02}:{:02}.000Z", i / 60, i % 60)
    }

    proptest! {
        #[test]
        fn owner_never_moves_deleted_never_returns_and_duplicates_change_nothing(
            deliveries in deliveries()
        ) {
            let mut current: Option<Connection> = None;
            let mut first_owner: Option<Owner> = None;
            for (i, webhook) in deliveries.iter().enumerate() {
                let now = timestamp(i);
                let before = current.clone();
                if let Some(next) = apply(current.as_ref(), webhook, &now) {
                    current = Some(next);
                }
                let state = current.as_ref().expect("the first webhook always stores something");
                // The same webhook again, right away: nothing to write.
                prop_assert_eq!(apply(Some(state), webhook, &timestamp(i + 1000)), None);
                // Only Nango's listing, read after the deletion, brings a tombstone back.
                let revived_by_listing = before.as_ref().is_some_and(|before| {
                    before.status == Status::Deleted
                        && before.integration_id == webhook.integration_id
                        && matches!(&webhook.change, Change::Observed(o) if before.updated_at < o.as_of)
                });
                if let Some(before) = &before {
                    if before.status == Status::Deleted && !revived_by_listing {
                        prop_assert_eq!(state, before, "a deleted connection never changes");
                    }
                    prop_assert_eq!(&state.created_at, &before.created_at);
                    prop_assert_eq!(&state.integration_id, &before.integration_id);
                }
                if revived_by_listing {
                    prop_assert!(state.status != Status::Deleted);
                    prop_assert_eq!(&state.owner, &webhook.owner, "a revived connection is owned as Nango says");
                    first_owner = None;
                }
                // A listing newer than everything stored says what the status is.
                if let (Change::Observed(observation), Some(before)) = (&webhook.change, &before)
                    && before.status != Status::Deleted
                    && before.integration_id == webhook.integration_id
                    && before.updated_at < observation.as_of
                {
                    let observed = if observation.auth_error { Status::Error } else { Status::Active };
                    prop_assert_eq!(state.status, observed);
                }
                match &first_owner {
                    Some(owner) => prop_assert_eq!(&state.owner, owner, "the owner never moves"),
                    None if state.owner.is_known() => first_owner = Some(state.owner.clone()),
                    None => {}
                }
            }
        }
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): open text from outside is cut to the documented caps.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, text};

    #[test]
    fn bounded_text_is_the_longest_prefix_within_the_cap() {
        fuzz(
            "connection::bounded / Failure::new",
            (text(3000), text(3000), 0..300usize),
            |(kind, description, max)| {
                let cut = bounded(&description, max);
                prop_assert!(description.starts_with(&cut));
                prop_assert_eq!(cut.chars().count(), description.chars().count().min(max));
                let failure = Failure::new(&kind, &description);
                prop_assert_eq!(failure.kind, bounded(&kind, MAX_ERROR_TYPE_CHARS));
                prop_assert_eq!(
                    failure.description,
                    bounded(&description, MAX_ERROR_DESCRIPTION_CHARS)
                );
                Ok(())
            },
        );
    }
}
