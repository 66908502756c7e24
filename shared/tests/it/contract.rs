//! The contract: every answer a handler gives in these tests must be one that `openapi.yaml`
//! describes. `support` wraps each handler in [`Checked`](crate::support::Checked), which calls
//! [`assert_described`] on every answer; the rules are those of `infra/openapi/contract.js`, which
//! the end-to-end tests use:
//!
//! - the document has the route (API Gateway's `routeKey`; the function URL is the webhook `nango`)
//!   and a response for the answer's exact status (no `default` to fall back on);
//! - a method the route does not have gets `components/responses/MethodNotAllowed`, with `Allow`
//!   listing exactly the methods the document gives the route (API Gateway never sends a function
//!   such a request, but the tests do, and the function URL gets them from anyone);
//! - the response's required headers are there and their values match; Retry-After, Allow and
//!   WWW-Authenticate appear only where the document describes them;
//! - the Content-Type is one the response names, and the body matches its schema (formats too).

use std::sync::OnceLock;

use jsonschema::{Draft, Registry};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../../../openapi.yaml");
const DOCUMENT_URI: &str = "urn:nango-connect:openapi";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The function URL in front of the webhook receiver: `webhooks.nango` in the document.
const WEBHOOK: &str = "nango";
const METHOD_NOT_ALLOWED: &str = "/components/responses/MethodNotAllowed";
const HEADERS_THAT_MATTER: [&str; 3] = ["retry-after", "allow", "www-authenticate"];

/// Where a request went, as the document names it.
#[derive(Debug, Clone)]
pub enum Route {
    /// An HTTP API route's path, e.g. `/connections/{connectionId}`.
    Path(String),
    /// A webhook of the document's `webhooks`.
    Webhook(String),
}

/// What the checker needs of a request: its method and route.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub route: Route,
}

impl Sent {
    /// API Gateway names the route it matched in `routeKey` (`"GET /connections"`); a function
    /// URL's events say `"$default"`.
    pub fn of(request: &Request) -> Sent {
        let route_key = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.route_key.clone(),
            _ => None,
        };
        let route = match route_key.as_deref() {
            Some("$default") | None => Route::Webhook(WEBHOOK.to_owned()),
            Some(key) => Route::Path(key.split_once(' ').map_or(key, |(_, path)| path).to_owned()),
        };
        Sent {
            method: request.method().as_str().to_owned(),
            route,
        }
    }
}

struct Contract {
    document: Value,
    registry: Registry<'static>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let document: Value = serde_yaml_ng::from_str(DOCUMENT).expect("openapi.yaml is YAML");
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(
                DOCUMENT_URI,
                Draft::Draft202012.create_resource(document.clone()),
            )
            .and_then(|builder| builder.prepare())
            .expect("openapi.yaml's schemas resolve");
        Contract { document, registry }
    })
}

/// Panics, naming what is wrong, unless the document describes this answer.
pub fn assert_described(sent: &Sent, response: &Response<Body>) {
    if let Err(problem) = check(sent, response) {
        panic!("openapi.yaml does not describe this answer: {problem}");
    }
}

pub fn check(sent: &Sent, response: &Response<Body>) -> Result<(), String> {
    let contract = contract();
    let (name, item_pointer) = match &sent.route {
        Route::Path(path) => (path.clone(), format!("/paths/{}", escape(path))),
        Route::Webhook(webhook) => (
            format!("webhook {webhook}"),
            format!("/webhooks/{}", escape(webhook)),
        ),
    };
    let item = contract
        .document
        .pointer(&item_pointer)
        .ok_or_else(|| format!("{name}: the document has no such route"))?;
    let method = sent.method.to_ascii_lowercase();
    let asked = format!("{} {name}", sent.method);
    let status = response.status().as_u16();
    let allowed: Vec<String> = METHODS
        .iter()
        .filter(|m| item.get(**m).is_some())
        .map(|m| m.to_ascii_uppercase())
        .collect();

    let pointer = match item.get(&method) {
        Some(operation) => {
            if operation.pointer(&format!("/responses/{status}")).is_none() {
                return Err(format!(
                    "{asked}: the document describes no {status} answer"
                ));
            }
            format!("{item_pointer}/{method}/responses/{status}")
        }
        None if status == 405 => METHOD_NOT_ALLOWED.to_owned(),
        None => {
            return Err(format!(
                "{asked}: a method the document does not give this route must be answered 405, not {status}"
            ));
        }
    };
    let (described, at) = resolve(&contract.document, &pointer)?;
    let headers = response.headers();
    check_headers(&asked, status, described, &at, headers)?;
    if item.get(&method).is_none() {
        let mut listed: Vec<String> = headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        listed.sort();
        let mut expected = allowed;
        expected.sort();
        if listed != expected {
            return Err(format!(
                "{asked}: Allow is {listed:?}, the document gives {expected:?}"
            ));
        }
    }
    check_body(&asked, status, described, &at, response)
}

