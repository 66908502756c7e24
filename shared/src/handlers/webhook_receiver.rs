//! The function URL Nango POSTs its webhooks to (any path).
//!
//! Order matters: size, then signature over the raw bytes, then parsing. Auth webhooks change the
//! store once Nango's API confirms what matters ([`crate::confirmation`]); their lifecycle events
//! come from the table's stream, not from here. Every other type is published to the event bus
//! with Nango's body.
//!
//! Every answer is deliberate, because Nango retries only 5xx and network errors, and its per-URL
//! circuit breaker drops *every* delivery for 60 s after 5 non-2xx answers in 10 s (4xx included):
//! a signed delivery we will never be able to use is acknowledged with 200 and logged once with
//! its reason ([`Outcome`]); 5xx is kept for faults a retry can fix; 401 only for a signature that
//! matches none of the keys as they are now. docs/api.md, "What the receiver answers", has the table.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::bootstrap::{Environment, InitError};
use crate::config::{EventsConfig, NangoConfig, StoreConfig, WebhookConfig};
use crate::confirmation::Confirmer;
use crate::connection::AuthEvent;
use crate::events::EventPublisher;
use crate::events::nango_webhook::{self, Fit};
use crate::http::{self, WEBHOOK_BODY_LIMIT, WebhookError};
use crate::metrics::Metric;
use crate::nango::NangoClient;
use crate::rate_limit::{Limits, Priority};
use crate::store::{ConnectionStore, Recorded};
use crate::transport::Tls;
use crate::webhook::keys::RELOAD_INTERVAL;
use crate::webhook::{self, Notice, SIGNATURE_HEADER, SigningKeys};

/// What became of a signed webhook: the `result` of the 200 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An auth webhook changed the stored connection.
    Stored,
    /// An auth webhook changed nothing (a duplicate, news of a deleted connection).
    Unchanged,
    /// A deletion Nango does not confirm: nothing written; reconciliation decides.
    NotConfirmed,
    /// A non-auth webhook is on the event bus.
    Published,
    /// A failed first authorization: logged, no connection exists.
    Logged,
    /// An auth operation we do not act on.
    Ignored,
    /// From another Nango environment than `NANGO_ENVIRONMENT`: nothing written.
    OtherEnvironment,
    /// Signed, but not a webhook we can read (not JSON, no string `type`, an auth webhook
    /// without its ids, over the size limit): logged.
    Unusable,
    /// DynamoDB refuses the item itself: logged as an error; reconciliation recovers the
    /// connection from Nango's listing.
    Unstorable,
    /// The event bus is missing or not ours: logged as an error; the stack must be fixed.
    Unpublishable,
}

impl Outcome {
    pub const ALL: &[Outcome] = &[
        Outcome::Stored,
        Outcome::Unchanged,
        Outcome::NotConfirmed,
        Outcome::Published,
        Outcome::Logged,
        Outcome::Ignored,
        Outcome::OtherEnvironment,
        Outcome::Unusable,
        Outcome::Unstorable,
        Outcome::Unpublishable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Unchanged => "unchanged",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Published => "published",
            Outcome::Logged => "logged",
            Outcome::Ignored => "ignored",
            Outcome::OtherEnvironment => "other_environment",
            Outcome::Unusable => "unusable",
            Outcome::Unstorable => "unstorable",
            Outcome::Unpublishable => "unpublishable",
        }
    }
}

#[derive(Serialize)]
struct Acknowledgement {
    result: &'static str,
}

pub struct WebhookReceiver {
    signing_keys: SigningKeys,
    store: ConnectionStore,
    events: EventPublisher,
    confirmer: Confirmer,
    /// `NANGO_ENVIRONMENT`: when set, auth webhooks of any other environment write nothing.
    environment: Option<String>,
}

impl WebhookReceiver {
    pub fn new(
        signing_keys: SigningKeys,
        store: ConnectionStore,
        events: EventPublisher,
        confirmer: Confirmer,
    ) -> Self {
        WebhookReceiver {
            signing_keys,
            store,
            events,
            confirmer,
            environment: None,
        }
    }

    /// Only auth webhooks of this Nango environment (e.g. `prod`) are applied.
    pub fn for_environment(mut self, environment: Option<String>) -> Self {
        self.environment = environment;
        self
    }

    /// Keys from the secret follow a rotation; plain variables (local runs) stay as they are.
    pub fn from_env(
        env: &Environment,
        tls: &Tls,
        dynamodb: aws_sdk_dynamodb::Client,
        eventbridge: aws_sdk_eventbridge::Client,
    ) -> Result<Self, InitError> {
        let config = WebhookConfig::from_source(env)?;
        let signing_keys = match env.secret_source() {
            Some(secret) => {
                SigningKeys::reloading(config.signing_keys, secret.clone(), RELOAD_INTERVAL)
            }
            None => SigningKeys::fixed(config.signing_keys),
        };
        let nango = NangoClient::new(&NangoConfig::from_source(env)?.for_webhooks(), tls)?;
        let limits = Limits::from_source(env, &dynamodb)?;
        let nango = Limits::budget(limits.as_ref(), nango, Priority::Background);
        Ok(WebhookReceiver::new(
            signing_keys,
            ConnectionStore::from_config(dynamodb, StoreConfig::from_source(env)?),
            EventPublisher::new(eventbridge, EventsConfig::from_source(env)?.bus_name),
            Confirmer::new(nango),
        )
        .for_environment(config.environment))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.receive(request).await {
            Ok(outcome) => {
                Metric::Webhooks.add_for(&[outcome.as_str()], 1);
                http::json(
                    StatusCode::OK,
                    &Acknowledgement {
                        result: outcome.as_str(),
                    },
                )
            }
            Err(err) => {
                Metric::Webhooks.add_for(&[err.outcome()], 1);
                err.into_response()
            }
        }
    }

