//! Every metric the functions emit, named in one place ([`Metric`]), and how they leave the
//! process: CloudWatch's Embedded Metric Format (EMF), one JSON line per dimension set on stdout,
//! written after each invocation. CloudWatch Logs turns those lines into metrics, so the request
//! path never calls `PutMetricData` and the functions need no CloudWatch permission.
//!
//! Dimensions are few and bounded: `Function` (the function's binary name, e.g.
//! `webhook-receiver`) on every metric, plus at most two of a closed set of values (an outcome,
//! an operation, an error code). Values are `&'static str`, so nothing a caller sends (a user id,
//! an email, a connection id) can become a dimension.
//!
//! `template.yaml`'s alarms and dashboard, the runbook (docs/operating.md) and `infra/metrics.json`
//! are checked against [`Metric::ALL`] by tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use ::metrics::{Label, Unit};
use metrics_cloudwatch_embedded::{Builder, Collector};
use serde::Serialize;

use crate::handlers::webhook_receiver::Outcome;
use crate::http;
use crate::nango::{self, Operation};
use crate::rate_limit::{Priority, Scope};
use crate::webhook;

/// The CloudWatch namespace comes from this variable (the template sets it from the
/// `MetricsNamespace` parameter, by default the stack name).
pub const NAMESPACE_VARIABLE: &str = "METRICS_NAMESPACE";
/// The namespace when the variable is unset: local runs and tests.
pub const DEFAULT_NAMESPACE: &str = "NangoConnect";
/// The dimension every metric carries.
pub const FUNCTION: &str = "Function";

/// The functions, by the name that is their `Function` dimension.
pub mod function {
    pub const CREATE_SESSION: &str = "create-session";
    pub const RECONNECT_SESSION: &str = "reconnect-session";
    pub const LIST_CONNECTIONS: &str = "list-connections";
    pub const DELETE_CONNECTION: &str = "delete-connection";
    pub const WEBHOOK_RECEIVER: &str = "webhook-receiver";
    pub const PUBLISH_EVENTS: &str = "publish-events";
    pub const RECONCILE_CONNECTIONS: &str = "reconcile-connections";
}

use function::*;

/// The functions that call Nango's API.
const CALLING_NANGO: &[&str] = &[
    CREATE_SESSION,
    RECONNECT_SESSION,
    DELETE_CONNECTION,
    WEBHOOK_RECEIVER,
    RECONCILE_CONNECTIONS,
];
/// The routes that call Nango for a caller, each limited per caller.
const LIMITED: &[&str] = &[CREATE_SESSION, RECONNECT_SESSION, DELETE_CONNECTION];
const API: &[&str] = &[
    CREATE_SESSION,
    RECONNECT_SESSION,
    LIST_CONNECTIONS,
    DELETE_CONNECTION,
];

/// Declares the metrics: each variant's name is the metric's, and [`Metric::ALL`] lists them all.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $metric:ident,)*) => {
        /// Every metric. Its name is the variant's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum Metric {
            $($(#[$doc])* $metric,)*
        }

        impl Metric {
            pub const ALL: &[Metric] = &[$(Metric::$metric,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Metric::$metric => stringify!($metric),)*
                }
            }
        }
    };
}