fn check_headers(
    asked: &str,
    status: u16,
    described: &Value,
    at: &str,
    headers: &lambda_http::http::HeaderMap,
) -> Result<(), String> {
    let names: Vec<&String> = described
        .get("headers")
        .and_then(Value::as_object)
        .map(|headers| headers.keys().collect())
        .unwrap_or_default();
    for name in HEADERS_THAT_MATTER {
        if headers.contains_key(name) && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "{asked} {status}: the answer has {name}, which the document does not describe"
            ));
        }
    }
    for name in names {
        let (header, header_at) = resolve(
            &contract().document,
            &format!("{at}/headers/{}", escape(name)),
        )?;
        let Some(value) = headers.get(name.as_str()) else {
            if header.get("required") == Some(&Value::Bool(true)) {
                return Err(format!(
                    "{asked} {status}: the required header {name} is missing"
                ));
            }
            continue;
        };
        let value = value
            .to_str()
            .map_err(|_| format!("{asked} {status}: header {name} is not text"))?;
        validate(&format!("{header_at}/schema"), &json!(value))
            .map_err(|error| format!("{asked} {status}: header {name}: {value:?}: {error}"))?;
    }
    Ok(())
}

fn check_body(
    asked: &str,
    status: u16,
    described: &Value,
    at: &str,
    response: &Response<Body>,
) -> Result<(), String> {
    let bytes: &[u8] = response.body().as_ref();
    let Some(content) = described.get("content").and_then(Value::as_object) else {
        return if bytes.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{asked} {status}: the document describes no body, the answer has one"
            ))
        };
    };
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !content.contains_key(&media_type) {
        return Err(format!(
            "{asked} {status}: Content-Type {content_type:?} is not one the document gives ({:?})",
            content.keys().collect::<Vec<_>>()
        ));
    }
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|err| format!("{asked} {status}: the body is not JSON: {err}"))?;
    validate(
        &format!("{at}/content/{}/schema", escape(&media_type)),
        &body,
    )
    .map_err(|error| format!("{asked} {status}: {error}; the body: {body}"))
}

