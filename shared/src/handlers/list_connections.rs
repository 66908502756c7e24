//! `GET /connections?limit=&cursor=`: the caller's connections and, as the policy allows, their
//! organization's, newest first, a page at a time.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use super::ConnectionView;
use crate::access::{self, Action, OrganizationAccess};
use crate::bootstrap::InitError;
use crate::config::{ClaimNames, Source, StoreConfig};
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::store::{
    ConnectionStore, Cursor, DEFAULT_PAGE_SIZE, InvalidCursor, MAX_PAGE_SIZE, Owners,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    connections: Vec<ConnectionView>,
    /// The `cursor` of the next page; `null` on the last one.
    next_cursor: Option<String>,
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
        let query = request.query_string_parameters_ref();
        // None when absent; Some(None) when repeated (`limit=50&limit=1`, which API Gateway hands
        // over as "50,1"): that is refused rather than settled by picking one of the values.
        let parameter = |name| {
            query
                .and_then(|q| q.all(name))
                .map(|values| match values.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                })
        };
        let size = match parameter("limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(limit) => limit
                .and_then(|limit| limit.parse::<usize>().ok())
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or(ApiError::InvalidLimit)?,
        };
        // The organization's index is read only when the policy lets members see its connections.
        let owners = Owners {
            end_user_id: &identity.end_user_id,
            organization_id: identity
                .organization_id
                .as_ref()
                .filter(|_| self.policy.lets_organization(Action::List)),
        };
        let cursor = parameter("cursor")
            .map(|text| Cursor::decode(text.ok_or(InvalidCursor)?, &owners))
            .transpose()?;
        let page = self.store.list_page(&owners, size, cursor).await?;
        let body = ListResponse {
            connections: page
                .connections
                .into_iter()
                .filter(|c| access::authorize(self.policy, &identity, c, Action::List).is_ok())
                .map(ConnectionView::from)
                .collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        };
        Ok(http::json(StatusCode::OK, &body))
    }
}