catalogue! {
/// Webhooks received, by what became of them (`Outcome`: the receiver's `result`, or
/// `signature_rejected`, `signing_keys_stale`, `refused`, `failed` for its error answers).
Webhooks,
/// Signed, readable webhooks by Nango's `type` (`auth`, `sync`, `forward`, `async_action`,
/// anything else as `other`).
WebhookTypes,
/// Non-auth webhooks too large for an event, published with their top-level fields only.
WebhooksTruncated,
/// HTTP requests to Nango's API, retries included, by `Operation` and `Answer` (`2xx`, `4xx`,
/// `429`, `5xx`, `timeout`, `network`).
NangoRequests,
/// How long each request to Nango took, by `Operation`.
NangoLatency,
/// Requests Nango answered 429 or 5xx, or did not answer: the alarm's one series per function.
NangoUnavailable,
/// `POST /sessions` answered 201.
SessionsCreated,
/// `POST /sessions/reconnect` answered 201.
ReconnectSessionsCreated,
/// `DELETE /connections/{id}` answered 204.
ConnectionsDeleted,
/// `GET /connections` pages served.
ConnectionPagesListed,
/// API error answers, by their stable `Code`.
ApiErrors,
/// Requests refused `429 rate_limited`, by whose share was used up (`Scope`: `user`,
/// `organization`).
RateLimited,
/// Rate-limit or Nango-budget buckets that could not be read: the request was let through.
RateLimitErrors,
/// Calls to Nango that waited for the shared budget, by `Priority` (`user`, `background`).
NangoBudgetWaits,
/// Calls to Nango given up because the shared budget had nothing left in time, by `Priority`.
NangoBudgetExhausted,
/// Reconciliation runs by `Result`: `complete` (ended a pass), `continued` (a pass goes on at
/// the next run), `abandoned` (a page failed: the pass starts over) or `failed` (the table
/// could not be used).
ReconcileRuns,
/// Rows Nango listed.
ReconcileRowsSeen,
/// Connections no webhook told us about, now stored.
ReconcileStoredNew,
/// Stored connections brought into line with Nango.
ReconcileChanged,
/// Connections confirmed gone and marked deleted.
ReconcileDeleted,
/// Tombstones Nango still lists live, stored again.
ReconcileRestored,
/// Everything a run had to correct (new + changed + deleted + restored): each one a webhook
/// that was lost or wrong.
ReconcileDrift,
/// Absences confirmed with Nango's exact lookup this run.
ReconcileConfirmations,
/// Absences left for the next run (over the cap, out of time, or Nango failed).
ReconcileConfirmationsDeferred,
/// Writes that failed; the next run tries again.
ReconcileWriteFailures,
/// HTTP requests a run sent to Nango, retries included.
ReconcileNangoRequests,
/// How long a run took.
ReconcileDuration,
/// Lifecycle events put on the bus.
EventsPublished,
/// Lifecycle events the bus did not take: their records are retried, then go to the
/// dead-letter queue.
EventsFailed,
/// Stream records that cannot be read: retried, then sent to the dead-letter queue.
StreamRecordsUnreadable,}

/// What the catalogue says of a metric: what tests, the template and the docs are held to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub name: &'static str,
    pub unit: &'static str,
    /// Dimensions after `Function`, in the order they are given.
    pub dimensions: Vec<Dimension>,
    /// The functions that emit it: the values its `Function` dimension takes.
    pub functions: &'static [&'static str],
}

/// A dimension and every value the code gives it.
#[derive(Debug, Serialize)]
pub struct Dimension {
    pub name: &'static str,
    pub values: Vec<&'static str>,
}

/// The `Outcome`s of webhooks the receiver answers with an error.
pub const WEBHOOK_ERROR_OUTCOMES: &[&str] = &[
    "signature_rejected",
    "signing_keys_stale",
    "refused",
    "failed",
];
/// The `Result`s of a reconciliation run.
pub const RECONCILE_RESULTS: &[&str] = &["complete", "continued", "abandoned", "failed"];

impl Metric {
    pub fn definition(self) -> Definition {
        use Metric::*;
        let dimension = |name, values: &[&'static str]| Dimension {
            name,
            values: values.to_vec(),
        };
        let operations: Vec<_> = Operation::ALL.iter().map(|op| op.as_str()).collect();
        let (dimensions, functions): (Vec<Dimension>, &[&str]) = match self {
            Webhooks => {
                let outcomes = Outcome::ALL.iter().map(|outcome| outcome.as_str());
                let values: Vec<_> = outcomes
                    .chain(WEBHOOK_ERROR_OUTCOMES.iter().copied())
                    .collect();
                (vec![dimension("Outcome", &values)], &[WEBHOOK_RECEIVER])
            }
            WebhookTypes => (
                vec![dimension("Type", webhook::payload::KINDS)],
                &[WEBHOOK_RECEIVER],
            ),
            NangoRequests => (
                vec![
                    dimension("Operation", &operations),
                    dimension("Answer", nango::ANSWERS),
                ],
                CALLING_NANGO,
            ),
            NangoLatency => (vec![dimension("Operation", &operations)], CALLING_NANGO),
            ApiErrors => (vec![dimension("Code", http::API_ERROR_CODES)], API),
            RateLimited => {
                let scopes: Vec<_> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
                (vec![dimension("Scope", &scopes)], LIMITED)
            }
            RateLimitErrors => (vec![], CALLING_NANGO),
            NangoBudgetWaits | NangoBudgetExhausted => {
                let priorities: Vec<_> = Priority::ALL.iter().map(|p| p.as_str()).collect();
                (vec![dimension("Priority", &priorities)], CALLING_NANGO)
            }
            ReconcileRuns => (
                vec![dimension("Result", RECONCILE_RESULTS)],
                &[RECONCILE_CONNECTIONS],
            ),
            WebhooksTruncated => (vec![], &[WEBHOOK_RECEIVER]),
            NangoUnavailable => (vec![], CALLING_NANGO),
            SessionsCreated => (vec![], &[CREATE_SESSION]),
            ReconnectSessionsCreated => (vec![], &[RECONNECT_SESSION]),
            ConnectionsDeleted => (vec![], &[DELETE_CONNECTION]),
            ConnectionPagesListed => (vec![], &[LIST_CONNECTIONS]),
            ReconcileRowsSeen
            | ReconcileStoredNew
            | ReconcileChanged
            | ReconcileDeleted
            | ReconcileRestored
            | ReconcileDrift
            | ReconcileConfirmations
            | ReconcileConfirmationsDeferred
            | ReconcileWriteFailures
            | ReconcileNangoRequests
            | ReconcileDuration => (vec![], &[RECONCILE_CONNECTIONS]),
            EventsPublished | EventsFailed | StreamRecordsUnreadable => (vec![], &[PUBLISH_EVENTS]),
        };
        let unit = match self {
            NangoLatency | ReconcileDuration => Unit::Milliseconds,
            _ => Unit::Count,
        };
        Definition {
            name: self.name(),
            unit: unit_name(unit),
            dimensions,
            functions,
        }
    }

