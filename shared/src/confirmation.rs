//! A signed webhook is a hint; Nango's API is the truth.
//!
//! A valid signature proves that Nango delivered the bytes, not that Nango wrote them: a provider
//! webhook Nango cannot match is forwarded unwrapped and signed with our key
//! (shared/docs/nango-api.md §6). So what a webhook would change that matters is asked of Nango's
//! API first, with the side-effect-free exact lookup ([`NangoClient::find_connection`]):
//!
//! | webhook            | asked                       | applied as                                        |
//! |--------------------|-----------------------------|---------------------------------------------------|
//! | `creation`         | does Nango list it?         | yes: with the owner and tags of Nango's row; no, or no answer: an *unconfirmed orphan* (no owner, no tags: listed for nobody, acted on by nobody) for reconciliation to decide |
//! | `deletion`         | is it gone from the listing? | yes: deleted (never an owner or tags from the body); still listed, or no answer: nothing written, reconciliation decides |
//! | refresh / override | not asked                   | status and error as the webhook says; never an owner or tags |
//!
//! Nango's listing is read from a replica and can lag a few seconds behind a write, so an answer
//! that contradicts the webhook is asked again after short waits before it is believed.

use std::time::Duration;

use tokio::time::Instant;

use crate::connection::{AuthEvent, Change, Owner};
use crate::nango::{ListedConnection, NangoClient, Tags};

/// Waits before asking again when Nango's answer contradicts the webhook: long enough for a
/// replica to catch up in the cases seen, short enough to stay far inside Nango's 20 s delivery
/// timeout.
const LAG_RETRIES: [Duration; 2] = [Duration::from_millis(400), Duration::from_millis(1200)];

/// The most a confirmation may take, all lookups, retries and waits included. The receiver's
/// Lambda timeout (10 s) leaves room for the DynamoDB write after it.
pub const CONFIRMATION_BUDGET: Duration = Duration::from_secs(6);

/// What Nango's API said of a webhook's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Nango agrees: it lists the created connection, or no longer lists the deleted one.
    Confirmed,
    /// Nango says otherwise, also after waiting out its replica lag.
    Contradicted,
    /// Nango did not answer within the budget.
    Unanswered,
    /// Not asked: a status change, which Nango's listing corrects at the next reconciliation.
    NotNeeded,
}

impl Confirmation {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirmation::Confirmed => "confirmed",
            Confirmation::Contradicted => "contradicted",
            Confirmation::Unanswered => "unanswered",
            Confirmation::NotNeeded => "not_needed",
        }
    }
}

/// A webhook's event after confirmation: what to apply (`None`: nothing), and what Nango said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    pub event: Option<AuthEvent>,
    pub confirmation: Confirmation,
}

pub struct Confirmer {
    nango: NangoClient,
    lag_retries: Vec<Duration>,
    budget: Duration,
}

impl Confirmer {
    pub fn new(nango: NangoClient) -> Self {
        Confirmer {
            nango,
            lag_retries: LAG_RETRIES.to_vec(),
            budget: CONFIRMATION_BUDGET,
        }
    }

    /// Shorter waits and budget, for tests that play Nango's lag and outages.
    pub fn with_timing(mut self, lag_retries: Vec<Duration>, budget: Duration) -> Self {
        self.lag_retries = lag_retries;
        self.budget = budget;
        self
    }

    /// `event` as it may be applied: confirmed where it would set an owner or delete.
    pub async fn vet(&self, mut event: AuthEvent) -> Vetted {
        match event.change {
            Change::Created => {
                let (row, confirmation) = self.ask(&event, true).await;
                match row {
                    Some(row) => {
                        let tags = Tags::from_json(row.tags);
                        let owner = Owner::from_tags(&tags);
                        if event.owner.is_known() && event.owner != owner {
                            tracing::warn!(
                                connection_id = %event.connection_id,
                                owner = ?owner,
                                webhook_owner = ?event.owner,
                                "a creation webhook names another owner than Nango's tags; Nango's is stored"
                            );
                        }
                        event.owner = owner;
                        event.tags = tags;
                    }
                    None => {
                        tracing::warn!(
                            connection_id = %event.connection_id,
                            integration_id = %event.integration_id,
                            confirmation = confirmation.as_str(),
                            webhook_owner = ?event.owner,
                            "a creation Nango does not confirm: stored without an owner until reconciliation decides"
                        );
                        event.owner = Owner::default();
                        event.tags = Tags::new();
                    }
                }
                Vetted {
                    event: Some(event),
                    confirmation,
                }
            }
            Change::Deleted => {
                // A deletion keeps the owner already known; of a connection never seen, it leaves a
                // tombstone that must not take an owner or tags from the body either.
                event.owner = Owner::default();
                event.tags = Tags::new();
                let (_, confirmation) = self.ask(&event, false).await;
                if confirmation != Confirmation::Confirmed {
                    tracing::warn!(
                        connection_id = %event.connection_id,
                        integration_id = %event.integration_id,
                        confirmation = confirmation.as_str(),
                        "a deletion Nango does not confirm: nothing written, reconciliation decides"
                    );
                }
                Vetted {
                    event: (confirmation == Confirmation::Confirmed).then_some(event),
                    confirmation,
                }
            }
            _ => {
                // Never an owner or tags from a status change: only Nango's own row may name them
                // (a reconnect sends the stored tags back to Nango, so forged ones would stick).
                event.owner = Owner::default();
                event.tags = Tags::new();
                Vetted {
                    event: Some(event),
                    confirmation: Confirmation::NotNeeded,
                }
            }
        }
    }

    /// Looks the connection up until Nango's answer is what the webhook claims (`listed`), the
    /// lag retries run out (contradicted), or Nango fails or time runs out (unanswered). Returns
    /// Nango's row when it lists the connection.
    async fn ask(
        &self,
        event: &AuthEvent,
        listed: bool,
    ) -> (Option<ListedConnection>, Confirmation) {
        let deadline = Instant::now() + self.budget;
        let mut waits = self.lag_retries.iter();
        loop {
            let lookup = tokio::time::timeout_at(
                deadline,
                self.nango
                    .find_connection(&event.connection_id, &event.integration_id),
            )
            .await;
            let row = match lookup {
                Ok(Ok(row)) => row,
                Ok(Err(err)) => {
                    tracing::warn!(connection_id = %event.connection_id, error = %err, "Nango could not confirm a webhook");
                    return (None, Confirmation::Unanswered);
                }
                Err(_) => {
                    tracing::warn!(connection_id = %event.connection_id, "Nango did not answer a confirmation in time");
                    return (None, Confirmation::Unanswered);
                }
            };
            if row.is_some() == listed {
                return (row, Confirmation::Confirmed);
            }
            match waits.next() {
                Some(wait) if Instant::now() + *wait < deadline => {
                    tokio::time::sleep(*wait).await;
                }
                _ => return (row, Confirmation::Contradicted),
            }
        }
    }
}
