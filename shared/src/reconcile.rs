//! Reconciliation: bring the store into line with Nango's own list of connections, whatever
//! webhooks were lost (Nango keeps no queue: shared/docs/nango-api.md §5).
//!
//! One run:
//! 1. reads the whole table once ([`ConnectionStore::scan_all`]);
//! 2. pages through `GET /connections` (always with `limit`, newest first) until a short page, and
//!    for every row asks [`connection::apply`] what a [`Change::Observed`] changes; only rows where
//!    it changes something are written, through [`ConnectionStore::record_from`] (the webhooks'
//!    versioned conditional write), so a second run over an unchanged Nango writes nothing and a
//!    webhook written meanwhile is never lost;
//!    A tombstone that the listing still shows live, read after the deletion and its lag, comes
//!    back (`restored`): the deletion was wrong;
//! 3. only if every page was read: each stored `active`/`error` connection the listing did not
//!    show, and that nothing wrote for [`Settings::grace`], is looked up with the exact,
//!    side-effect-free `GET /connections?connectionId=&integrationId=`
//!    ([`NangoClient::find_connection`]; never `GET /connections/{id}`, which reads and may refresh
//!    credentials); no live row marks it deleted ([`Change::Deleted`]), whatever the reason —
//!    deleted without a webhook, or its integration removed (Nango then answers
//!    `GET /connections/{id}` with 400, never 404). Offset paging shifts rows when connections
//!    come and go while the run pages, so absence from the listing alone proves nothing.
//!
//! Bounds: a page budget, a cap on absence confirmations, and the invocation's deadline; a run
//! that stops early (or meets a page that fails) says `complete: false` and deletes nothing.
//! The confirmation cap is spent fairly: connections never asked about first, then those asked
//! about least recently (`absenceCheckedAt`, noted when Nango still has one), oldest news first
//! among equals. So `n` absent connections are all asked about within `ceil(n / cap)` complete
//! runs, and none waits behind the others for ever.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{ConfigError, Source, optional};
use crate::connection::{self, AuthEvent, Change, Connection, Observation, Owner, Status};
use crate::nango::{ConnectionId, IntegrationId, ListedConnection, NangoClient, Tags};
use crate::store::{self, ConnectionStore, Recorded, StoreError};
use crate::webhook::payload::label;

pub const RECONCILE_PAGE_SIZE: &str = "RECONCILE_PAGE_SIZE";
pub const RECONCILE_MAX_PAGES: &str = "RECONCILE_MAX_PAGES";
pub const RECONCILE_MAX_CONFIRMATIONS: &str = "RECONCILE_MAX_CONFIRMATIONS";
pub const RECONCILE_GRACE_SECONDS: &str = "RECONCILE_GRACE_SECONDS";

/// Nango accepts `limit` 1..=2000.
const MAX_PAGE_SIZE: u32 = 2000;
/// Writes in flight at once: DynamoDB takes many more, but the point is only to overlap latency.
const WRITE_CONCURRENCY: usize = 16;

/// A run's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Rows per `GET /connections` page. Large pages spend Nango's rate limit (about 200 requests
    /// a minute per account, shared with every other caller) sparingly.
    pub page_size: u32,
    /// Pages read at most per run: `page_size * max_pages` connections are reconciled per run;
    /// an environment larger than that is reconciled as far as the budget goes and never deletes.
    pub max_pages: u32,
    /// `GET /connections/{id}` calls at most per run to confirm absences; the rest wait for the
    /// next run.
    pub max_confirmations: u32,
    /// Nango's listing is read from a replica and lags behind writes: a listing is trusted only
    /// for what is older than this, and a connection written more recently is never deleted.
    pub grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_size: 1000,
            max_pages: 50,
            max_confirmations: 50,
            grace: Duration::from_secs(5 * 60),
        }
    }
}

impl Settings {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        let number = |name: &'static str, default: u32, range: std::ops::RangeInclusive<u32>| {
            let Some(value) = optional(source, name) else {
                return Ok(default);
            };
            value
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!(
                        "must be a whole number in {}..={}",
                        range.start(),
                        range.end()
                    ),
                })
        };
        Ok(Settings {
            page_size: number(RECONCILE_PAGE_SIZE, defaults.page_size, 1..=MAX_PAGE_SIZE)?,
            max_pages: number(RECONCILE_MAX_PAGES, defaults.max_pages, 1..=10_000)?,
            max_confirmations: number(
                RECONCILE_MAX_CONFIRMATIONS,
                defaults.max_confirmations,
                0..=10_000,
            )?,
            grace: Duration::from_secs(u64::from(number(
                RECONCILE_GRACE_SECONDS,
                defaults.grace.as_secs() as u32,
                0..=86_400,
            )?)),
        })
    }
}

