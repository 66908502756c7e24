//! The scheduled reconciliation: no HTTP, any event in, the run's [`Summary`] out (and logged as
//! one line). A run that cannot read the table fails the invocation, so it shows in the function's
//! error metrics; anything else (Nango failing, a page budget reached) is a summary with
//! `complete: false`.

use crate::transport::Tls;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::bootstrap::{Environment, InitError};
use crate::config::{NangoConfig, NangoTimeouts, StoreConfig};
use crate::metrics::Metric;
use crate::nango::NangoClient;
use crate::rate_limit::{Limits, Priority};
use crate::reconcile::{ReconcileError, Reconciler, Settings, Summary};
use crate::store::ConnectionStore;

/// Bounds on each call to Nango from a run: a page of 1,000 rows takes longer than a session, and
/// a 429 from Nango's per-minute limit may ask for up to a minute's wait, which the budget allows
/// once. The function's timeout (template.yaml) leaves room for several such calls.
pub const NANGO_TIMEOUTS: NangoTimeouts = NangoTimeouts {
    connect: Duration::from_secs(2),
    attempt: Duration::from_secs(20),
    budget: Duration::from_secs(75),
    max_attempts: 4,
    first_backoff: Duration::from_millis(500),
};

/// Kept free at the end of an invocation: the writes of the last page, the summary.
const FINISH_MARGIN: Duration = Duration::from_secs(20);

pub struct ReconcileConnections {
    reconciler: Reconciler,
}

impl ReconcileConnections {
    pub fn new(reconciler: Reconciler) -> Self {
        ReconcileConnections { reconciler }
    }

    pub fn from_env(
        env: &Environment,
        tls: &Tls,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Result<Self, InitError> {
        let mut nango = NangoConfig::from_source(env)?;
        nango.timeouts = NANGO_TIMEOUTS;
        let limits = Limits::from_source(env, &dynamodb)?;
        let nango = NangoClient::new(&nango, tls)?;
        Ok(ReconcileConnections::new(Reconciler::new(
            Limits::budget(limits.as_ref(), nango, Priority::Background),
            ConnectionStore::from_config(dynamodb, StoreConfig::from_source(env)?),
            Settings::from_source(env)?,
        )))
    }

    /// One run, to finish before `deadline_ms` (the invocation's deadline, in ms since the epoch).
    pub async fn handle(&self, deadline_ms: u64) -> Result<Summary, ReconcileError> {
        let result = self.reconciler.run(run_deadline(deadline_ms)).await;
        match &result {
            Ok(summary) => {
                // The figures a query filters on as fields of their own; the whole summary too.
                tracing::info!(
                    complete = summary.complete,
                    abandoned = summary.abandoned,
                    pass_runs = summary.pass_runs,
                    incomplete_reason = summary.incomplete_reason.as_deref().unwrap_or(""),
                    seen = summary.seen,
                    stored_new = summary.stored_new,
                    changed = summary.changed,
                    marked_deleted = summary.marked_deleted,
                    restored = summary.restored,
                    nango_requests = summary.nango_requests,
                    duration_ms = summary.duration_ms,
                    summary = %serde_json::to_string(summary).unwrap_or_default(),
                    "reconciliation run"
                );
                count(summary);
            }
            Err(err) => {
                tracing::error!(error = %err, "reconciliation run failed");
                Metric::ReconcileRuns.add_for(&["failed"], 1);
            }
        }
        result
    }
}

/// A run's metrics, from its summary.
fn count(summary: &Summary) {
    let result = if summary.complete {
        "complete"
    } else if summary.abandoned {
        "abandoned"
    } else {
        "continued"
    };
    Metric::ReconcileRuns.add_for(&[result], 1);
    Metric::ReconcileRowsSeen.add(summary.seen);
    Metric::ReconcileStoredNew.add(summary.stored_new);
    Metric::ReconcileChanged.add(summary.changed);
    Metric::ReconcileDeleted.add(summary.marked_deleted);
    Metric::ReconcileRestored.add(summary.restored);
    Metric::ReconcileDrift
        .add(summary.stored_new + summary.changed + summary.marked_deleted + summary.restored);
    Metric::ReconcileConfirmations.add(summary.confirmed_present + summary.marked_deleted);
    Metric::ReconcileConfirmationsDeferred.add(summary.confirmations_deferred);
    Metric::ReconcileWriteFailures.add(summary.write_failures);
    Metric::ReconcileNangoRequests.add(summary.nango_requests);
    Metric::ReconcileDuration.observe(&[], Duration::from_millis(summary.duration_ms));
}

/// The invocation's deadline, less the finishing margin, as an [`Instant`]. A deadline in the
/// past or missing (0) leaves no time for calls to Nango: the run reads nothing and says so.
fn run_deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(FINISH_MARGIN)
}
