//! The HTTP client for Nango, built once per cold start and reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ConnectSession, ConnectionId, IntegrationId, Tags};
use crate::config::{NangoConfig, NangoTimeouts};
use crate::metrics::Metric;
use crate::rate_limit::{NangoBudget, Priority, Take};
use crate::transport::Tls;

#[derive(Debug, thiserror::Error)]
pub enum NangoError {
    /// Nango answered 4xx (but 429): the request or our configuration is wrong, retrying won't help.
    #[error("Nango refused the request ({status}, {code})")]
    Rejected {
        status: u16,
        code: String,
        message: Option<String>,
        errors: Vec<NangoFieldError>,
    },
    /// 429, 5xx or no connection, still so when the retry budget ran out.
    #[error("Nango is unavailable ({cause})")]
    Unavailable {
        cause: String,
        retry_after: Option<Duration>,
    },
    /// No answer within the time budget.
    #[error("Nango did not answer in time")]
    Timeout,
    /// A 2xx whose body is not what Nango documents.
    #[error("Nango sent an answer we cannot read: {0}")]
    InvalidResponse(String),
}

impl NangoError {
    /// Nango's error code, when it refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            NangoError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether Nango refused because of `field` of our request (e.g. `allowed_integrations`).
    pub fn concerns(&self, field: &str) -> bool {
        match self {
            NangoError::Rejected { errors, .. } => errors
                .iter()
                .any(|e| e.path.first().and_then(|p| p.as_str()) == Some(field)),
            _ => false,
        }
    }
}

/// One entry of Nango's `error.errors`: which field was wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NangoFieldError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub path: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<NangoFieldError>,
}

#[derive(Serialize)]
struct CreateSessionRequest<'a> {
    tags: &'a Tags,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_integrations: Option<Vec<&'a str>>,
}

#[derive(Serialize)]
struct ReconnectSessionRequest<'a> {
    connection_id: &'a str,
    integration_id: &'a str,
    tags: &'a Tags,
}

#[derive(Deserialize)]
struct SessionEnvelope {
    data: SessionData,
}

#[derive(Deserialize)]
struct SessionData {
    token: String,
    #[serde(default)]
    connect_link: Option<String>,
    expires_at: String,
}

/// One row of `GET /connections` (shared/docs/nango-api.md §4), read leniently: a row that does
/// not make sense is the caller's to skip, and must not make the whole page unreadable.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedConnection {
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    pub provider_config_key: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    /// String → string in Nango; anything else in a value is skipped by the reader.
    #[serde(default)]
    pub tags: Option<serde_json::Value>,
    #[serde(default)]
    pub errors: Vec<ListedError>,
    /// e.g. `2026-11-26T10:00:00.123+00:00`.
    #[serde(default)]
    pub created: Option<String>,
}

/// One entry of a row's `errors`: `auth` (broken credentials) or `sync` (not about credentials).
#[derive(Debug, Clone, Deserialize)]
pub struct ListedError {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl ListedConnection {
    /// Whether Nango says the connection's credentials are broken.
    pub fn has_auth_error(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.kind.as_deref() == Some("auth"))
    }
}

/// An exact lookup matches one row; a few more leave room for whatever Nango adds, never 10,000.
const EXACT_LOOKUP_LIMIT: u32 = 10;

#[derive(Deserialize)]
struct ConnectionsPage {
    connections: Vec<ListedConnection>,
}

#[derive(Clone)]
pub struct NangoClient {
    http: reqwest::Client,
    host: String,
    secret_key: SecretString,
    timeouts: NangoTimeouts,
    /// Every HTTP request sent (retries included), shared by the clones of this client: Nango's
    /// rate limit counts each one.
    requests: Arc<AtomicU64>,
    /// The shared budget every request takes from, and this client's place in it.
    budget: Option<(NangoBudget, Priority)>,
    /// Time spent waiting for the budget, in ms, shared by the clones.
    budget_waited_ms: Arc<AtomicU64>,
}