/// What a run did; returned by the function and logged as one line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rows Nango listed (each connection once, even if paging showed it twice).
    pub seen: u64,
    /// Connections we had never stored, now stored (and listed for their owner).
    pub stored_new: u64,
    /// Stored connections brought into line (status, error, owner still unknown, tags).
    pub changed: u64,
    /// Listed connections that needed nothing: no write at all.
    pub unchanged: u64,
    /// Listed rows we could not use (no or invalid connection id / integration).
    pub skipped: u64,
    /// Stored connections absent from a complete listing, confirmed gone (no live row in the
    /// exact lookup), marked deleted.
    pub marked_deleted: u64,
    /// Tombstones the listing still shows live, read after the deletion: stored again.
    pub restored: u64,
    /// Absent from the listing, but Nango still has them (the listing shifted while we paged).
    pub confirmed_present: u64,
    /// Absent from the listing, not confirmed this run (over the cap, out of time, or Nango
    /// failed): the next run looks again.
    pub confirmations_deferred: u64,
    /// Writes that failed (DynamoDB); the next run tries again.
    pub write_failures: u64,
    /// Stored `active`/`error` connections when the run started.
    pub stored_live: u64,
    pub pages: u32,
    /// HTTP requests sent to Nango (retries included), for its rate limit.
    pub nango_requests: u64,
    /// Every page was read, down to a short one. Only a complete run marks anything deleted.
    pub complete: bool,
    /// Why the run is not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The table could not be read, so nothing can be compared.
    #[error("the connections table could not be read: {0}")]
    Store(#[from] StoreError),
}

pub struct Reconciler {
    nango: NangoClient,
    store: ConnectionStore,
    settings: Settings,
}

impl Reconciler {
    pub fn new(nango: NangoClient, store: ConnectionStore, settings: Settings) -> Self {
        Reconciler {
            nango,
            store,
            settings,
        }
    }

    /// One run. `deadline`: when the invocation must have answered; no Nango call starts that
    /// could not finish (with its retries) before it.
    pub async fn run(&self, deadline: Instant) -> Result<Summary, ReconcileError> {
        let started = Instant::now();
        let requests_before = self.nango.requests_sent();
        let mut summary = Summary::default();

        let scanned = self.store.scan_all().await?;
        let absence_checked: HashMap<ConnectionId, String> = scanned
            .iter()
            .filter_map(|s| Some((s.connection.id.clone(), s.absence_checked_at.clone()?)))
            .collect();
        let stored: HashMap<ConnectionId, Connection> = scanned
            .into_iter()
            .map(|s| (s.connection.id.clone(), s.connection))
            .collect();
        summary.stored_live = stored.values().filter(|c| is_live(c)).count() as u64;

        let mut listed: HashSet<(ConnectionId, IntegrationId)> = HashSet::new();
        let mut incomplete = None;
        let mut page = 0;
        loop {
            if page >= self.settings.max_pages {
                incomplete = Some(format!(
                    "page budget reached ({} pages of {})",
                    self.settings.max_pages, self.settings.page_size
                ));
                break;
            }
            if !self.time_for_a_call(deadline) {
                incomplete = Some(format!("out of time before page {page}"));
                break;
            }
            // Anything stored after this moment, minus the replica's lag, may be newer than the page.
            let as_of = store::timestamp(OffsetDateTime::now_utc() - self.settings.grace);
            let rows = match self
                .nango
                .list_connections(self.settings.page_size, page)
                .await
            {
                Ok(rows) => rows,
                Err(err) => {
                    incomplete = Some(format!("page {page}: {err}"));
                    break;
                }
            };
            summary.pages += 1;
            let short = rows.len() < self.settings.page_size as usize;
            self.reconcile_page(rows, &as_of, &stored, &mut listed, &mut summary)
                .await;
            if short {
                break;
            }
            page += 1;
        }

        match incomplete {
            None => {
                summary.complete = true;
                self.delete_absent(&stored, &absence_checked, &listed, deadline, &mut summary)
                    .await;
            }
            Some(reason) => {
                tracing::warn!(
                    reason,
                    "incomplete listing: nothing is marked deleted this run"
                );
                summary.incomplete_reason = Some(reason);
            }
        }
        summary.nango_requests = self.nango.requests_sent() - requests_before;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        Ok(summary)
    }

