//! Reconciliation: bring the store into line with Nango's own list of connections, whatever
//! webhooks were lost (Nango keeps no queue: shared/docs/nango-api.md §5), in memory that does not
//! grow with the environment, over as many runs as a pass takes.
//!
//! A *pass* reads Nango's whole listing once and then decides absences; it may span several runs,
//! and its state is a checkpoint in the table ([`ConnectionStore::checkpoint`]), so a run that
//! reaches its page budget or deadline stops where it is and the next run goes on from there.
//! A pass has three stages:
//! 1. **listing**: `GET /connections` a page at a time (always with `limit`, newest first) until a
//!    short page. Each page is matched against the stored items for exactly its ids (one
//!    strongly consistent BatchGetItem per 100), and each row goes through [`connection::apply`] as
//!    a [`Change::Observed`]; only rows where it changes something are written, through
//!    [`ConnectionStore::record_from`] (the webhooks' versioned conditional write). A tombstone the
//!    listing still shows live, read after the deletion and its lag, comes back (`restored`).
//!    What the page listed is kept as 4-byte hashes (salted by the pass) in one small item per
//!    page, which is all the pass remembers of the listing;
//! 2. **sweep**: the table, a 1 MB Scan page at a time (only the attributes that decide), against
//!    those hashes: a stored `active`/`error` connection the listing did not show, and that nothing
//!    wrote since the pass began (less [`Settings::grace`]), is absent. The absences to ask about
//!    first are kept, at most [`Settings::max_confirmations`] of them;
//! 3. **confirmation**: each is looked up with the exact, side-effect-free
//!    `GET /connections?connectionId=&integrationId=` ([`NangoClient::find_connection`]; never
//!    `GET /connections/{id}`, which reads and may refresh credentials); no live row marks it
//!    deleted ([`Change::Deleted`]), whatever the reason — deleted without a webhook, or its
//!    integration removed. Offset paging shifts rows when connections come and go while a pass
//!    pages, so absence from the listing alone proves nothing.
//!
//! Deletions are decided only by a pass whose every page was read: a page that fails (or evidence
//! that went missing) ends the pass, and the next run starts a new one from page 0. A run resuming
//! a pass re-reads the last page the previous run read, so rows that moved up by fewer than a page
//! (deletions above them between runs) are still seen.
//!
//! The confirmation cap is spent fairly: connections never asked about first, then those asked
//! about least recently (`absenceCheckedAt`, noted when Nango still has one), oldest news first
//! among equals. So `n` absent connections are all asked about within `ceil(n / cap)` passes.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{ConfigError, Source, whole_number};
use crate::connection::{self, AuthEvent, Change, Observation, Owner, Status};
use crate::nango::{ConnectionId, IntegrationId, ListedConnection, NangoClient, Tags};
use crate::store::{self, CheckpointError, ConnectionStore, Recorded, StoreError, Swept};
use crate::webhook::payload::label;

pub const RECONCILE_PAGE_SIZE: &str = "RECONCILE_PAGE_SIZE";
pub const RECONCILE_MAX_PAGES: &str = "RECONCILE_MAX_PAGES";
pub const RECONCILE_MAX_CONFIRMATIONS: &str = "RECONCILE_MAX_CONFIRMATIONS";
pub const RECONCILE_GRACE_SECONDS: &str = "RECONCILE_GRACE_SECONDS";

/// Nango accepts `limit` 1..=2000.
const MAX_PAGE_SIZE: u32 = 2000;
/// Writes in flight at once: DynamoDB takes many more, but the point is only to overlap latency.
const WRITE_CONCURRENCY: usize = 16;
/// The most absences one pass keeps to ask about: they travel in its checkpoint (about 150 bytes
/// each, well under DynamoDB's 400 KB item), and each is a request to Nango's rate limit.
pub const MAX_CONFIRMATIONS: u32 = 1_000;