/// Checks `value` against the schema at `pointer` in the document.
fn validate(pointer: &str, value: &Value) -> Result<(), String> {
    let schema = json!({ "$ref": format!("{DOCUMENT_URI}#{}", percent_encode(pointer)) });
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(&contract().registry)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|err| format!("the schema at {pointer} does not build: {err}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|error| format!("{} at {:?}", error, error.instance_path().to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The node at `pointer`, following `$ref`s, and the pointer it was found at.
fn resolve<'d>(document: &'d Value, pointer: &str) -> Result<(&'d Value, String), String> {
    let mut node = document;
    let mut at = String::new();
    for segment in pointer.split('/').skip(1) {
        node = node
            .get(unescape(segment))
            .ok_or_else(|| format!("the document has nothing at {at}/{segment}"))?;
        at = format!("{at}/{segment}");
        while let Some(target) = node.get("$ref").and_then(Value::as_str) {
            let (target_node, target_at) = resolve(document, target.trim_start_matches('#'))?;
            node = target_node;
            at = target_at;
        }
    }
    Ok((node, at))
}

/// A JSON pointer segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// A JSON pointer as a URI fragment: `{` and `}` (path templates) are not allowed there as they are.
fn percent_encode(pointer: &str) -> String {
    pointer.replace('{', "%7B").replace('}', "%7D")
}

/// The checker refuses what the document does not describe: without these, a checker that
/// accepted everything would pass every test above.
#[cfg(test)]
mod tests {
    use lambda_http::http::StatusCode;

    use super::*;

    fn sent(method: &str, route: Route) -> Sent {
        Sent {
            method: method.to_owned(),
            route,
        }
    }

    fn api(method: &str, path: &str) -> Sent {
        sent(method, Route::Path(path.to_owned()))
    }

    fn webhook(method: &str) -> Sent {
        sent(method, Route::Webhook(WEBHOOK.to_owned()))
    }

    fn answer(
        status: u16,
        headers: &[(&'static str, &str)],
        body: Option<Value>,
    ) -> Response<Body> {
        let mut response = Response::new(match &body {
            Some(body) => Body::Text(body.to_string()),
            None => Body::Empty,
        });
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if body.is_some() {
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
        }
        for (name, value) in headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        response
    }

    fn error(code: &str) -> Option<Value> {
        Some(json!({"error": {"code": code, "message": "m"}}))
    }

    fn connection(status: &str, error: Value) -> Value {
        json!({
            "connectionId": "a", "integrationId": "github", "provider": null, "status": status,
            "error": error, "createdAt": "2026-11-26T10:00:00.000Z",
            "updatedAt": "2026-11-26T10:00:00.000Z",
        })
    }

    #[test]
    fn described_answers_pass() {
        let failure = json!({"type": "t", "description": "d"});
        let cases = [
            (
                api("GET", "/connections"),
                answer(
                    200,
                    &[],
                    Some(json!({"connections": [connection("error", failure)]})),
                ),
            ),
            (
                api("POST", "/sessions"),
                answer(503, &[("retry-after", "7")], error("nango_unavailable")),
            ),
            (
                api("POST", "/sessions"),
                answer(
                    503,
                    &[("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")],
                    error("nango_unavailable"),
                ),
            ),
            (
                api("DELETE", "/connections/{connectionId}"),
                answer(204, &[], None),
            ),
            (
                webhook("GET"),
                answer(405, &[("allow", "POST")], error("method_not_allowed")),
            ),
        ];
        for (sent, response) in cases {
            assert_eq!(check(&sent, &response), Ok(()), "{sent:?}");
        }
    }

    #[test]
    fn undescribed_answers_are_refused() {
        let failure = json!({"type": "t", "description": "d"});
        let cases = [
            // A status the route does not have.
            (
                api("POST", "/sessions"),
                answer(404, &[], error("connection_not_found")),
                "describes no 404",
            ),
            // A code another route answers with that status.
            (
                api("POST", "/sessions/reconnect"),
                answer(400, &[], error("invalid_cursor")),
                "invalid_cursor",
            ),
            // A field the schema does not name.
            (
                api("GET", "/connections"),
                answer(200, &[], Some(json!({"connections": [], "total": 0}))),
                "total",
            ),
            // An active connection with an error.
            (
                api("GET", "/connections"),
                answer(
                    200,
                    &[],
                    Some(json!({"connections": [connection("active", failure)]})),
                ),
                "connections/0",
            ),
            // A Retry-After where none is described, and one that is neither seconds nor a date.
            (
                api("POST", "/sessions"),
                answer(502, &[("retry-after", "5")], error("nango_rejected")),
                "retry-after",
            ),
            (
                api("POST", "/sessions"),
                answer(503, &[("retry-after", "soon")], error("nango_unavailable")),
                "Retry-After",
            ),
            // 405 without Allow, or with an Allow that is not the route's methods.
            (
                webhook("GET"),
                answer(405, &[], error("method_not_allowed")),
                "Allow is missing",
            ),
            (
                api("DELETE", "/connections"),
                answer(
                    405,
                    &[("allow", "GET, DELETE")],
                    error("method_not_allowed"),
                ),
                "Allow",
            ),
            // A body where none is described, and none where one is.
            (
                api("DELETE", "/connections/{connectionId}"),
                answer(204, &[], Some(json!({}))),
                "no body",
            ),
            (webhook("POST"), answer(200, &[], None), "Content-Type"),
            // A route the document does not have.
            (
                api("GET", "/sessions/{id}"),
                answer(200, &[], None),
                "no such route",
            ),
        ];
        for (sent, response, expected) in cases {
            let problem = check(&sent, &response).expect_err(expected);
            assert!(problem.contains(expected), "{problem}");
        }
    }
}
