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
use crate::metrics::Metric;
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
            Some(limit) => page_size(Some(limit.ok_or(ApiError::InvalidLimit)?))?,
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
        Metric::ConnectionPagesListed.add(1);
        Ok(http::json(StatusCode::OK, &body))
    }
}

/// The `limit` parameter: a whole number from 1 to [`MAX_PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] when absent.
fn page_size(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or(ApiError::InvalidLimit),
    }
}

/// Fuzz target (see [`crate::fuzzing`]): any `limit` a caller may send.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::{fuzz, nasty_string};

    #[test]
    fn a_limit_is_a_whole_number_from_1_to_100() {
        let limit = prop_oneof![
            2 => (0..=120u32).prop_map(|n| n.to_string()),
            1 => "[+-]?0{0,3}[0-9]{1,25}",
            1 => any::<i128>().prop_map(|n| n.to_string()),
            1 => "[0-9 .eE+x_-]{0,8}",
            1 => nasty_string(30),
        ];
        fuzz("handlers::list_connections limit", limit, |limit| {
            // Digits (after an optional `+`) spelling a number in range; leading zeros allowed.
            let digits = limit.strip_prefix('+').unwrap_or(&limit);
            let whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            let value = digits.trim_start_matches('0');
            let in_range = whole
                && value.len() <= 3
                && value.parse::<usize>().is_ok_and(|n| (1..=100).contains(&n));
            match page_size(Some(&limit)) {
                Ok(size) => {
                    prop_assert!(in_range, "{limit:?} accepted");
                    prop_assert_eq!(Some(size), value.parse().ok());
                }
                Err(ApiError::InvalidLimit) => prop_assert!(!in_range, "{limit:?} refused"),
                Err(other) => prop_assert!(false, "{limit:?}: {other}"),
            }
            Ok(())
        });
        assert_eq!(page_size(None).ok(), Some(DEFAULT_PAGE_SIZE));
    }
}