/// A run's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Rows per `GET /connections` page. Large pages spend Nango's rate limit (about 200 requests
    /// a minute per account, shared with every other caller) sparingly.
    pub page_size: u32,
    /// Pages read at most per run: a larger listing is read over several runs of one pass.
    pub max_pages: u32,
    /// Exact lookups at most per pass to confirm absences; the rest wait for the next pass. The
    /// pass keeps the ones it will ask about in its checkpoint, so at most [`MAX_CONFIRMATIONS`].
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
        let number = |name, default, range| whole_number(source, name, default, range);
        Ok(Settings {
            page_size: number(RECONCILE_PAGE_SIZE, defaults.page_size, 1..=MAX_PAGE_SIZE)?,
            max_pages: number(RECONCILE_MAX_PAGES, defaults.max_pages, 1..=10_000)?,
            max_confirmations: number(
                RECONCILE_MAX_CONFIRMATIONS,
                defaults.max_confirmations,
                0..=MAX_CONFIRMATIONS,
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
    /// Rows Nango listed this run (a row that paging showed twice on adjacent pages, once).
    pub seen: u64,
    /// Connections we had never stored, now stored (and listed for their owner).
    pub stored_new: u64,
    /// Stored connections brought into line (status, error, owner still unknown, tags).
    pub changed: u64,
    /// Listed connections that needed nothing: no write at all.
    pub unchanged: u64,
    /// Listed rows we could not use (no or invalid connection id / integration).
    pub skipped: u64,
    /// Stored connections absent from a complete pass's listing, confirmed gone (no live row in
    /// the exact lookup), marked deleted.
    pub marked_deleted: u64,
    /// Tombstones the listing still shows live, read after the deletion: stored again.
    pub restored: u64,
    /// Absent from the listing, but Nango still has them (the listing shifted while we paged).
    pub confirmed_present: u64,
    /// Absent from the listing, not confirmed by this pass (over the cap, out of time, or Nango
    /// failed): the next pass looks again.
    pub confirmations_deferred: u64,
    /// Writes that failed (DynamoDB); the next pass tries again.
    pub write_failures: u64,
    /// Stored `active`/`error` connections, as the last complete sweep counted them (this run's,
    /// when it ended a pass); 0 before any pass has swept the table.
    pub stored_live: u64,
    /// Pages of Nango's listing read this run.
    pub pages: u32,
    /// HTTP requests sent to Nango (retries included), for its rate limit.
    pub nango_requests: u64,
    /// Time spent waiting for the shared Nango budget, which background calls take only above the
    /// users' reserve (`rate_limit`); a run that could not wait long enough stops and says so in
    /// `incomplete_reason`.
    pub nango_budget_wait_ms: u64,
    /// This run ended a pass: every page read, down to a short one, across the pass's runs, the
    /// table swept, and absences confirmed. Only a complete pass marks anything deleted.
    pub complete: bool,
    /// A page failed: the pass was given up, nothing was marked deleted, the next run starts over.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub abandoned: bool,
    /// Why the run did not end a pass: it goes on at the next run, or starts over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub duration_ms: u64,
    /// When the pass this run worked on began (it names the pass).
    pub pass_started_at: String,
    /// Which run of its pass this was (1: the pass began with it).
    pub pass_runs: u32,
    /// Pages of Nango's listing the pass has read so far, this run's included.
    pub pass_pages: u32,
    /// Stored items this run's sweep read.
    pub swept: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The table could not be read or written, so nothing can be compared; the pass stays where
    /// its checkpoint says.
    #[error("the connections table could not be read: {0}")]
    Store(#[from] StoreError),
}

/// A pass's state, kept in the checkpoint between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pass {
    /// When the pass began (the store's timestamp form). It names the pass, salts its hashes, and
    /// is the line after which a connection may be missing from its listing legitimately.
    started_at: String,
    runs: u32,
    pages: u32,
    /// What the last complete sweep counted, carried from pass to pass for the summary.
    stored_live: u64,
    stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "stage",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum Stage {
    /// Reading Nango's listing; `chunks` pages of listed ids kept so far.
    Listing { next_page: u32, chunks: u32 },
    /// Reading the table after `after` (from its start when `None`).
    Sweeping {
        chunks: u32,
        after: Option<String>,
        live: u64,
        absent: u64,
        candidates: Vec<Candidate>,
    },
    /// Asking Nango about the absences kept.
    Confirming {
        live: u64,
        absent: u64,
        candidates: Vec<Candidate>,
    },
    /// No pass in progress: the next run begins one.
    Idle,
}

/// An absence to ask Nango about, in the order asked: never asked first, then asked least
/// recently, then oldest news.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Candidate {
    checked: Option<String>,
    updated: String,
    id: ConnectionId,
    integration: IntegrationId,
}

impl Pass {
    fn begin(stored_live: u64) -> Self {
        Pass {
            started_at: store::now(),
            runs: 0,
            pages: 0,
            stored_live,
            stage: Stage::Listing {
                next_page: 0,
                chunks: 0,
            },
        }
    }
}

/// Why a run stops working on its pass.
enum Stop {
    /// The pass ended in this run.
    Complete,
    /// Budget or time: the pass goes on at the next run from its checkpoint.
    Paused(String),
    /// A page failed (or the pass's evidence is gone): the next run starts a new pass.
    Abandoned(String),
    /// Another run saved the checkpoint since this one read it: it carries the pass on.
    Overtaken,
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

    /// One run: the current pass (or a new one) carried as far as the page budget and `deadline`
    /// allow. `deadline`: when the invocation must have answered; no Nango call starts that could
    /// not finish (with its retries) before it.
    pub async fn run(&self, deadline: Instant) -> Result<Summary, ReconcileError> {
        let started = Instant::now();
        let requests_before = self.nango.requests_sent();
        let waited_before = self.nango.budget_waited();
        let mut summary = Summary::default();

        let checkpoint = self.store.checkpoint().await?;
        let version = checkpoint.as_ref().map(|c| c.version);
        let stored: Option<Pass> = checkpoint.and_then(|c| {
            serde_json::from_str(&c.state)
                .inspect_err(|err| tracing::warn!(error = %err, "an unreadable checkpoint: a new pass begins"))
                .ok()
        });
        let (mut pass, resumed) = match stored {
            Some(pass) if pass.stage != Stage::Idle => (pass, true),
            Some(pass) => (Pass::begin(pass.stored_live), false),
            None => (Pass::begin(0), false),
        };
        pass.runs += 1;
        let mut saver = Saver {
            store: &self.store,
            version,
        };

        let stop = self
            .advance(&mut pass, resumed, &mut saver, deadline, &mut summary)
            .await?;
        match stop {
            Stop::Complete => summary.complete = true,
            Stop::Paused(reason) => {
                tracing::info!(reason, "the pass goes on at the next run");
                summary.incomplete_reason = Some(reason);
            }
            Stop::Abandoned(reason) => {
                tracing::warn!(
                    reason,
                    "the pass is abandoned: nothing is marked deleted, and the next run starts over"
                );
                let fresh = Pass {
                    stage: Stage::Idle,
                    ..pass.clone()
                };
                if let Err(err) = saver.save(&fresh).await {
                    tracing::warn!(error = %err, "could not note the abandoned pass");
                }
                summary.abandoned = true;
                summary.incomplete_reason =
                    Some(format!("{reason}; the next run starts a new pass"));
            }
            Stop::Overtaken => {
                summary.incomplete_reason = Some("another run is carrying this pass".to_owned());
            }
        }
        summary.stored_live = pass.stored_live;
        summary.pass_started_at = pass.started_at;
        summary.pass_runs = pass.runs;
        summary.pass_pages = pass.pages;
        summary.nango_requests = self.nango.requests_sent() - requests_before;
        summary.nango_budget_wait_ms =
            (self.nango.budget_waited() - waited_before).as_millis() as u64;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        Ok(summary)
    }

    /// Works through the pass's stages from where it is, saving the checkpoint after each step.
    async fn advance(
        &self,
        pass: &mut Pass,
        resumed: bool,
        saver: &mut Saver<'_>,
        deadline: Instant,
        summary: &mut Summary,
    ) -> Result<Stop, ReconcileError> {
        loop {
            let stop = match pass.stage.clone() {
                Stage::Listing { next_page, chunks } => {
                    // Rows move up when connections above them are deleted between runs: the
                    // page read last is read again, which catches a shift of up to a page (when the
                    // budget leaves room to move on as well).
                    let first = if resumed && pass.runs > 1 && self.settings.max_pages > 1 {
                        next_page.saturating_sub(1)
                    } else {
                        next_page
                    };
                    self.list(pass, first, chunks, saver, deadline, summary)
                        .await?
                }
                Stage::Sweeping {
                    chunks,
                    after,
                    live,
                    absent,
                    candidates,
                } => {
                    let progress = Sweep {
                        after,
                        live,
                        absent,
                        candidates,
                    };
                    self.sweep(pass, chunks, progress, saver, deadline, summary)
                        .await?
                }
                Stage::Confirming {
                    live,
                    absent,
                    candidates,
                } => {
                    self.confirm(pass, live, absent, candidates, saver, deadline, summary)
                        .await?
                }
                Stage::Idle => return Ok(Stop::Complete),
            };
            if let Some(stop) = stop {
                return Ok(stop);
            }
        }
    }

    /// Reads pages from `page` on, until a short one (then the pass moves on to its sweep), the
    /// page budget, the deadline or a failure.
    async fn list(
        &self,
        pass: &mut Pass,
        mut page: u32,
        mut chunks: u32,
        saver: &mut Saver<'_>,
        deadline: Instant,
        summary: &mut Summary,
    ) -> Result<Option<Stop>, ReconcileError> {
        let mut previous_page: HashSet<(ConnectionId, IntegrationId)> = HashSet::new();
        loop {
            if summary.pages >= self.settings.max_pages {
                return Ok(Some(Stop::Paused(format!(
                    "page budget reached ({} pages of {}); the pass goes on from page {page}",
                    self.settings.max_pages, self.settings.page_size
                ))));
            }
            if !self.time_for_a_call(deadline) {
                return Ok(Some(Stop::Paused(format!(
                    "out of time before page {page}"
                ))));
            }
            // Anything stored after this moment, minus the replica's lag, may be newer than the page.
            let as_of = store::timestamp(OffsetDateTime::now_utc() - self.settings.grace);
            let rows = match self
                .nango
                .list_connections(self.settings.page_size, page)
                .await
            {
                Ok(rows) => rows,
                Err(err) => return Ok(Some(Stop::Abandoned(format!("page {page}: {err}")))),
            };
            summary.pages += 1;
            pass.pages += 1;
            let short = rows.len() < self.settings.page_size as usize;
            let listed = self
                .reconcile_page(rows, &as_of, &pass.started_at, &mut previous_page, summary)
                .await?;
            self.store
                .save_listed(&pass.started_at, chunks, &listed)
                .await?;
            chunks += 1;
            page += 1;
            pass.stage = if short {
                Stage::Sweeping {
                    chunks,
                    after: None,
                    live: 0,
                    absent: 0,
                    candidates: Vec::new(),
                }
            } else {
                Stage::Listing {
                    next_page: page,
                    chunks,
                }
            };
            if let Err(stop) = saver.save_or_stop(pass).await? {
                return Ok(Some(stop));
            }
            if short {
                return Ok(None);
            }
        }
    }

    /// One page: matched against the stored items for exactly its ids, written where the
    /// lifecycle says so. Returns the page's listed ids, hashed for the pass.
    async fn reconcile_page(
        &self,
        rows: Vec<ListedConnection>,
        as_of: &str,
        salt: &str,
        previous_page: &mut HashSet<(ConnectionId, IntegrationId)>,
        summary: &mut Summary,
    ) -> Result<Vec<u8>, StoreError> {
        let mut this_page = HashSet::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(event) = observed(row, as_of) else {
                summary.skipped += 1;
                continue;
            };
            let key = (event.connection_id.clone(), event.integration_id.clone());
            // Offset paging shows a row twice, on adjacent pages, when connections are created
            // meanwhile.
            if previous_page.contains(&key) || !this_page.insert(key) {
                continue;
            }
            events.push(event);
        }
        *previous_page = this_page;
        let mut listed = Vec::with_capacity(events.len() * 4);
        for event in &events {
            listed.extend_from_slice(
                &listed_hash(salt, &event.connection_id, &event.integration_id).to_be_bytes(),
            );
        }
        let ids: Vec<ConnectionId> = events.iter().map(|e| e.connection_id.clone()).collect();
        let stored = self.store.get_many(&ids).await?;

        let now = store::now();
        let mut writes = JoinSet::new();
        for event in events {
            summary.seen += 1;
            let current = stored.get(&event.connection_id).map(|s| &s.connection);
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
        Ok(listed)
    }

    /// Reads the table a page at a time against what the pass listed, keeping the absences to
    /// ask about first; then the pass moves on to confirming them.
    async fn sweep(
        &self,
        pass: &mut Pass,
        chunks: u32,
        mut progress: Sweep,
        saver: &mut Saver<'_>,
        deadline: Instant,
        summary: &mut Summary,
    ) -> Result<Option<Stop>, ReconcileError> {
        let Some(listed) = self.store.listed(&pass.started_at, chunks).await? else {
            return Ok(Some(Stop::Abandoned(
                "the ids the pass listed are no longer stored".to_owned(),
            )));
        };
        // 4 bytes per listed connection: the only part of a run that grows with the environment.
        let mut listed: Vec<u32> = listed
            .iter()
            .flat_map(|chunk| chunk.chunks_exact(4))
            .map(|hash| u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]))
            .collect();
        listed.sort_unstable();
        let cutoff = store::timestamp(
            OffsetDateTime::parse(&pass.started_at, &Rfc3339)
                .unwrap_or_else(|_| OffsetDateTime::now_utc())
                - self.settings.grace,
        );
        loop {
            if Instant::now() >= deadline {
                return Ok(Some(Stop::Paused(
                    "out of time while sweeping the table".to_owned(),
                )));
            }
            let page = self.store.sweep_page(progress.after.as_deref()).await?;
            summary.swept += page.connections.len() as u64;
            for swept in page.connections {
                self.consider(&swept, &listed, &pass.started_at, &cutoff, &mut progress);
            }
            progress.after = page.next;
            let Sweep {
                after,
                live,
                absent,
                candidates,
            } = progress.clone();
            let done = after.is_none();
            pass.stage = if done {
                Stage::Confirming {
                    live,
                    absent,
                    candidates,
                }
            } else {
                Stage::Sweeping {
                    chunks,
                    after,
                    live,
                    absent,
                    candidates,
                }
            };
            if let Err(stop) = saver.save_or_stop(pass).await? {
                return Ok(Some(stop));
            }
            if done {
                return Ok(None);
            }
        }
    }

    fn consider(
        &self,
        swept: &Swept,
        listed: &[u32],
        salt: &str,
        cutoff: &str,
        progress: &mut Sweep,
    ) {
        if !matches!(swept.status, Status::Active | Status::Error) {
            return;
        }
        progress.live += 1;
        // Written since the pass began (less the replica's lag): the listing may predate it.
        if swept.updated_at.as_str() >= cutoff {
            return;
        }
        let hash = listed_hash(salt, &swept.id, &swept.integration_id);
        // A collision of 32-bit hashes reads a rare absence as listed: it waits for the next
        // pass, whose salt differs. It never makes a listed connection look absent.
        if listed.binary_search(&hash).is_ok() {
            return;
        }
        progress.absent += 1;
        let cap = self.settings.max_confirmations as usize;
        if cap == 0 {
            return;
        }
        let candidate = Candidate {
            checked: swept.absence_checked_at.clone(),
            updated: swept.updated_at.clone(),
            id: swept.id.clone(),
            integration: swept.integration_id.clone(),
        };
        let candidates = &mut progress.candidates;
        if candidates.len() == cap && candidates.last().is_some_and(|last| &candidate >= last) {
            return;
        }
        let at = candidates.partition_point(|c| c < &candidate);
        candidates.insert(at, candidate);
        candidates.truncate(cap);
    }

    /// Asks Nango about the absences the sweep kept, first things first, as far as the deadline
    /// allows; the pass then ends (what was not asked waits for the next pass).
    #[allow(clippy::too_many_arguments)]
    async fn confirm(
        &self,
        pass: &mut Pass,
        live: u64,
        absent: u64,
        candidates: Vec<Candidate>,
        saver: &mut Saver<'_>,
        deadline: Instant,
        summary: &mut Summary,
    ) -> Result<Option<Stop>, ReconcileError> {
        if !candidates.is_empty() && !self.time_for_a_call(deadline) {
            return Ok(Some(Stop::Paused(format!(
                "out of time before confirming {} absences",
                candidates.len()
            ))));
        }
        let mut asked = 0u64;
        for candidate in &candidates {
            if !self.time_for_a_call(deadline) {
                break;
            }
            match self
                .nango
                .find_connection(&candidate.id, &candidate.integration)
                .await
            {
                Ok(Some(_)) => {
                    asked += 1;
                    summary.confirmed_present += 1;
                    if let Err(err) = self
                        .store
                        .mark_absence_checked(&candidate.id, &store::now())
                        .await
                    {
                        tracing::warn!(connection_id = %candidate.id, error = %err, "could not note an absence check");
                    }
                }
                Ok(None) => {
                    asked += 1;
                    self.mark_deleted(candidate, summary).await;
                }
                Err(err) => {
                    // Nango is failing: the rest waits for the next pass rather than spend the budget.
                    tracing::warn!(connection_id = %candidate.id, error = %err, "could not confirm an absence");
                    break;
                }
            }
        }
        summary.confirmations_deferred += absent.saturating_sub(asked);
        pass.stored_live = live;
        pass.stage = Stage::Idle;
        if let Err(stop) = saver.save_or_stop(pass).await? {
            return Ok(Some(stop));
        }
        Ok(Some(Stop::Complete))
    }

    /// Nango has no live row for it: marked deleted through the lifecycle, from the item as it is
    /// now, unless something wrote it since the sweep read it (news: the next pass decides).
    async fn mark_deleted(&self, candidate: &Candidate, summary: &mut Summary) {
        let current = match self.store.get(&candidate.id).await {
            Ok(current) => current,
            Err(err) => {
                tracing::error!(connection_id = %candidate.id, error = %err, "could not read a connection to mark it deleted");
                summary.write_failures += 1;
                return;
            }
        };
        let Some(current) = current.filter(|c| c.updated_at == candidate.updated && is_live(c))
        else {
            return;
        };
        let gone = AuthEvent::deletion_of(&current);
        match self.store.record_from(&gone, Some(Some(current))).await {
            Ok(Recorded::Written(_)) => {
                tracing::info!(connection_id = %candidate.id, integration_id = %candidate.integration, "deleted in Nango: marked deleted");
                summary.marked_deleted += 1;
            }
            Ok(Recorded::Unchanged) => {}
            Err(err) => {
                tracing::error!(connection_id = %candidate.id, error = %err, "could not mark a connection deleted");
                summary.write_failures += 1;
            }
        }
    }

    /// Whether a Nango call, with all its retries, would end before the deadline.
    fn time_for_a_call(&self, deadline: Instant) -> bool {
        Instant::now() + self.nango.budget() < deadline
    }
}

