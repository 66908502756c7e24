//! The HTTP client for Nango, built once per cold start and reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ConnectSession, ConnectionId, IntegrationId, Tags};
use crate::config::{NangoConfig, NangoTimeouts};

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
}

impl NangoClient {
    pub fn new(config: &NangoConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            // Nango's API does not redirect; following one could carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nango-connect-lambda/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(NangoClient {
            http,
            host: config.host.clone(),
            secret_key: config.secret_key.clone(),
            timeouts: config.timeouts,
            requests: Arc::default(),
        })
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
        let envelope: SessionEnvelope = self.post("/connect/sessions", &body).await?;
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
        let envelope: SessionEnvelope = self.post("/connect/sessions/reconnect", &body).await?;
        Ok(envelope.data.into())
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
            .send("GET /connections", || self.http.get(url.clone()))
            .await?;
        let page: ConnectionsPage = read_json(response).await?;
        Ok(page.connections)
    }

    /// `GET /connections/{id}?provider_config_key=`: whether Nango still has the connection
    /// (`false` on 404).
    pub async fn connection_exists(
        &self,
        connection_id: &ConnectionId,
        integration_id: &IntegrationId,
    ) -> Result<bool, NangoError> {
        let mut url = self.url(&["connections", connection_id.as_str()])?;
        url.query_pairs_mut()
            .append_pair("provider_config_key", integration_id.as_str());
        let response = self
            .send("GET /connections/{id}", || self.http.get(url.clone()))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            // Only its existence matters here, so the body is not read: a garbled 200 still says
            // "exists", the answer that deletes nothing.
            status if status.is_success() => Ok(true),
            _ => Err(rejected(response).await),
        }
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
        path: &str,
        body: &B,
    ) -> Result<R, NangoError> {
        let url = format!("{}{}", self.host, path);
        let response = self
            .send(path, || self.http.request(Method::POST, &url).json(body))
            .await?;
        read_json(response).await
    }

    /// Sends the request `build` makes, with the bounded retries every call to Nango gets: on 429
    /// (after `Retry-After`, seconds or an HTTP date), 5xx, timeouts and network errors, within the
    /// overall budget. Answers the first response that is not worth retrying, whatever its status.
    async fn send(
        &self,
        path: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NangoError> {
        let deadline = Instant::now() + self.timeouts.budget;
        let mut backoff = self.timeouts.first_backoff;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = build()
                .bearer_auth(self.secret_key.expose_secret())
                .timeout(self.timeouts.attempt.min(remaining))
                .send()
                .await;
            let retryable = match sent {
                Ok(response) if is_retryable(response.status()) => {
                    let retry_after = retry_after(&response);
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
            // Another attempt only if it would still have a fair chance to finish.
            let shortest_attempt = self.timeouts.attempt.min(Duration::from_secs(1));
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

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    parse_retry_after(
        response.headers().get(RETRY_AFTER)?.to_str().ok()?,
        SystemTime::now(),
    )
}

/// `Retry-After` is seconds (what Nango sends) or an HTTP date (what a proxy in front of a
/// self-hosted Nango may send); a date in the past means now.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

async fn rejected(response: reqwest::Response) -> NangoError {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let error = match serde_json::from_slice::<ErrorEnvelope>(&body) {
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
    };
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
}
