//! `POST /sessions/reconnect`: a Connect session that re-authorizes one of the caller's
//! connections, keeping its tags. A connection of an integration outside
//! `NANGO_ALLOWED_INTEGRATIONS` is refused as a new session for it would be, before Nango is called.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::SessionResponse;
use crate::access::{self, Action, OrganizationAccess};
use crate::bootstrap::InitError;
use crate::config::{AllowedIntegrations, ClaimNames, NangoConfig, Source, StoreConfig};
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::metrics::Metric;
use crate::nango::{ConnectionId, NangoClient, NangoError};
use crate::rate_limit::{CallerLimits, Limits};

/// What Nango answers a reconnect naming a connection and integration it does not know (with
/// "ConnectionID or IntegrationId does not exists"; shared/docs/nango-api.md §3).
const UNKNOWN_PAIR_CODE: &str = "invalid_body";
use crate::store::ConnectionStore;
use crate::transport::Tls;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReconnectRequest {
    connection_id: ConnectionId,
}

pub struct ReconnectSession {
    nango: NangoClient,
    store: ConnectionStore,
    claims: ClaimNames,
    policy: OrganizationAccess,
    allowed: AllowedIntegrations,
    limits: Option<CallerLimits>,
}

impl ReconnectSession {
    pub fn new(
        nango: NangoClient,
        store: ConnectionStore,
        claims: ClaimNames,
        policy: OrganizationAccess,
        allowed: AllowedIntegrations,
    ) -> Self {
        ReconnectSession {
            nango,
            store,
            claims,
            policy,
            allowed,
            limits: None,
        }
    }

    /// Each caller's share of the route.
    pub fn with_caller_limits(mut self, limits: Option<CallerLimits>) -> Self {
        self.limits = limits;
        self
    }

    pub fn from_env(
        source: &impl Source,
        tls: &Tls,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Result<Self, InitError> {
        let nango = NangoClient::new(&NangoConfig::from_source(source)?, tls)?;
        let (nango, limits) = Limits::for_callers(source, &dynamodb, nango)?;
        Ok(ReconnectSession::new(
            nango,
            ConnectionStore::new(dynamodb, StoreConfig::from_source(source)?.table),
            ClaimNames::from_source(source),
            OrganizationAccess::from_source(source)?,
            AllowedIntegrations::from_source(source)?,
        )
        .with_caller_limits(limits))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.reconnect(request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    async fn reconnect(&self, request: Request) -> Result<Response<Body>, ApiError> {
        let body = http::api_body(&request, Method::POST, "POST")?;
        let identity = Identity::from_request(&request, &self.claims)?;
        if let Some(limits) = &self.limits {
            limits.admit(&identity).await?;
        }
        let ReconnectRequest { connection_id } = http::parse_json(body)?
            .ok_or_else(|| ApiError::InvalidBody("a body with connectionId is required".into()))?;
        let connection = self
            .store
            .get(&connection_id)
            .await?
            .ok_or(ApiError::ConnectionNotFound)?;
        access::authorize(self.policy, &identity, &connection, Action::Reconnect)?;
        // After the access check, so that the answer says nothing of connections that are not the
        // caller's (those are 404 whatever their integration).
        if !self.allowed.permits(&connection.integration_id) {
            return Err(ApiError::IntegrationNotAllowed(
                connection.integration_id.to_string(),
            ));
        }
        let session = match self
            .nango
            .reconnect_session(
                &connection.id,
                &connection.integration_id,
                &connection.reconnect_tags(),
            )
            .await
        {
            Ok(session) => session,
            // Nango refuses a pair it does not know with a 400 about the body: the connection may
            // have just been deleted (a delete racing this reconnect), or deleted behind our back.
            // When its exact lookup confirms that, the caller is told what a deleted connection
            // tells them; anything else stays Nango's refusal.
            Err(err @ NangoError::Rejected { status: 400, .. })
                if err.code() == Some(UNKNOWN_PAIR_CODE) =>
            {
                match self
                    .nango
                    .find_connection(&connection.id, &connection.integration_id)
                    .await
                {
                    Ok(None) => {
                        tracing::info!(connection_id = %connection.id, "reconnect of a connection Nango no longer has");
                        return Err(ApiError::ConnectionNotFound);
                    }
                    _ => return Err(err.into()),
                }
            }
            Err(err) => return Err(err.into()),
        };
        tracing::info!(connection_id = %connection.id, end_user_id = %identity.end_user_id, "reconnect session created");
        Metric::ReconnectSessionsCreated.add(1);
        Ok(http::json(
            StatusCode::CREATED,
            &SessionResponse::from(session),
        ))
    }
}

/// Fuzz target (see [`crate::fuzzing`]): `POST /sessions/reconnect` bodies.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzzing::{fuzz, text};

    #[test]
    fn a_reconnect_body_names_one_valid_connection_id() {
        let id = prop_oneof![
            3 => "[a-z0-9-]{1,40}".prop_map(Value::String),
            2 => text(300).prop_map(Value::String),
            1 => prop::sample::select(vec![json!(null), json!(7), json!(["c1"]), json!({"id": "c1"})]),
        ];
        fuzz(
            "handlers::reconnect_session body",
            (prop::option::of(id), any::<bool>()),
            |(id, unknown_field)| {
                let mut object = serde_json::Map::new();
                if let Some(id) = &id {
                    object.insert("connectionId".into(), id.clone());
                }
                if unknown_field {
                    object.insert("connection_id".into(), json!("c1"));
                }
                let text = Value::Object(object).to_string();
                let read = http::parse_json::<ReconnectRequest>(text.as_bytes());
                let expected = id
                    .as_ref()
                    .and_then(Value::as_str)
                    .and_then(|id| ConnectionId::parse(id).ok())
                    .filter(|_| !unknown_field);
                match (read, expected) {
                    (Ok(Some(request)), Some(id)) => prop_assert_eq!(request.connection_id, id),
                    (Err(ApiError::InvalidBody(_)), None) => {}
                    (read, expected) => prop_assert!(
                        false,
                        "{text}: read {:?}, expected {expected:?}",
                        read.map(|r| r.map(|r| r.connection_id))
                    ),
                }
                Ok(())
            },
        );
    }
}