impl NangoClient {
    /// A client on the process's one TLS configuration (which never follows redirects: Nango's
    /// API does not redirect, and following one could carry the key elsewhere).
    pub fn new(config: &NangoConfig, tls: &Tls) -> Result<Self, reqwest::Error> {
        let http = tls
            .client_builder()
            .connect_timeout(config.timeouts.connect)
            .user_agent(concat!("nango-connect-lambda/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(NangoClient {
            http,
            host: config.host.clone(),
            secret_key: config.secret_key.clone(),
            timeouts: config.timeouts,
            requests: Arc::default(),
            budget: None,
            budget_waited_ms: Arc::default(),
        })
    }

    /// Every request takes from `budget` first, at `priority`.
    pub fn with_budget(mut self, budget: NangoBudget, priority: Priority) -> Self {
        self.budget = Some((budget, priority));
        self
    }

    /// How long this client (and its clones) has waited for the shared budget so far.
    pub fn budget_waited(&self) -> Duration {
        Duration::from_millis(self.budget_waited_ms.load(Ordering::Relaxed))
    }

    /// The most one call may take, all attempts and waits included.
    pub fn budget(&self) -> Duration {
        self.timeouts.budget
    }

    /// How many HTTP requests this client (and its clones) has sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `POST /connect/sessions`: a token for the Connect UI, tagged with its future owner.
    /// `allowed_integrations: None` lets the user pick any integration of the environment.
    pub async fn create_session(
        &self,
        tags: &Tags,
        allowed_integrations: Option<&[IntegrationId]>,
    ) -> Result<ConnectSession, NangoError> {
        let body = CreateSessionRequest {
            tags,
            allowed_integrations: allowed_integrations
                .map(|ids| ids.iter().map(IntegrationId::as_str).collect()),
        };
        let envelope: SessionEnvelope = self.post(Operation::CreateSession, &body).await?;
        Ok(envelope.data.into())
    }

    /// `POST /connect/sessions/reconnect`. `tags` must be the connection's full tag set: Nango
    /// replaces the connection's tags with what the session carries, and with `{}` when none.
    pub async fn reconnect_session(
        &self,
        connection_id: &ConnectionId,
        integration_id: &IntegrationId,
        tags: &Tags,
    ) -> Result<ConnectSession, NangoError> {
        let body = ReconnectSessionRequest {
            connection_id: connection_id.as_str(),
            integration_id: integration_id.as_str(),
            tags,
        };
        let envelope: SessionEnvelope = self.post(Operation::ReconnectSession, &body).await?;
        Ok(envelope.data.into())
    }

    /// `DELETE /connections/{id}?provider_config_key=…`. Nango answers an unknown connection (also
    /// a second delete of the same one) with `400 unknown_connection`, its docs say 404: both mean
    /// the connection is gone, which is what was asked.
    pub async fn delete_connection(
        &self,
        connection_id: &ConnectionId,
        integration_id: &IntegrationId,
    ) -> Result<Deletion, NangoError> {
        let mut url = self.url(&["connections", connection_id.as_str()])?;
        url.query_pairs_mut()
            .append_pair("provider_config_key", integration_id.as_str());
        let response = self
            .send(Operation::DeleteConnection, || {
                self.http.delete(url.clone())
            })
            .await?;
        match read_json::<serde_json::Value>(response).await {
            Ok(_) => Ok(Deletion::Deleted),
            Err(NangoError::Rejected { status: 404, .. }) => Ok(Deletion::AlreadyGone),
            Err(NangoError::Rejected {
                status: 400, code, ..
            }) if code == "unknown_connection" => Ok(Deletion::AlreadyGone),
            Err(err) => Err(err),
        }
    }

