//! Requests in, responses out: body limits, JSON parsing, and the one place where errors become
//! HTTP answers.
//!
//! Every error answer is `{"error":{"code":"<stable code>","message":"..."}}`. Messages are ours:
//! internal causes (Nango's answer, DynamoDB's error) go to the log, never to the caller, and no
//! secret ever reaches either.

use lambda_http::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::access::Denied;
use crate::events::PublishError;
use crate::identity::IdentityError;
use crate::metrics::Metric;
use crate::nango::NangoError;
use crate::rate_limit::Limited;
use crate::store::{InvalidCursor, StoreError};
use crate::webhook::SignatureError;

/// The largest body our API accepts; its requests are a few dozen bytes.
pub const API_BODY_LIMIT: usize = 16 * 1024;
/// The largest webhook body accepted; Nango's auth webhooks are under 2 KB.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// Errors of the HTTP API (API Gateway routes).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is invalid: {0}")]
    InvalidBody(String),
    #[error("integration {0} is not allowed")]
    IntegrationNotAllowed(String),
    /// Nango does not know an integration the caller asked for.
    #[error("Nango knows no such integration ({nango_code})")]
    IntegrationUnknownToNango { nango_code: String },
    #[error(transparent)]
    Unauthenticated(#[from] IdentityError),
    #[error("no such connection for this caller")]
    ConnectionNotFound,
    #[error("limit must be a whole number from 1 to 100")]
    InvalidLimit,
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("over the {} rate limit", .0.scope.as_str())]
    RateLimited(Limited),
    #[error(transparent)]
    Nango(#[from] NangoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of the webhook receiver (a function URL). Only these answers can make Nango retry:
/// a 5xx; every 4xx is final for Nango.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    /// With `nango_rejected`: Nango's own error code, e.g. `invalid_body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    nango_code: Option<&'a str>,
}

/// Every `code` an API error answer can carry (`openapi.yaml` lists them too): the `Code`
/// dimension of the `ApiErrors` metric.
pub const API_ERROR_CODES: &[&str] = &[
    "invalid_body",
    "integration_not_allowed",
    "unauthenticated",
    "connection_not_found",
    "invalid_limit",
    "invalid_cursor",
    "method_not_allowed",
    "payload_too_large",
    "rate_limited",
    "nango_rejected",
    "nango_invalid_response",
    "nango_unavailable",
    "nango_timeout",
    "storage_error",
];

/// One error answer, before it becomes a response.
struct Problem<'a> {
    status: StatusCode,
    code: &'static str,
    message: String,
    nango_code: Option<&'a str>,
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::RateLimited(limited)
    }
}

/// Not the caller's: the same answer as no such connection, so ids cannot be probed.
impl From<Denied> for ApiError {
    fn from(_: Denied) -> Self {
        ApiError::ConnectionNotFound
    }
}