/// Where a sweep is, and what it found so far.
#[derive(Clone)]
struct Sweep {
    after: Option<String>,
    live: u64,
    absent: u64,
    candidates: Vec<Candidate>,
}

/// Saves the pass over the checkpoint version this run last read or wrote.
struct Saver<'a> {
    store: &'a ConnectionStore,
    version: Option<u64>,
}

impl Saver<'_> {
    async fn save(&mut self, pass: &Pass) -> Result<(), CheckpointError> {
        let state = serde_json::to_string(pass).expect("a pass serializes");
        self.version = Some(self.store.save_checkpoint(&state, self.version).await?);
        Ok(())
    }

    /// `Ok(Err(Stop::Overtaken))` when another run saved the pass since: this one stops.
    async fn save_or_stop(&mut self, pass: &Pass) -> Result<Result<(), Stop>, StoreError> {
        match self.save(pass).await {
            Ok(()) => Ok(Ok(())),
            Err(CheckpointError::Overtaken) => Ok(Err(Stop::Overtaken)),
            Err(CheckpointError::Store(err)) => Err(err),
        }
    }
}

/// A listed connection as the pass remembers it: 4 bytes of SHA-256 over the pass's salt, the
/// id and the integration. Stable across processes and releases (unlike std's hasher), and
/// salted so that a rare collision never hides the same absence in two passes.
fn listed_hash(salt: &str, id: &ConnectionId, integration: &IntegrationId) -> u32 {
    let mut hash = Sha256::new();
    for part in [salt, id.as_str(), integration.as_str()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn is_live(connection: &connection::Connection) -> bool {
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