    /// Adds `n` to a metric without dimensions of its own. A zero is not recorded: a count with
    /// no datapoint reads as zero in `Sum`, and each datapoint costs a line.
    pub fn add(self, n: u64) {
        self.add_for(&[], n);
    }

    /// Adds `n` to the series named by `values`, one for each of the metric's own dimensions, in
    /// order.
    pub fn add_for(self, values: &[&'static str], n: u64) {
        if n > 0 {
            ::metrics::counter!(self.name(), self.labels(values)).increment(n);
        }
    }

    /// Records one value (a duration) in the series named by `values`.
    pub fn observe(self, values: &[&'static str], value: Duration) {
        ::metrics::histogram!(self.name(), self.labels(values)).record(value.as_secs_f64() * 1e3);
        // The recorder holds at most 100 values per series between flushes (EMF's limit for
        // one line); a long run (reconciliation) writes its lines before it gets there.
        if PENDING_VALUES.fetch_add(1, Ordering::Relaxed) + 1 >= FLUSH_AT_VALUES {
            flush();
        }
    }

    /// `Function`, then the metric's own dimensions: the order of the EMF dimension set.
    fn labels(self, values: &[&'static str]) -> Vec<Label> {
        let function = *FUNCTION_NAME.read().unwrap_or_else(PoisonError::into_inner);
        let mut labels = Vec::with_capacity(1 + values.len());
        labels.push(Label::from_static_parts(FUNCTION, function));
        labels.extend(
            self.dimension_names()
                .iter()
                .zip(values)
                .map(|(name, value)| Label::from_static_parts(name, value)),
        );
        debug_assert_eq!(labels.len(), 1 + values.len(), "{self:?}'s dimensions");
        labels
    }

    /// The metric's own dimensions, cheaply: what every recording needs.
    fn dimension_names(self) -> &'static [&'static str] {
        use Metric::*;
        match self {
            Webhooks => &["Outcome"],
            WebhookTypes => &["Type"],
            NangoRequests => &["Operation", "Answer"],
            NangoLatency => &["Operation"],
            ApiErrors => &["Code"],
            RateLimited => &["Scope"],
            NangoBudgetWaits | NangoBudgetExhausted => &["Priority"],
            ReconcileRuns => &["Result"],
            _ => &[],
        }
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Milliseconds => "Milliseconds",
        _ => "Count",
    }
}

/// The whole catalogue, as `infra/metrics.json` holds it for the template's tests.
pub fn catalogue() -> Vec<Definition> {
    Metric::ALL
        .iter()
        .map(|metric| metric.definition())
        .collect()
}

const FLUSH_AT_VALUES: usize = 90;
static PENDING_VALUES: AtomicUsize = AtomicUsize::new(0);
/// The recorder is the process's (the `metrics` facade has one global recorder), as one Lambda
/// sandbox runs one function.
static PROCESS: OnceLock<&'static Collector> = OnceLock::new();
/// The `Function` dimension's value. A label rather than the collector's fixed dimension, so that
/// a test process can play several functions in turn ([`Capture`]).
static FUNCTION_NAME: RwLock<&'static str> = RwLock::new("unknown");

/// The process's recorder, once per cold start: metrics of `function` in the namespace from
/// `METRICS_NAMESPACE`.
pub fn init(function: &'static str) {
    let namespace = std::env::var(NAMESPACE_VARIABLE)
        .ok()
        .map(|namespace| namespace.trim().to_owned())
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    *FUNCTION_NAME
        .write()
        .unwrap_or_else(PoisonError::into_inner) = function;
    PROCESS.get_or_init(|| {
        let collector = Builder::new()
            .cloudwatch_namespace(namespace)
            .init()
            .unwrap_or_else(|err| panic!("the metrics recorder is installed once: {err}"));
        for metric in Metric::ALL {
            let unit = match metric.definition().unit {
                "Milliseconds" => Unit::Milliseconds,
                _ => Unit::Count,
            };
            // The recorder keeps units by name, whatever the kind of metric.
            ::metrics::describe_counter!(metric.name(), unit, "");
        }
        collector
    });
}

/// Writes what was recorded since the last flush to stdout, one EMF line per dimension set:
/// after every invocation, and during a long one before a series holds too many values.
pub fn flush() {
    PENDING_VALUES.store(0, Ordering::Relaxed);
    let Some(collector) = PROCESS.get() else {
        return;
    };
    let mut captured = CAPTURED.lock().unwrap_or_else(PoisonError::into_inner);
    let written = match captured.as_mut() {
        Some(lines) => collector.flush(lines),
        None => collector.flush(std::io::stdout().lock()),
    };
    if let Err(err) = written {
        tracing::warn!(error = %err, "metrics could not be written");
    }
}

/// For tests: plays `function`'s process and keeps the lines it would write, one capture at a
/// time in the process (the recorder is global), until dropped. Tests that capture metrics run in
/// a test binary of their own, so no other test records at the same time.
pub struct Capture {
    _one_at_a_time: MutexGuard<'static, ()>,
}

static CAPTURING: Mutex<()> = Mutex::new(());
/// Where [`flush`] writes while a [`Capture`] runs.
static CAPTURED: Mutex<Option<Vec<u8>>> = Mutex::new(None);

impl Capture {
    pub fn start(function: &'static str) -> Self {
        let one_at_a_time = CAPTURING.lock().unwrap_or_else(PoisonError::into_inner);
        init(function);
        // Whatever an earlier capture left unread goes nowhere.
        *CAPTURED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
        flush();
        *CAPTURED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
        Capture {
            _one_at_a_time: one_at_a_time,
        }
    }

    /// Every line written since the capture started or was last read, the pending ones flushed
    /// now, as a function writes them after an invocation.
    pub fn lines(&self) -> String {
        flush();
        let mut captured = CAPTURED.lock().unwrap_or_else(PoisonError::into_inner);
        let lines = captured.replace(Vec::new()).unwrap_or_default();
        String::from_utf8(lines).expect("serde_json writes UTF-8")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        *CAPTURED.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `infra/metrics.json` is what the template's tests read: it must say what the code emits.
    /// `UPDATE_METRICS_CATALOGUE=1 cargo test -p nango-connect metrics` rewrites it.
    #[test]
    fn the_catalogue_file_is_the_code_s() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/metrics.json");
        let current = serde_json::to_string_pretty(&serde_json::json!({
            "namespaceVariable": NAMESPACE_VARIABLE,
            "defaultNamespace": DEFAULT_NAMESPACE,
            "functionDimension": FUNCTION,
            "metrics": catalogue(),
        }))
        .expect("serializable")
            + "\n";
        if std::env::var_os("UPDATE_METRICS_CATALOGUE").is_some() {
            std::fs::write(path, &current).expect("writable");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "infra/metrics.json is out of date: UPDATE_METRICS_CATALOGUE=1 cargo test -p nango-connect metrics"
        );
    }

    #[test]
    fn the_dimensions_recorded_are_the_catalogue_s() {
        for metric in Metric::ALL {
            let named: Vec<_> = metric
                .definition()
                .dimensions
                .iter()
                .map(|d| d.name)
                .collect();
            assert_eq!(named, metric.dimension_names(), "{metric:?}");
        }
    }

    #[test]
    fn every_metric_is_in_the_catalogue_once() {
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
        for metric in Metric::ALL {
            assert_eq!(format!("{metric:?}"), metric.name());
        }
    }
}