    async fn reconcile_page(
        &self,
        rows: Vec<ListedConnection>,
        as_of: &str,
        stored: &HashMap<ConnectionId, Connection>,
        listed: &mut HashSet<(ConnectionId, IntegrationId)>,
        summary: &mut Summary,
    ) {
        let now = store::now();
        let mut writes = JoinSet::new();
        for row in rows {
            let Some(event) = observed(row, as_of) else {
                summary.skipped += 1;
                continue;
            };
            // Offset paging can show a row twice when connections are created meanwhile.
            if !listed.insert((event.connection_id.clone(), event.integration_id.clone())) {
                continue;
            }
            summary.seen += 1;
            let current = stored.get(&event.connection_id);
            if connection::apply(current, &event, &now).is_none() {
                summary.unchanged += 1;
                continue;
            }
            if writes.len() >= WRITE_CONCURRENCY
                && let Some(done) = writes.join_next().await
            {
                count_write(done, summary);
            }
            let store = self.store.clone();
            let current = current.cloned();
            writes.spawn(async move {
                let before = match &current {
                    None => Before::Unknown,
                    Some(c) if c.status == Status::Deleted => Before::Deleted,
                    Some(_) => Before::Known,
                };
                let recorded = store.record_from(&event, Some(current)).await;
                (event.connection_id, before, recorded)
            });
        }
        while let Some(done) = writes.join_next().await {
            count_write(done, summary);
        }
    }

    async fn delete_absent(
        &self,
        stored: &HashMap<ConnectionId, Connection>,
        absence_checked: &HashMap<ConnectionId, String>,
        listed: &HashSet<(ConnectionId, IntegrationId)>,
        deadline: Instant,
        summary: &mut Summary,
    ) {
        let recent = store::timestamp(OffsetDateTime::now_utc() - self.settings.grace);
        let mut absent: Vec<&Connection> = stored
            .values()
            .filter(|c| is_live(c))
            .filter(|c| !listed.contains(&(c.id.clone(), c.integration_id.clone())))
            .filter(|c| c.updated_at < recent)
            .collect();
        // Never asked first, then asked least recently, then oldest news: a backlog larger than
        // the cap is worked through over runs, and one Nango keeps confirming cannot block it.
        absent.sort_by_cached_key(|c| (absence_checked.get(&c.id).cloned(), c.updated_at.clone()));
        for (index, connection) in absent.iter().enumerate() {
            if index >= self.settings.max_confirmations as usize || !self.time_for_a_call(deadline)
            {
                summary.confirmations_deferred += (absent.len() - index) as u64;
                break;
            }
            match self
                .nango
                .find_connection(&connection.id, &connection.integration_id)
                .await
            {
                Ok(Some(_)) => {
                    summary.confirmed_present += 1;
                    if let Err(err) = self
                        .store
                        .mark_absence_checked(&connection.id, &store::now())
                        .await
                    {
                        tracing::warn!(connection_id = %connection.id, error = %err, "could not note an absence check");
                    }
                }
                Ok(None) => {
                    let gone = AuthEvent::deletion_of(connection);
                    // From the state the scan read: one conditional put, unless something wrote since.
                    let read = Some(Some((*connection).clone()));
                    match self.store.record_from(&gone, read).await {
                        Ok(Recorded::Written(_)) => {
                            tracing::info!(connection_id = %connection.id, integration_id = %connection.integration_id, "deleted in Nango: marked deleted");
                            summary.marked_deleted += 1;
                        }
                        Ok(Recorded::Unchanged) => {}
                        Err(err) => {
                            tracing::error!(connection_id = %connection.id, error = %err, "could not mark a connection deleted");
                            summary.write_failures += 1;
                        }
                    }
                }
                Err(err) => {
                    // Nango is failing: the rest waits for the next run rather than spend the budget.
                    tracing::warn!(connection_id = %connection.id, error = %err, "could not confirm an absence");
                    summary.confirmations_deferred += (absent.len() - index) as u64;
                    break;
                }
            }
        }
    }

    /// Whether a Nango call, with all its retries, would end before the deadline.
    fn time_for_a_call(&self, deadline: Instant) -> bool {
        Instant::now() + self.nango.budget() < deadline
    }
}

fn is_live(connection: &Connection) -> bool {
    matches!(connection.status, Status::Active | Status::Error)
}

/// What was stored of a listed connection before the run wrote it.
enum Before {
    Unknown,
    Known,
    Deleted,
}

