//! `POST /sessions`: a Connect session token for the caller, tagged with who they are.

use std::collections::BTreeSet;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::SessionResponse;
use crate::bootstrap::InitError;
use crate::config::{AllowedIntegrations, ClaimNames, NangoConfig, Source};
use crate::http::{self, ApiError};
use crate::identity::Identity;
use crate::metrics::Metric;
use crate::nango::{IntegrationId, NangoClient, NangoError};
use crate::rate_limit::{CallerLimits, Limits};
use crate::transport::Tls;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateSessionRequest {
    #[serde(default)]
    allowed_integrations: Option<Vec<IntegrationId>>,
}

pub struct CreateSession {
    nango: NangoClient,
    claims: ClaimNames,
    allowed: AllowedIntegrations,
    limits: Option<CallerLimits>,
}

impl CreateSession {
    pub fn new(nango: NangoClient, claims: ClaimNames, allowed: AllowedIntegrations) -> Self {
        CreateSession {
            nango,
            claims,
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
        Ok(CreateSession::new(
            nango,
            ClaimNames::from_source(source),
            AllowedIntegrations::from_source(source)?,
        )
        .with_caller_limits(limits))
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.create(request)
            .await
            .unwrap_or_else(ApiError::into_response)
    }

    async fn create(&self, request: Request) -> Result<Response<Body>, ApiError> {
        let body = http::api_body(&request, Method::POST, "POST")?;
        let identity = Identity::from_request(&request, &self.claims)?;
        if let Some(limits) = &self.limits {
            limits.admit(&identity).await?;
        }
        let asked = http::parse_json::<CreateSessionRequest>(body)?
            .and_then(|body| body.allowed_integrations)
            .filter(|ids| !ids.is_empty());
        let caller_chose = asked.is_some();
        let integrations = self.integrations_for(asked)?;
        let session = self
            .nango
            .create_session(&identity.tags(), integrations.as_deref())
            .await
            .map_err(|err| match err {
                // The caller's choice is theirs to fix; our own configured list is not.
                NangoError::Rejected { code, .. }
                    if caller_chose && err.concerns("allowed_integrations") =>
                {
                    ApiError::IntegrationUnknownToNango { nango_code: code }
                }
                err => ApiError::Nango(err),
            })?;
        tracing::info!(end_user_id = %identity.end_user_id, "connect session created");
        Metric::SessionsCreated.add(1);
        Ok(http::json(
            StatusCode::CREATED,
            &SessionResponse::from(session),
        ))
    }

    /// What the session may offer: what was asked, if all of it is allowed; otherwise everything
    /// allowed. An empty list would mean "all integrations" to Nango, so it counts as not asking.
    fn integrations_for(
        &self,
        asked: Option<Vec<IntegrationId>>,
    ) -> Result<Option<Vec<IntegrationId>>, ApiError> {
        let asked = asked.map(|ids| ids.into_iter().collect::<BTreeSet<_>>());
        // An id Nango could never have names no integration: refused here, without spending a
        // call of the account's Nango rate limit on it.
        if let Some(refused) = asked.iter().flatten().find(|id| !id.is_nango_key()) {
            return Err(ApiError::IntegrationNotAllowed(refused.to_string()));
        }
        match (asked, &self.allowed.0) {
            (Some(asked), Some(_)) => {
                if let Some(refused) = asked.iter().find(|id| !self.allowed.permits(id)) {
                    return Err(ApiError::IntegrationNotAllowed(refused.to_string()));
                }
                Ok(Some(asked.into_iter().collect()))
            }
            (Some(asked), None) => Ok(Some(asked.into_iter().collect())),
            (None, Some(allowed)) => Ok(Some(allowed.iter().cloned().collect())),
            (None, None) => Ok(None),
        }
    }
}

/// Fuzz target (see [`crate::fuzzing`]): `POST /sessions` bodies.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzzing::{fuzz, text};

    #[test]
    fn a_session_body_is_read_only_as_documented() {
        let element = prop_oneof![
            3 => "[a-z][a-z0-9-]{0,20}".prop_map(Value::String),
            1 => text(300).prop_map(Value::String),
            1 => prop::sample::select(vec![json!(null), json!(7), json!(u64::MAX), json!(["github"]), json!({})]),
        ];
        let integrations = prop_oneof![
            4 => prop::collection::vec(element, 0..5).prop_map(Value::Array),
            1 => prop::sample::select(vec![json!(null), json!("github"), json!({}), json!(1)]),
        ];
        let body = (prop::option::of(integrations), any::<bool>(), any::<bool>());
        fuzz(
            "handlers::create_session body",
            body,
            |(integrations, unknown_field, repeated)| {
                let mut object = serde_json::Map::new();
                if let Some(integrations) = &integrations {
                    object.insert("allowedIntegrations".into(), integrations.clone());
                }
                if unknown_field {
                    object.insert("allowed_integrations".into(), json!(["github"]));
                }
                let mut text = Value::Object(object).to_string();
                if repeated && integrations.is_some() {
                    text.insert_str(1, r#""allowedIntegrations":[],"#);
                }
                let read = http::parse_json::<CreateSessionRequest>(text.as_bytes());
                let ids = match &integrations {
                    None | Some(Value::Null) => Some(None),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| IntegrationId::parse(item.as_str()?).ok())
                        .collect::<Option<Vec<_>>>()
                        .map(Some),
                    Some(_) => None,
                };
                // Unknown fields and a repeated field are refused, not guessed at.
                let expected =
                    ids.filter(|_| !(unknown_field || repeated && integrations.is_some()));
                match (read, expected) {
                    (Ok(Some(request)), Some(ids)) => {
                        prop_assert_eq!(request.allowed_integrations, ids);
                    }
                    (Err(ApiError::InvalidBody(_)), None) => {}
                    (read, expected) => prop_assert!(
                        false,
                        "{text}: read {:?}, expected {expected:?}",
                        read.map(|r| r.map(|r| r.allowed_integrations))
                    ),
                }
                Ok(())
            },
        );
    }
}