    /// `GET /connections?limit=&page=`: one page of every connection of the environment, newest
    /// first. `limit` is always sent (without it Nango answers up to 10,000 rows); 1..=2000.
    pub async fn list_connections(
        &self,
        limit: u32,
        page: u32,
    ) -> Result<Vec<ListedConnection>, NangoError> {
        let mut url = self.url(&["connections"])?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string())
            .append_pair("page", &page.to_string());
        let response = self
            .send(Operation::ListConnections, || self.http.get(url.clone()))
            .await?;
        let page: ConnectionsPage = read_json(response).await?;
        Ok(page.connections)
    }

    /// `GET /connections?connectionId=&integrationId=&limit=`: Nango's live row for this one
    /// connection, or `None` when Nango has no live connection with that id in that integration
    /// (deleted, never created, or its integration removed). An exact filter on the listing: no
    /// credentials read, nothing refreshed, no side effect in Nango (shared/docs/nango-api.md §6),
    /// unlike `GET /connections/{id}`, which this project never calls.
    pub async fn find_connection(
        &self,
        connection_id: &ConnectionId,
        integration_id: &IntegrationId,
    ) -> Result<Option<ListedConnection>, NangoError> {
        let mut url = self.url(&["connections"])?;
        url.query_pairs_mut()
            .append_pair("connectionId", connection_id.as_str())
            .append_pair("integrationId", integration_id.as_str())
            .append_pair("limit", &EXACT_LOOKUP_LIMIT.to_string());
        let response = self
            .send(Operation::FindConnection, || self.http.get(url.clone()))
            .await?;
        let page: ConnectionsPage = read_json(response).await?;
        // The filter is exact, but only a row naming both ids is taken as proof.
        Ok(page.connections.into_iter().find(|row| {
            row.connection_id.as_deref() == Some(connection_id.as_str())
                && row.provider_config_key.as_deref() == Some(integration_id.as_str())
        }))
    }

    /// `host` + path segments, each percent-encoded as one segment.
    fn url(&self, segments: &[&str]) -> Result<Url, NangoError> {
        let mut url = Url::parse(&self.host).map_err(|err| {
            NangoError::InvalidResponse(format!("NANGO_HOST is not a URL: {err}"))
        })?;
        url.path_segments_mut()
            .map_err(|()| NangoError::InvalidResponse("NANGO_HOST cannot have a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        operation: Operation,
        body: &B,
    ) -> Result<R, NangoError> {
        let url = format!("{}{}", self.host, operation.path());
        let response = self
            .send(operation, || self.http.post(&url).json(body))
            .await?;
        read_json(response).await
    }

    /// Sends the request `build` makes, with the bounded retries every call to Nango gets: on 429
    /// (after `Retry-After`, seconds or an HTTP date), 5xx, timeouts and network errors, within the
    /// overall budget. Answers the first response that is not worth retrying, whatever its status.
    async fn send(
        &self,
        operation: Operation,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NangoError> {
        let path = operation.path();
        let deadline = Instant::now() + self.timeouts.budget;
        let mut backoff = self.timeouts.first_backoff;
        let mut attempt = 1;
        // Another attempt only if it would still have a fair chance to finish.
        let shortest_attempt = self.timeouts.attempt.min(Duration::from_secs(1));
        loop {
            self.take_from_budget(deadline - shortest_attempt).await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            self.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let sent = build()
                .bearer_auth(self.secret_key.expose_secret())
                .timeout(self.timeouts.attempt.min(remaining))
                .send()
                .await;
            count(operation, &sent, started.elapsed());
            let retryable = match sent {
                Ok(response) if is_retryable(response.status()) => {
                    let retry_after = retry_after(&response);
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        self.drain_budget(retry_after.unwrap_or(backoff)).await;
                    }
                    NangoError::Unavailable {
                        cause: format!("HTTP {}", response.status().as_u16()),
                        retry_after,
                    }
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_timeout() => NangoError::Timeout,
                Err(err) => NangoError::Unavailable {
                    cause: without_url(err),
                    retry_after: None,
                },
            };
            let wait = match &retryable {
                NangoError::Unavailable {
                    retry_after: Some(wait),
                    ..
                } => *wait,
                _ => backoff,
            };
            let out_of_budget = Instant::now() + wait + shortest_attempt > deadline;
            if attempt >= self.timeouts.max_attempts || out_of_budget {
                tracing::warn!(path, attempt, error = %retryable, "giving up on Nango");
                return Err(retryable);
            }
            tracing::info!(path, attempt, error = %retryable, wait_ms = wait.as_millis() as u64, "retrying Nango");
            tokio::time::sleep(wait).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

impl NangoClient {
    /// Waits for a token of the shared budget, as long as one comes before `latest`; a budget
    /// that cannot be read lets the request through (`rate_limit`'s documentation says why).
    async fn take_from_budget(&self, latest: Instant) -> Result<(), NangoError> {
        let Some((budget, priority)) = &self.budget else {
            return Ok(());
        };
        loop {
            let retry_after = match budget.take(*priority).await {
                Ok(Take::Taken) => return Ok(()),
                Ok(Take::Refused { retry_after }) => retry_after,
                Err(err) => {
                    tracing::warn!(error = %err, "Nango budget not checked: the request goes ahead");
                    Metric::RateLimitErrors.add(1);
                    return Ok(());
                }
            };
            if Instant::now() + retry_after > latest {
                Metric::NangoBudgetExhausted.add_for(&[priority.as_str()], 1);
                tracing::warn!(
                    priority = priority.as_str(),
                    retry_after_ms = retry_after.as_millis() as u64,
                    "the shared Nango budget is spent"
                );
                return Err(NangoError::Unavailable {
                    cause: "the shared Nango budget is spent".to_owned(),
                    retry_after: Some(retry_after),
                });
            }
            Metric::NangoBudgetWaits.add_for(&[priority.as_str()], 1);
            self.budget_waited_ms
                .fetch_add(retry_after.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(retry_after).await;
        }
    }

    /// Nango said 429: every function holds off for as long as it asked.
    async fn drain_budget(&self, retry_after: Duration) {
        if let Some((budget, _)) = &self.budget
            && let Err(err) = budget.drain(retry_after).await
        {
            tracing::warn!(error = %err, "could not hold the Nango budget off after a 429");
            Metric::RateLimitErrors.add(1);
        }
    }
}

/// What we ask of Nango: the `Operation` dimension of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateSession,
    ReconnectSession,
    DeleteConnection,
    ListConnections,
    FindConnection,
}

impl Operation {
    pub const ALL: &[Operation] = &[
        Operation::CreateSession,
        Operation::ReconnectSession,
        Operation::DeleteConnection,
        Operation::ListConnections,
        Operation::FindConnection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateSession => "create_session",
            Operation::ReconnectSession => "reconnect_session",
            Operation::DeleteConnection => "delete_connection",
            Operation::ListConnections => "list_connections",
            Operation::FindConnection => "find_connection",
        }
    }

    /// The route, as the logs name it.
    fn path(self) -> &'static str {
        match self {
            Operation::CreateSession => "/connect/sessions",
            Operation::ReconnectSession => "/connect/sessions/reconnect",
            Operation::DeleteConnection => "DELETE /connections/{id}",
            Operation::ListConnections => "GET /connections",
            Operation::FindConnection => "GET /connections?connectionId=",
        }
    }
}

/// Every answer class a request to Nango can have: the `Answer` dimension.
pub const ANSWERS: &[&str] = &["2xx", "4xx", "429", "5xx", "timeout", "network"];

/// One request's metrics: its answer class and how long it took.
fn count(operation: Operation, sent: &Result<reqwest::Response, reqwest::Error>, took: Duration) {
    let answer = match sent {
        Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => "429",
        Ok(response) if response.status().is_server_error() => "5xx",
        Ok(response) if response.status().is_success() => "2xx",
        // 1xx and 3xx do not come from Nango's API (redirects are not followed): a refusal too.
        Ok(_) => "4xx",
        Err(err) if err.is_timeout() => "timeout",
        Err(_) => "network",
    };
    Metric::NangoRequests.add_for(&[operation.as_str(), answer], 1);
    Metric::NangoLatency.observe(&[operation.as_str()], took);
    if !matches!(answer, "2xx" | "4xx") {
        Metric::NangoUnavailable.add(1);
    }
}

/// A 2xx body as `R`; anything else is Nango's refusal.
async fn read_json<R: DeserializeOwned>(response: reqwest::Response) -> Result<R, NangoError> {
    if !response.status().is_success() {
        return Err(rejected(response).await);
    }
    match response.json::<R>().await {
        Ok(value) => Ok(value),
        // The body stopped coming within the attempt's time.
        Err(err) if err.is_timeout() => Err(NangoError::Timeout),
        Err(err) => Err(NangoError::InvalidResponse(without_url(err))),
    }
}

impl From<SessionData> for ConnectSession {
    fn from(data: SessionData) -> Self {
        ConnectSession {
            token: data.token,
            connect_link: data.connect_link,
            expires_at: data.expires_at,
        }
    }
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Nango did not know the connection (any more).
    AlreadyGone,
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    parse_retry_after(
        response.headers().get(RETRY_AFTER)?.to_str().ok()?,
        SystemTime::now(),
    )
}

/// The longest wait taken from a `Retry-After` (and passed on to our caller). Nango's rate limits
/// reset within minutes; anything longer is a misbehaving proxy, and a wait near `u64::MAX` seconds
/// would overflow the deadline arithmetic (`Instant + Duration` panics).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` is seconds (what Nango sends) or an HTTP date (what a proxy in front of a
/// self-hosted Nango may send); a date in the past means now. At most [`MAX_RETRY_AFTER`].
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

async fn rejected(response: reqwest::Response) -> NangoError {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let error = rejection(status, &body);
    // Nango's own words say what to fix; they hold no secret, so they go to the log (not to the caller).
    if let NangoError::Rejected {
        code,
        message,
        errors,
        ..
    } = &error
    {
        tracing::warn!(status, code, message = message.as_deref().unwrap_or(""), errors = ?errors, "Nango refused the request");
    }
    error
}

/// A 4xx answer's body read as Nango's error envelope, or `unknown` when it is not one.
fn rejection(status: u16, body: &[u8]) -> NangoError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error }) => NangoError::Rejected {
            status,
            code: error.code,
            message: error.message,
            errors: error.errors,
        },
        Err(_) => NangoError::Rejected {
            status,
            code: "unknown".to_owned(),
            message: None,
            errors: Vec::new(),
        },
    }
}

