//! `POST /sessions/reconnect`: a Connect session that re-authorizes one of the caller's
//! connections, keeping its tags.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::SessionResponse;
use crate::access::{self, Action, OrganizationAccess};
use crate::bootstrap::InitError;
use crate::config::{ClaimNames, NangoConfig, Source, StoreConfig};
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::nango::{ConnectionId, NangoClient};
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
}

impl ReconnectSession {
    pub fn new(
        nango: NangoClient,
        store: ConnectionStore,
        claims: ClaimNames,
        policy: OrganizationAccess,
    ) -> Self {
        ReconnectSession {
            nango,
            store,
            claims,
            policy,
        }
    }

    pub fn from_env(
        source: &impl Source,
        tls: &Tls,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Result<Self, InitError> {
        Ok(ReconnectSession::new(
            NangoClient::new(&NangoConfig::from_source(source)?, tls)?,
            ConnectionStore::new(dynamodb, StoreConfig::from_source(source)?.table),
            ClaimNames::from_source(source),
            OrganizationAccess::from_source(source)?,
        ))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.reconnect(request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    async fn reconnect(&self, request: Request) -> Result<Response<Body>, ApiError> {
        let body = http::api_body(&request, Method::POST, "POST")?;
        let identity = Identity::from_request(&request, &self.claims)?;
        let ReconnectRequest { connection_id } = http::parse_json(body)?
            .ok_or_else(|| ApiError::InvalidBody("a body with connectionId is required".into()))?;
        let connection = self
            .store
            .get(&connection_id)
            .await?
            .ok_or(ApiError::ConnectionNotFound)?;
        access::authorize(self.policy, &identity, &connection, Action::Reconnect)?;
        let session = self
            .nango
            .reconnect_session(
                &connection.id,
                &connection.integration_id,
                &connection.reconnect_tags(),
            )
            .await?;
        tracing::info!(connection_id = %connection.id, end_user_id = %identity.end_user_id, "reconnect session created");
        Ok(http::json(
            StatusCode::CREATED,
            &SessionResponse::from(session),
        ))
    }
}
