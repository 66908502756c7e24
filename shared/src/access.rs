//! Who may do what with a connection: one policy, decided in one function.
//!
//! A connection belongs to its end user. What its organization's other members may do is the
//! deployment's choice, [`OrganizationAccess`] (`ORGANIZATION_ACCESS`):
//!
//! | policy            | list | reconnect | delete |
//! |-------------------|------|-----------|--------|
//! | `shared` (default)| end user and organization | end user and organization | end user and organization |
//! | `visible`         | end user and organization | end user only | end user only |
//! | `private`         | end user only | end user only | end user only |
//!
//! Under `shared` and `visible`, membership follows the token: a connection that belongs to an
//! organization is listed, reconnected and deleted only by callers whose current organization claim
//! is that organization — its own end user included, once they have left it. Under `private`, only
//! its end user, whatever their organization now.
//!
//! The trade-off of `shared`: a colleague who reconnects a connection completes it with *their*
//! third-party account, and from then on the connection acts as them. `visible` keeps the team's
//! view without that.
//!
//! A caller who may not act on a connection is told exactly what a caller is told about a
//! connection that does not exist ([`Denied`] maps to `404 connection_not_found`), so ids cannot be
//! probed; and nothing is asked of Nango on their behalf.

use crate::config::{ConfigError, ORGANIZATION_ACCESS, Source, optional};
use crate::connection::{Connection, Status};
use crate::identity::Identity;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrganizationAccess {
    /// Members of the connection's organization may list, reconnect and delete it.
    #[default]
    Shared,
    /// Members may list it; only its end user may reconnect or delete it.
    Visible,
    /// Only its end user may list, reconnect or delete it.
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Reconnect,
    Delete,
}

/// Not this caller's to act on (or gone): indistinguishable from "no such connection".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the caller may not act on this connection")]
pub struct Denied;

impl OrganizationAccess {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        match optional(source, ORGANIZATION_ACCESS).as_deref() {
            None | Some("shared") => Ok(OrganizationAccess::Shared),
            Some("visible") => Ok(OrganizationAccess::Visible),
            Some("private") => Ok(OrganizationAccess::Private),
            Some(_) => Err(ConfigError::Invalid {
                name: ORGANIZATION_ACCESS,
                reason: "must be shared, visible or private".to_owned(),
            }),
        }
    }

    /// Whether organization members may do `action` to connections they do not own themselves.
    pub fn lets_organization(self, action: Action) -> bool {
        match self {
            OrganizationAccess::Shared => true,
            OrganizationAccess::Visible => action == Action::List,
            OrganizationAccess::Private => false,
        }
    }
}