/// reqwest's messages include the URL; keep errors to the cause alone.
fn without_url(err: reqwest::Error) -> String {
    err.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 09:59:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    /// Found by fuzzing: `u64::MAX` seconds overflowed the client's deadline arithmetic.
    #[test]
    fn retry_after_is_capped() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 10:00:00 GMT").unwrap();
        for huge in [
            "18446744073709551615",
            "3601",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(MAX_RETRY_AFTER),
                "{huge}"
            );
        }
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): Nango's answers as the client reads them.
#[cfg(test)]
mod fuzz {
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzzing::{fuzz, nasty_string, text};

    /// The last second an HTTP date can name: 9999-12-31T23:59:59Z.
    const LAST_HTTP_DATE: u64 = 253_402_300_799;

    fn junk() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!(true)),
            Just(json!(u64::MAX)),
            Just(json!(-1.5e300)),
            Just(json!([1, "a"])),
            Just(json!({"a": {"b": []}})),
            text(40).prop_map(Value::String),
        ]
    }

    fn string_or_junk() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            4 => text(300).prop_map(|s| Some(Value::String(s))),
            1 => Just(None),
            1 => junk().prop_map(Some),
        ]
    }

    fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
        )
    }

    #[test]
    fn retry_after_is_read_exactly_and_never_beyond_the_cap() {
        let header = prop_oneof![
            2 => any::<u64>().prop_map(|n| n.to_string()),
            1 => (0..7200u64).prop_map(|n| format!(" {n}\t")),
            3 => (0..=LAST_HTTP_DATE)
                .prop_map(|s| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(s))),
            1 => nasty_string(40),
            1 => "[A-Za-z0-9 ,:+-]{0,40}",
        ];
        let now = (0..=LAST_HTTP_DATE, 0..1_000_000_000u32)
            .prop_map(|(s, n)| UNIX_EPOCH + Duration::new(s, n));
        fuzz(
            "nango::client::parse_retry_after",
            (header, now),
            |(header, now)| {
                let wait = parse_retry_after(&header, now);
                prop_assert!(wait.is_none_or(|w| w <= MAX_RETRY_AFTER));
                let value = header.trim();
                if let Ok(seconds) = value.parse::<u64>() {
                    prop_assert_eq!(
                        wait,
                        Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
                    );
                } else if let Ok(at) = httpdate::parse_http_date(value) {
                    let expected = at
                        .duration_since(now)
                        .unwrap_or_default()
                        .min(MAX_RETRY_AFTER);
                    prop_assert_eq!(wait, Some(expected));
                } else {
                    prop_assert_eq!(wait, None);
                }
                Ok(())
            },
        );
    }

    /// Nango's session answer, each field now and then missing or of the wrong type: read only
    /// when it is what Nango documents, and then exactly.
    #[test]
    fn session_answers_are_read_only_when_well_formed() {
        let answer = (
            string_or_junk(),
            string_or_junk(),
            string_or_junk(),
            any::<bool>(),
        )
            .prop_map(|(token, link, expires, wrapped)| {
                let data = object(vec![
                    ("token", token),
                    ("connect_link", link),
                    ("expires_at", expires),
                ]);
                if wrapped {
                    json!({ "data": data })
                } else {
                    data
                }
            });
        fuzz("nango::client session envelope", answer, |answer| {
            let body = serde_json::to_vec(&answer).expect("serializes");
            let read = serde_json::from_slice::<SessionEnvelope>(&body)
                .map(|e| ConnectSession::from(e.data));
            let data = answer.get("data").filter(|d| d.is_object());
            let field = |name: &str| data.and_then(|d| d.get(name));
            let well_formed = data.is_some()
                && field("token").is_some_and(Value::is_string)
                && field("expires_at").is_some_and(Value::is_string)
                && field("connect_link").is_none_or(|l| l.is_string() || l.is_null());
            match read {
                Ok(session) => {
                    prop_assert!(well_formed, "{answer}");
                    prop_assert_eq!(
                        Some(session.token.as_str()),
                        field("token").and_then(Value::as_str)
                    );
                    prop_assert_eq!(
                        Some(session.expires_at.as_str()),
                        field("expires_at").and_then(Value::as_str)
                    );
                    prop_assert_eq!(
                        session.connect_link.as_deref(),
                        field("connect_link").and_then(Value::as_str)
                    );
                    // The token is a credential: its Debug form never shows it.
                    if session.token.len() >= 12 && !session.expires_at.contains(&session.token) {
                        let shown = format!("{session:?}");
                        prop_assert!(!shown.contains(&session.token));
                    }
                }
                Err(_) => prop_assert!(!well_formed, "{answer}"),
            }
            Ok(())
        });
    }

    /// Any 4xx body: the status is kept, Nango's code taken when the envelope is well formed, and
    /// `unknown` otherwise. Never a panic.
    #[test]
    fn error_answers_keep_the_status_and_nangos_code_when_there_is_one() {
        let field_error = (
            string_or_junk(),
            string_or_junk(),
            prop::option::of(prop::collection::vec(junk(), 0..3)),
        )
            .prop_map(|(code, message, path)| {
                object(vec![
                    ("code", code),
                    ("message", message),
                    ("path", path.map(Value::Array)),
                ])
            });
        let envelope = (string_or_junk(), string_or_junk(), prop::option::of(prop::collection::vec(field_error, 0..3)))
            .prop_map(|(code, message, errors)| {
                json!({ "error": object(vec![("code", code), ("message", message), ("errors", errors.map(Value::Array))]) })
            });
        let body = prop_oneof![
            3 => envelope.prop_map(|e| serde_json::to_vec(&e).expect("serializes")),
            1 => prop::collection::vec(any::<u8>(), 0..256),
        ];
        fuzz(
            "nango::client error envelope",
            (400..500u16, body),
            |(status, body)| {
                let parsed: Option<Value> = serde_json::from_slice(&body).ok();
                let error = parsed.as_ref().and_then(|v| v.get("error"));
                let text_or_null =
                    |v: Option<&Value>| v.is_none_or(|v| v.is_string() || v.is_null());
                let well_formed = error.is_some_and(|e| {
                    e.get("code").is_some_and(Value::is_string)
                        && text_or_null(e.get("message"))
                        && e.get("errors").is_none_or(|list| {
                            list.as_array().is_some_and(|list| {
                                list.iter().all(|item| {
                                    item.is_object()
                                        && text_or_null(item.get("code"))
                                        && text_or_null(item.get("message"))
                                        && item.get("path").is_none_or(Value::is_array)
                                })
                            })
                        })
                });
                match rejection(status, &body) {
                    NangoError::Rejected {
                        status: kept, code, ..
                    } => {
                        prop_assert_eq!(kept, status);
                        let expected =
                            match error.and_then(|e| e.get("code")).and_then(Value::as_str) {
                                Some(nango_code) if well_formed => nango_code,
                                _ => "unknown",
                            };
                        prop_assert_eq!(code, expected);
                    }
                    other => prop_assert!(false, "{other:?}"),
                }
                Ok(())
            },
        );
    }
}