fn count_write(
    done: Result<(ConnectionId, Before, Result<Recorded, StoreError>), tokio::task::JoinError>,
    summary: &mut Summary,
) {
    match done {
        Ok((_, Before::Unknown, Ok(Recorded::Written(_)))) => summary.stored_new += 1,
        Ok((_, Before::Known, Ok(Recorded::Written(_)))) => summary.changed += 1,
        Ok((connection_id, Before::Deleted, Ok(Recorded::Written(_)))) => {
            tracing::warn!(%connection_id, "a deleted connection Nango still lists: restored");
            summary.restored += 1;
        }
        // A webhook got there first with the same news.
        Ok((_, _, Ok(Recorded::Unchanged))) => summary.unchanged += 1,
        Ok((connection_id, _, Err(err))) => {
            tracing::error!(%connection_id, error = %err, "could not store a reconciled connection");
            summary.write_failures += 1;
        }
        Err(err) => {
            tracing::error!(error = %err, "a reconciliation write panicked");
            summary.write_failures += 1;
        }
    }
}

/// A listed row as the change it reports, or `None` when it names no usable connection.
fn observed(row: ListedConnection, as_of: &str) -> Option<AuthEvent> {
    let connection_id = ConnectionId::parse(row.connection_id.as_deref()?).ok()?;
    let integration_id = IntegrationId::parse(row.provider_config_key.as_deref()?).ok()?;
    let auth_error = row.has_auth_error();
    let tags = Tags::from_json(row.tags);
    Some(AuthEvent {
        connection_id,
        integration_id,
        provider: label(&row.provider),
        // Nango's listing carries neither; a webhook may still tell them.
        auth_mode: None,
        environment: None,
        owner: Owner::from_tags(&tags),
        tags,
        change: Change::Observed(Observation {
            auth_error,
            created_at: row.created.as_deref().and_then(normalized_time),
            as_of: as_of.to_owned(),
        }),
    })
}

/// Nango's `created` (`2026-11-26T10:00:00.123+00:00`) in the store's fixed-width form, so that it
/// sorts with the other timestamps; `None` if it is not RFC 3339.
fn normalized_time(value: &str) -> Option<String> {
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .map(store::timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(json: serde_json::Value) -> ListedConnection {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_listed_row_becomes_an_observation() {
        let event = observed(
            row(serde_json::json!({
                "id": 1, "connection_id": "c1", "provider_config_key": "github", "provider": "github",
                "errors": [{"type": "sync", "log_id": "l1"}], "end_user": null,
                "tags": {"end_user_id": "u1", "organization_id": "o1", "n": 3}, "metadata": {},
                "created": "2026-11-26T10:00:00.5+00:00"
            })),
            "2026-11-26T09:55:00.000Z",
        )
        .unwrap();
        assert_eq!(event.connection_id.as_str(), "c1");
        assert_eq!(event.owner.end_user_id.as_deref(), Some("u1"));
        assert_eq!(event.owner.organization_id.as_deref(), Some("o1"));
        assert_eq!(event.tags.iter().count(), 2, "non-string tags are skipped");
        assert_eq!(
            event.change,
            Change::Observed(Observation {
                auth_error: false,
                created_at: Some("2026-11-26T10:00:00.500Z".into()),
                as_of: "2026-11-26T09:55:00.000Z".into(),
            }),
            "a sync error is not about credentials"
        );
        let broken = observed(
            row(
                serde_json::json!({"connection_id": "c1", "provider_config_key": "github",
                "errors": [{"type": "auth"}], "created": "yesterday"}),
            ),
            "t",
        )
        .unwrap();
        assert_eq!(
            broken.change,
            Change::Observed(Observation {
                auth_error: true,
                created_at: None,
                as_of: "t".into()
            })
        );
    }

    #[test]
    fn rows_without_a_usable_id_are_skipped() {
        for json in [
            serde_json::json!({"provider_config_key": "github"}),
            serde_json::json!({"connection_id": "", "provider_config_key": "github"}),
            serde_json::json!({"connection_id": "c1"}),
        ] {
            assert!(observed(row(json), "t").is_none());
        }
    }

    #[test]
    fn settings_have_defaults_and_bounds() {
        assert_eq!(Settings::from_source(&[]).unwrap(), Settings::default());
        let settings =
            Settings::from_source(&[(RECONCILE_PAGE_SIZE, "50"), (RECONCILE_GRACE_SECONDS, "0")])
                .unwrap();
        assert_eq!(settings.page_size, 50);
        assert_eq!(settings.grace, Duration::ZERO);
        for (name, value) in [
            (RECONCILE_PAGE_SIZE, "0"),
            (RECONCILE_PAGE_SIZE, "2001"),
            (RECONCILE_MAX_PAGES, "-1"),
            (RECONCILE_MAX_CONFIRMATIONS, "many"),
        ] {
            let err = Settings::from_source(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable(), name);
        }
    }
}