impl ApiError {
    pub fn into_response(self) -> Response<Body> {
        let problem = self.problem();
        log(problem.status, &self);
        Metric::ApiErrors.add_for(&[problem.code], 1);
        let mut response = problem.into_response();
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                response
                    .headers_mut()
                    .insert(ALLOW, allow.parse().expect("a method list"));
            }
            ApiError::Nango(NangoError::Unavailable {
                retry_after: Some(wait),
                ..
            })
            | ApiError::RateLimited(Limited {
                retry_after: wait, ..
            }) => {
                // Whole seconds, rounded up: a client that waits what it is told is not early.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response.headers_mut().insert(RETRY_AFTER, seconds.into());
            }
            _ => {}
        }
        response
    }

    fn problem(&self) -> Problem<'_> {
        use ApiError::*;
        let (status, code, message) = match self {
            // The caller's own input: telling them what is wrong with it is safe and useful.
            InvalidBody(detail) => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("The request body is invalid: {detail}"),
                );
            }
            IntegrationNotAllowed(id) => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "integration_not_allowed",
                    format!("Integration '{id}' is not allowed."),
                );
            }
            Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "The caller could not be identified.",
            ),
            ConnectionNotFound => (
                StatusCode::NOT_FOUND,
                "connection_not_found",
                "No such connection.",
            ),
            InvalidLimit => (
                StatusCode::BAD_REQUEST,
                "invalid_limit",
                "limit must be a whole number from 1 to 100.",
            ),
            InvalidCursor(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "The cursor is not one this API handed out to this caller.",
            ),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            ),
            RateLimited(limited) => {
                return Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "Too many requests from this {}; retry after the time in Retry-After.",
                        limited.scope.as_str()
                    ),
                );
            }
            Nango(NangoError::Rejected { code, .. }) => {
                return Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "nango_rejected",
                    "Nango refused the request.",
                )
                .with_nango_code(code);
            }
            IntegrationUnknownToNango { nango_code } => {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "integration_not_allowed",
                    "An integration asked for does not exist in Nango.",
                )
                .with_nango_code(nango_code);
            }
            Nango(NangoError::InvalidResponse(_)) => (
                StatusCode::BAD_GATEWAY,
                "nango_invalid_response",
                "Nango sent an answer that could not be read.",
            ),
            Nango(NangoError::Unavailable { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "nango_unavailable",
                "Nango is unavailable; try again shortly.",
            ),
            Nango(NangoError::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                "nango_timeout",
                "Nango did not answer in time.",
            ),
            Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "The connection store is unavailable.",
            ),
        };
        Problem::new(status, code, message)
    }
}

impl WebhookError {
    /// What became of the webhook, as the `Webhooks` metric counts it.
    pub fn outcome(&self) -> &'static str {
        use WebhookError::*;
        match self {
            Signature(SignatureError::KeysMayBeStale) => "signing_keys_stale",
            Signature(_) => "signature_rejected",
            MethodNotAllowed | PayloadTooLarge(_) => "refused",
            Store(_) | Publish(_) => "failed",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        use WebhookError::*;
        let (status, code, message) = match &self {
            Signature(SignatureError::KeysMayBeStale) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "signing_keys_stale",
                "The signature matches none of the signing keys held, which may be out of date; retry.",
            ),
            Signature(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "The webhook signature is missing or wrong.",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Webhooks are POSTed.",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The body is too large.",
            ),
            Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "The webhook could not be stored; retry.",
            ),
            Publish(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "event_bus_unavailable",
                "The webhook could not be published; retry.",
            ),
        };
        log(status, &self);
        let mut response = Problem::new(status, code, message).into_response();
        if matches!(self, MethodNotAllowed) {
            response
                .headers_mut()
                .insert(ALLOW, "POST".parse().expect("a method"));
        }
        response
    }
}

impl<'a> Problem<'a> {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
            nango_code: None,
        }
    }

    fn with_nango_code(mut self, code: &'a str) -> Self {
        self.nango_code = Some(code);
        self
    }

    fn into_response(self) -> Response<Body> {
        json(
            self.status,
            &ErrorEnvelope {
                error: ErrorBody {
                    code: self.code,
                    message: &self.message,
                    nango_code: self.nango_code,
                },
            },
        )
    }
}

/// Server faults are errors to look into; client faults are the caller's business.
fn log(status: StatusCode, error: &dyn std::error::Error) {
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %error, "request failed");
    } else {
        tracing::info!(status = status.as_u16(), error = %error, "request refused");
    }
}

pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(body).expect("our response types serialize");
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("a content type"),
    );
    response
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The body, if no larger than `limit`. The declared length is checked first, so an oversized
/// body is refused before anything looks at it.
pub fn body_within(request: &Request, limit: usize) -> Result<&[u8], usize> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(limit);
    }
    let body: &[u8] = request.body().as_ref();
    if body.len() > limit {
        return Err(limit);
    }
    Ok(body)
}

/// Checks the method and the body size of an API request, and returns the body.
pub fn api_body<'r>(
    request: &'r Request,
    method: Method,
    allow: &'static str,
) -> Result<&'r [u8], ApiError> {
    if request.method() != method {
        return Err(ApiError::MethodNotAllowed { allow });
    }
    body_within(request, API_BODY_LIMIT).map_err(ApiError::PayloadTooLarge)
}

