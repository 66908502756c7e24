//! `DELETE /connections/{connectionId}`: deletes one of the caller's connections in Nango, then
//! marks it deleted here.
//!
//! Nango first: if it fails, nothing here changes and the caller can try again. Our own store is
//! written even when Nango sends a deletion webhook (older servers send none), through the same
//! lifecycle as every other change, so a late webhook cannot bring the connection back.

use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::access::{self, Action, OrganizationAccess};
use crate::bootstrap::InitError;
use crate::config::{ClaimNames, NangoConfig, Source, StoreConfig};
use crate::connection::AuthEvent;
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::metrics::Metric;
use crate::nango::{ConnectionId, NangoClient};
use crate::rate_limit::{CallerLimits, Limits};
use crate::store::ConnectionStore;
use crate::transport::Tls;

pub struct DeleteConnection {
    nango: NangoClient,
    store: ConnectionStore,
    claims: ClaimNames,
    policy: OrganizationAccess,
    limits: Option<CallerLimits>,
}

impl DeleteConnection {
    pub fn new(
        nango: NangoClient,
        store: ConnectionStore,
        claims: ClaimNames,
        policy: OrganizationAccess,
    ) -> Self {
        DeleteConnection {
            nango,
            store,
            claims,
            policy,
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
        Ok(DeleteConnection::new(
            nango,
            ConnectionStore::from_config(dynamodb, StoreConfig::from_source(source)?),
            ClaimNames::from_source(source),
            OrganizationAccess::from_source(source)?,
        )
        .with_caller_limits(limits))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.delete(request).await {
            Ok(()) => {
                Metric::ConnectionsDeleted.add(1);
                http::no_content()
            }
            Err(err) => err.into_response(),
        }
    }

    async fn delete(&self, request: Request) -> Result<(), ApiError> {
        http::api_body(&request, Method::DELETE, "DELETE")?;
        let identity = Identity::from_request(&request, &self.claims)?;
        if let Some(limits) = &self.limits {
            limits.admit(&identity).await?;
        }
        // An id that cannot be a connection's names none: the same answer as an unknown one.
        let connection_id = request
            .path_parameters_ref()
            .and_then(|params| params.first("connectionId"))
            .and_then(|id| ConnectionId::parse(id).ok())
            .ok_or(ApiError::ConnectionNotFound)?;
        let connection = self
            .store
            .get(&connection_id)
            .await?
            .ok_or(ApiError::ConnectionNotFound)?;
        access::authorize(self.policy, &identity, &connection, Action::Delete)?;
        let deletion = self
            .nango
            .delete_connection(&connection.id, &connection.integration_id)
            .await?;
        // From the state read above: one conditional put, unless something wrote since.
        let gone = AuthEvent::deletion_of(&connection);
        self.store
            .record_from(&gone, Some(Some(connection)))
            .await?;
        tracing::info!(
            connection_id = %gone.connection_id,
            end_user_id = %identity.end_user_id,
            nango = ?deletion,
            "connection deleted"
        );
        Ok(())
    }
}
