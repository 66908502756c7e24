//! `GET /connections`: the caller's connections and their organization's, newest first.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::ConnectionView;
use crate::access::{self, Action, OrganizationAccess};
use crate::bootstrap::InitError;
use crate::config::{ClaimNames, Source, StoreConfig};
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::store::ConnectionStore;

#[derive(Serialize)]
struct ListResponse {
    connections: Vec<ConnectionView>,
}

pub struct ListConnections {
    store: ConnectionStore,
    claims: ClaimNames,
    policy: OrganizationAccess,
}

impl ListConnections {
    pub fn new(store: ConnectionStore, claims: ClaimNames, policy: OrganizationAccess) -> Self {
        ListConnections {
            store,
            claims,
            policy,
        }
    }

    pub fn from_env(
        source: &impl Source,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> Result<Self, InitError> {
        Ok(ListConnections::new(
            ConnectionStore::new(dynamodb, StoreConfig::from_source(source)?.table),
            ClaimNames::from_source(source),
            OrganizationAccess::from_source(source)?,
        ))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.list(request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    async fn list(&self, request: Request) -> Result<Response<Body>, ApiError> {
        http::api_body(&request, Method::GET, "GET")?;
        let identity = Identity::from_request(&request, &self.claims)?;
        // The organization's index is read only when the policy lets members see its connections.
        let organization = identity
            .organization_id
            .as_ref()
            .filter(|_| self.policy.lets_organization(Action::List));
        let connections = self
            .store
            .list_owned(&identity.end_user_id, organization)
            .await?;
        let body = ListResponse {
            connections: connections
                .into_iter()
                .filter(|c| access::authorize(self.policy, &identity, c, Action::List).is_ok())
                .map(ConnectionView::from)
                .collect(),
        };
        Ok(http::json(StatusCode::OK, &body))
    }
}