/// A JSON object body of type `T`; an empty body is `None`. Anything but an object is refused,
/// since serde would otherwise read a JSON array as the struct's fields in order.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    if *first != b'{' {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|err| ApiError::InvalidBody(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::nango::NangoFieldError;

    fn answer(response: Response<Body>) -> (u16, serde_json::Value) {
        let body: &[u8] = response.body().as_ref();
        (
            response.status().as_u16(),
            serde_json::from_slice(body).expect("JSON"),
        )
    }

    /// Checks the status and the stable code; returns the body for further checks.
    fn assert_answer(response: Response<Body>, status: u16, code: &str) -> serde_json::Value {
        let (actual_status, body) = answer(response);
        assert_eq!(
            (actual_status, body["error"]["code"].as_str()),
            (status, Some(code))
        );
        body
    }

    fn rejected(status: u16, code: &str, path: &[&str]) -> ApiError {
        ApiError::Nango(NangoError::Rejected {
            status,
            code: code.to_owned(),
            message: Some("Nango's own words".to_owned()),
            errors: vec![NangoFieldError {
                code: None,
                message: None,
                path: path.iter().map(|p| serde_json::json!(p)).collect(),
            }],
        })
    }

    #[test]
    fn api_errors_map_to_documented_statuses_and_codes() {
        let cases = [
            (ApiError::InvalidBody("x".into()), 400, "invalid_body"),
            (
                ApiError::IntegrationNotAllowed("x".into()),
                400,
                "integration_not_allowed",
            ),
            (
                ApiError::Unauthenticated(IdentityError::NoClaims),
                401,
                "unauthenticated",
            ),
            (ApiError::ConnectionNotFound, 404, "connection_not_found"),
            (ApiError::InvalidLimit, 400, "invalid_limit"),
            (
                ApiError::InvalidCursor(InvalidCursor),
                400,
                "invalid_cursor",
            ),
            (
                ApiError::MethodNotAllowed { allow: "POST" },
                405,
                "method_not_allowed",
            ),
            (ApiError::PayloadTooLarge(1), 413, "payload_too_large"),
            (rejected(401, "unknown_account", &[]), 502, "nango_rejected"),
            // Which integration list Nango refused is the handler's to tell; by itself it is a 502.
            (
                rejected(400, "invalid_body", &["allowed_integrations", "0"]),
                502,
                "nango_rejected",
            ),
            (
                ApiError::IntegrationUnknownToNango {
                    nango_code: "invalid_body".into(),
                },
                400,
                "integration_not_allowed",
            ),
            (
                ApiError::Nango(NangoError::InvalidResponse("x".into())),
                502,
                "nango_invalid_response",
            ),
            (
                ApiError::Nango(NangoError::Unavailable {
                    cause: "HTTP 500".into(),
                    retry_after: None,
                }),
                503,
                "nango_unavailable",
            ),
            (ApiError::Nango(NangoError::Timeout), 504, "nango_timeout"),
            (
                ApiError::Store(StoreError::Contention),
                500,
                "storage_error",
            ),
        ];
        for (error, status, code) in cases {
            let body = assert_answer(error.into_response(), status, code);
            assert!(body["error"]["message"].is_string());
        }
    }

    #[test]
    fn nango_rejections_carry_nangos_code_but_not_its_message() {
        let (_, body) = answer(rejected(401, "unknown_account", &[]).into_response());
        assert_eq!(body["error"]["nangoCode"], "unknown_account");
        assert!(!body.to_string().contains("Nango's own words"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        assert!(matches!(
            parse_json::<Named>(br#" {"name":"x"} "#),
            Ok(Some(_))
        ));
        assert!(matches!(parse_json::<Named>(b" \n "), Ok(None)));
        for not_an_object in [&br#"["x"]"#[..], br#""x""#, b"null", b"42"] {
            assert!(
                matches!(
                    parse_json::<Named>(not_an_object),
                    Err(ApiError::InvalidBody(_))
                ),
                "{}",
                String::from_utf8_lossy(not_an_object)
            );
        }
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let error = ApiError::Nango(NangoError::Unavailable {
            cause: "HTTP 429".into(),
            retry_after: Some(Duration::from_millis(1500)),
        });
        assert_eq!(error.into_response().headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn retry_after_is_passed_on() {
        let error = ApiError::Nango(NangoError::Unavailable {
            cause: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!(error.into_response().headers()[RETRY_AFTER], "7");
    }

    #[test]
    fn webhook_errors_map_to_documented_statuses_and_codes() {
        let cases = [
            (
                WebhookError::Signature(SignatureError::Missing),
                401,
                "invalid_signature",
            ),
            (WebhookError::MethodNotAllowed, 405, "method_not_allowed"),
            (WebhookError::PayloadTooLarge(1), 413, "payload_too_large"),
            (
                WebhookError::Store(StoreError::Unavailable("x".into())),
                500,
                "storage_error",
            ),
            (
                WebhookError::Store(StoreError::Contention),
                500,
                "storage_error",
            ),
            (
                WebhookError::Signature(SignatureError::KeysMayBeStale),
                503,
                "signing_keys_stale",
            ),
            (
                WebhookError::Publish(PublishError::Unavailable("throttled".into())),
                503,
                "event_bus_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            assert_answer(error.into_response(), status, code);
        }
    }

    #[test]
    fn storage_failures_do_not_leak_their_cause() {
        let error = ApiError::Store(StoreError::Unavailable(
            "dispatch failure: 10.0.0.7:443".into(),
        ));
        let (_, body) = answer(error.into_response());
        assert!(!body.to_string().contains("10.0.0.7"));
    }
}

/// Fuzz targets (see [`crate::fuzzing`]): request bodies, before any handler reads them.
#[cfg(test)]
mod fuzz {
    use lambda_http::http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::fuzzing::fuzz;

    #[test]
    fn a_body_is_handed_on_only_within_the_limit() {
        let declared = prop_oneof![
            1 => Just(None),
            2 => (0..40_000usize).prop_map(|n| Some(n.to_string().into_bytes())),
            1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Some),
            1 => Just(Some(b"18446744073709551616".to_vec())),
        ];
        fuzz(
            "http::body_within",
            (declared, 0..40_000usize, 0..40_000usize),
            |(declared, length, limit)| {
                let body = vec![b'x'; length];
                let mut request = Request::new(Body::Binary(body.clone()));
                let header = declared.and_then(|d| HeaderValue::from_bytes(&d).ok());
                if let Some(header) = &header {
                    request.headers_mut().insert(CONTENT_LENGTH, header.clone());
                }
                let declared_too_long = header
                    .and_then(|h| h.to_str().ok()?.parse::<usize>().ok())
                    .is_some_and(|n| n > limit);
                match body_within(&request, limit) {
                    Ok(read) => {
                        prop_assert_eq!(read, body.as_slice());
                        prop_assert!(read.len() <= limit && !declared_too_long);
                    }
                    Err(refused) => {
                        prop_assert_eq!(refused, limit);
                        prop_assert!(length > limit || declared_too_long);
                    }
                }
                Ok(())
            },
        );
    }

    /// Any bytes: nothing but whitespace is no body, an object is read, anything else refused.
    #[test]
    fn only_a_json_object_is_read_as_a_body() {
        let body = prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..256),
            1 => prop::collection::vec(prop::sample::select(b" \t\r\n{}[]\":,0a".to_vec()), 0..64),
            1 => "[ \t\r\n]{0,3}\\{\"[a-z]{1,3}\":(1|\"x\"|null|\\[\\])\\}[ \t\r\n]{0,3}".prop_map(String::into_bytes),
        ];
        fuzz("http::parse_json (any bytes)", body, |body| {
            let read = parse_json::<Map<String, Value>>(&body);
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            match read {
                Ok(None) => prop_assert!(first.is_none()),
                Ok(Some(object)) => {
                    prop_assert_eq!(first, Some(&b'{'));
                    prop_assert_eq!(
                        serde_json::from_slice::<Value>(&body).ok(),
                        Some(Value::Object(object))
                    );
                }
                Err(ApiError::InvalidBody(_)) => {
                    prop_assert!(
                        serde_json::from_slice::<Value>(&body).map_or(true, |v| !v.is_object())
                    );
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
            Ok(())
        });
    }
}
