//! The function URL Nango POSTs its webhooks to (any path).
//!
//! Order matters: size, then signature over the raw bytes, then parsing. Auth webhooks change the
//! store (their lifecycle events come from the table's stream, not from here); every other type is
//! published to the event bus with Nango's body. Only a storage or event bus failure that may pass
//! answers 5xx, the one answer Nango retries; a storage failure that cannot (DynamoDB refuses the
//! item itself) answers `422 unstorable_webhook`, logged as an error with the connection id, so it
//! is not retried in vain (reconciliation with Nango's listing recovers the connection).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::bootstrap::{Environment, InitError};
use crate::config::{EventsConfig, StoreConfig, WebhookConfig};
use crate::events::EventPublisher;
use crate::events::nango_webhook::{self, Fit};
use crate::http::{self, WEBHOOK_BODY_LIMIT, WebhookError};
use crate::store::{ConnectionStore, Recorded};
use crate::webhook::keys::RELOAD_INTERVAL;
use crate::webhook::{self, Notice, SIGNATURE_HEADER, SigningKeys};

#[derive(Serialize)]
struct Acknowledgement {
    result: &'static str,
}

pub struct WebhookReceiver {
    signing_keys: SigningKeys,
    store: ConnectionStore,
    events: EventPublisher,
}

impl WebhookReceiver {
    pub fn new(signing_keys: SigningKeys, store: ConnectionStore, events: EventPublisher) -> Self {
        WebhookReceiver {
            signing_keys,
            store,
            events,
        }
    }

    /// Keys from the secret follow a rotation; plain variables (local runs) stay as they are.
    pub fn from_env(
        env: &Environment,
        dynamodb: aws_sdk_dynamodb::Client,
        eventbridge: aws_sdk_eventbridge::Client,
    ) -> Result<Self, InitError> {
        let keys = WebhookConfig::from_source(env)?.signing_keys;
        let signing_keys = match env.secret_source() {
            Some(secret) => SigningKeys::reloading(keys, secret.clone(), RELOAD_INTERVAL),
            None => SigningKeys::fixed(keys),
        };
        Ok(WebhookReceiver::new(
            signing_keys,
            ConnectionStore::from_config(dynamodb, StoreConfig::from_source(env)?),
            EventPublisher::new(eventbridge, EventsConfig::from_source(env)?.bus_name),
        ))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.receive(request).await {
            Ok(result) => http::json(StatusCode::OK, &Acknowledgement { result }),
            Err(err) => err.into_response(),
        }
    }

    async fn receive(&self, request: Request) -> Result<&'static str, WebhookError> {
        if request.method() != Method::POST {
            return Err(WebhookError::MethodNotAllowed);
        }
        let body = http::body_within(&request, WEBHOOK_BODY_LIMIT)
            .map_err(WebhookError::PayloadTooLarge)?;
        let signature = request
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|v| v.as_bytes());
        self.signing_keys.verify(signature, body).await?;
        match webhook::parse(body)? {
            Notice::Connection(event) => {
                let recorded = self.store.record(&event).await.inspect_err(|err| {
                    if !err.is_transient() {
                        tracing::error!(
                            connection_id = %event.connection_id,
                            integration_id = %event.integration_id,
                            change = ?event.change,
                            error = %err,
                            "a webhook could not be stored, and never will be as it is"
                        );
                    }
                })?;
                tracing::info!(
                    connection_id = %event.connection_id,
                    integration_id = %event.integration_id,
                    change = ?event.change,
                    recorded = ?recorded,
                    "auth webhook"
                );
                Ok(match recorded {
                    Recorded::Written(_) => "stored",
                    Recorded::Unchanged => "unchanged",
                })
            }
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
                Ok("logged")
            }
            Notice::Other { kind } => {
                let (event, fit) = nango_webhook::event(&kind, body);
                if let Fit::Truncated { body_bytes } = fit {
                    tracing::warn!(
                        kind,
                        body_bytes,
                        detail_type = %event.detail_type,
                        "webhook too large for an event: published its plain top-level fields only"
                    );
                }
                self.events.publish(std::slice::from_ref(&event)).await?;
                tracing::info!(kind, detail_type = %event.detail_type, "webhook published");
                Ok("published")
            }
            Notice::Ignored { kind, operation } => {
                tracing::debug!(kind, operation, "webhook ignored");
                Ok("ignored")
            }
        }
    }
}