/// Whether `caller` may do `action` to `connection` under `policy`.
pub fn authorize(
    policy: OrganizationAccess,
    caller: &Identity,
    connection: &Connection,
    action: Action,
) -> Result<(), Denied> {
    if connection.status == Status::Deleted {
        return Err(Denied);
    }
    let owner = &connection.owner;
    let is_end_user = owner.end_user_id.as_ref() == Some(&caller.end_user_id);
    let is_member = caller.organization_id.is_some()
        && owner.organization_id.as_ref() == caller.organization_id.as_ref();
    let allowed = match (policy, &owner.organization_id) {
        (OrganizationAccess::Private, _) | (_, None) => is_end_user,
        // An organization's connection follows the token's current organization: whoever has
        // left it, its creator included, no longer sees or acts on the team's connections.
        (_, Some(_)) => is_member && (is_end_user || policy.lets_organization(action)),
    };
    if allowed { Ok(()) } else { Err(Denied) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Owner;
    use crate::identity::{EndUserId, OrganizationId};
    use crate::nango::{ConnectionId, IntegrationId, Tags};

    fn caller(end_user: &str, organization: Option<&str>) -> Identity {
        Identity {
            end_user_id: EndUserId::parse(end_user).unwrap(),
            email: None,
            display_name: None,
            organization_id: organization.map(|o| OrganizationId::parse(o).unwrap()),
        }
    }

    fn connection(end_user: Option<&str>, organization: Option<&str>) -> Connection {
        Connection {
            id: ConnectionId::parse("c1").unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: None,
            auth_mode: None,
            environment: None,
            owner: Owner {
                end_user_id: end_user.map(|u| EndUserId::parse(u).unwrap()),
                organization_id: organization.map(|o| OrganizationId::parse(o).unwrap()),
            },
            tags: Tags::new(),
            status: Status::Active,
            error: None,
            created_at: "2026-11-26T10:00:00.000Z".into(),
            updated_at: "2026-11-26T10:00:00.000Z".into(),
            deleted_at: None,
            reconnected_at: None,
            version: 1,
        }
    }

    const ACTIONS: [Action; 3] = [Action::List, Action::Reconnect, Action::Delete];

    #[test]
    fn the_end_user_may_do_everything_under_every_policy() {
        let alice = caller("alice", Some("acme"));
        for policy in [
            OrganizationAccess::Shared,
            OrganizationAccess::Visible,
            OrganizationAccess::Private,
        ] {
            for action in ACTIONS {
                assert_eq!(
                    authorize(policy, &alice, &connection(Some("alice"), None), action),
                    Ok(()),
                    "{policy:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn colleagues_get_what_the_policy_names() {
        let bob = caller("bob", Some("acme"));
        let alices = connection(Some("alice"), Some("acme"));
        let allowed =
            |policy| ACTIONS.map(|action| authorize(policy, &bob, &alices, action).is_ok());
        assert_eq!(allowed(OrganizationAccess::Shared), [true, true, true]);
        assert_eq!(allowed(OrganizationAccess::Visible), [true, false, false]);
        assert_eq!(allowed(OrganizationAccess::Private), [false, false, false]);
    }

    #[test]
    fn an_organizations_connection_follows_the_tokens_current_organization() {
        let alices = connection(Some("alice"), Some("acme"));
        let alice_elsewhere = caller("alice", Some("globex"));
        let alice_without = caller("alice", None);
        let allowed = |policy, who: &Identity| {
            ACTIONS.map(|action| authorize(policy, who, &alices, action).is_ok())
        };
        for policy in [OrganizationAccess::Shared, OrganizationAccess::Visible] {
            assert_eq!(allowed(policy, &alice_elsewhere), [false; 3], "{policy:?}");
            assert_eq!(allowed(policy, &alice_without), [false; 3], "{policy:?}");
            assert_eq!(
                allowed(policy, &caller("alice", Some("acme"))),
                [true; 3],
                "{policy:?}"
            );
        }
        // Under private a connection is its end user's alone, whatever their organization now.
        assert_eq!(
            allowed(OrganizationAccess::Private, &alice_elsewhere),
            [true; 3]
        );
    }

    #[test]
    fn strangers_and_callers_without_an_organization_get_nothing() {
        let alices = connection(Some("alice"), Some("acme"));
        let orgless = connection(Some("alice"), None);
        for action in ACTIONS {
            let shared = OrganizationAccess::Shared;
            assert_eq!(
                authorize(shared, &caller("eve", Some("evil")), &alices, action),
                Err(Denied)
            );
            assert_eq!(
                authorize(shared, &caller("eve", None), &alices, action),
                Err(Denied)
            );
            // Two callers without an organization do not share "no organization".
            assert_eq!(
                authorize(shared, &caller("eve", None), &orgless, action),
                Err(Denied)
            );
        }
    }

    #[test]
    fn a_deleted_connection_is_nobodys() {
        let mut deleted = connection(Some("alice"), Some("acme"));
        deleted.status = Status::Deleted;
        for action in ACTIONS {
            assert_eq!(
                authorize(
                    OrganizationAccess::Shared,
                    &caller("alice", Some("acme")),
                    &deleted,
                    action
                ),
                Err(Denied)
            );
        }
    }

    #[test]
    fn the_policy_is_configured_by_name() {
        assert_eq!(
            OrganizationAccess::from_source(&[]).unwrap(),
            OrganizationAccess::Shared
        );
        assert_eq!(
            OrganizationAccess::from_source(&[(ORGANIZATION_ACCESS, " visible ")]).unwrap(),
            OrganizationAccess::Visible
        );
        assert_eq!(
            OrganizationAccess::from_source(&[(ORGANIZATION_ACCESS, "private")]).unwrap(),
            OrganizationAccess::Private
        );
        let err = OrganizationAccess::from_source(&[(ORGANIZATION_ACCESS, "public")]).unwrap_err();
        assert_eq!(err.variable(), ORGANIZATION_ACCESS);
    }
}