    async fn receive(&self, request: Request) -> Result<Outcome, WebhookError> {
        if request.method() != Method::POST {
            return Err(WebhookError::MethodNotAllowed);
        }
        let signature = request
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|v| v.as_bytes());
        let body = match http::body_within(&request, WEBHOOK_BODY_LIMIT) {
            Ok(body) => body,
            Err(limit) => {
                // Not read, only checked: signed by Nango, it is a delivery to acknowledge.
                let whole: &[u8] = request.body().as_ref();
                if whole.len() <= limit || self.signing_keys.verify(signature, whole).await.is_err()
                {
                    return Err(WebhookError::PayloadTooLarge(limit));
                }
                tracing::warn!(
                    body_bytes = whole.len(),
                    "a signed webhook over the size limit: acknowledged, not read"
                );
                return Ok(Outcome::Unusable);
            }
        };
        self.signing_keys.verify(signature, body).await?;
        let notice = match webhook::parse(body) {
            Ok(notice) => notice,
            Err(err) => {
                tracing::warn!(error = %err, body_bytes = body.len(), "a signed webhook we cannot use: acknowledged");
                return Ok(Outcome::Unusable);
            }
        };
        Metric::WebhookTypes.add_for(&[notice.kind()], 1);
        match notice {
            Notice::Connection(event) => self.connection_changed(event).await,
            Notice::FailedCreation(failed) => {
                tracing::warn!(
                    connection_id = %failed.connection_id,
                    integration_id = %failed.integration_id,
                    provider = failed.provider.as_deref().unwrap_or(""),
                    environment = failed.environment.as_deref().unwrap_or(""),
                    error_type = %failed.error.kind,
                    error_description = %failed.error.description,
                    "a user's authorization failed; no connection was created"
                );
                Ok(Outcome::Logged)
            }
            Notice::Other { kind } => self.publish(&kind, body).await,
            Notice::Ignored { kind, operation } => {
                tracing::info!(kind, operation, "webhook ignored");
                Ok(Outcome::Ignored)
            }
        }
    }

    async fn connection_changed(&self, event: AuthEvent) -> Result<Outcome, WebhookError> {
        if let Some(expected) = &self.environment
            && event.environment.as_ref() != Some(expected)
        {
            tracing::warn!(
                connection_id = %event.connection_id,
                environment = event.environment.as_deref().unwrap_or(""),
                expected = %expected,
                "an auth webhook of another Nango environment: acknowledged, nothing written"
            );
            return Ok(Outcome::OtherEnvironment);
        }
        let vetted = self.confirmer.vet(event).await;
        let Some(event) = vetted.event else {
            return Ok(Outcome::NotConfirmed);
        };
        let recorded = match self.store.record(&event).await {
            Ok(recorded) => recorded,
            Err(err) if err.is_transient() => return Err(err.into()),
            Err(err) => {
                tracing::error!(
                    connection_id = %event.connection_id,
                    integration_id = %event.integration_id,
                    change = ?event.change,
                    error = %err,
                    "a webhook could not be stored, and never will be as it is: acknowledged; reconciliation recovers the connection"
                );
                return Ok(Outcome::Unstorable);
            }
        };
        // Ids only, so that one user's authorization can be traced by connection or end user.
        tracing::info!(
            connection_id = %event.connection_id,
            integration_id = %event.integration_id,
            end_user_id = event.owner.end_user_id.as_ref().map_or("", |id| id.as_str()),
            organization_id = event.owner.organization_id.as_ref().map_or("", |id| id.as_str()),
            change = ?event.change,
            confirmation = vetted.confirmation.as_str(),
            recorded = ?recorded,
            "auth webhook"
        );
        Ok(match recorded {
            Recorded::Written(_) => Outcome::Stored,
            Recorded::Unchanged => Outcome::Unchanged,
        })
    }

    async fn publish(&self, kind: &str, body: &[u8]) -> Result<Outcome, WebhookError> {
        let (event, fit) = nango_webhook::event(kind, body);
        if let Fit::Truncated { body_bytes } = fit {
            Metric::WebhooksTruncated.add(1);
            tracing::warn!(
                kind,
                body_bytes,
                detail_type = %event.detail_type,
                "webhook too large for an event: published its plain top-level fields only"
            );
        }
        match self.events.publish(std::slice::from_ref(&event)).await {
            Ok(()) => {
                tracing::info!(kind, detail_type = %event.detail_type, "webhook published");
                Ok(Outcome::Published)
            }
            Err(err) if err.is_transient() => Err(err.into()),
            Err(err) => {
                tracing::error!(
                    kind,
                    detail_type = %event.detail_type,
                    error = %err,
                    "a webhook cannot be published until the event bus is fixed: acknowledged, dropped"
                );
                Ok(Outcome::Unpublishable)
            }
        }
    }
}
