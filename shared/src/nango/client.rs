//! The HTTP client for Nango, built once per cold start and reused.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{ConnectSession, ConnectionId, IntegrationId, Tags};
use crate::config::{NangoConfig, NangoTimeouts};
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

#[derive(Clone)]
pub struct NangoClient {
    http: reqwest::Client,
    host: String,
    secret_key: SecretString,
    timeouts: NangoTimeouts,
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
        })
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

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, NangoError> {
        let url = format!("{}{}", self.host, path);
        let deadline = Instant::now() + self.timeouts.budget;
        let mut backoff = self.timeouts.first_backoff;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let sent = self
                .http
                .post(&url)
                .bearer_auth(self.secret_key.expose_secret())
                .json(body)
                .timeout(self.timeouts.attempt.min(remaining))
                .send()
                .await;
            let retryable = match sent {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json::<R>()
                        .await
                        .map_err(|err| NangoError::InvalidResponse(without_url(err)));
                }
                Ok(response) if is_retryable(response.status()) => {
                    let retry_after = retry_after(&response);
                    NangoError::Unavailable {
                        cause: format!("HTTP {}", response.status().as_u16()),
                        retry_after,
                    }
                }
                Ok(response) => return Err(rejected(response).await),
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

/// Nango sends `Retry-After` in seconds.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse::<u64>().ok().map(Duration::from_secs)
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
