//! A proxy between the code under test and DynamoDB Local: it records which operations cross it,
//! and can run a test's own step before forwarding one — a write slipped in between a read and a
//! conditional put, say — so that races are reproduced deterministically, not hoped for.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Step = Pin<Box<dyn Future<Output = ()> + Send>>;
type Hook = Arc<dyn Fn(&str) -> Option<Step> + Send + Sync>;

pub struct DynamoProxy {
    pub endpoint: String,
    operations: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl DynamoProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let operations = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let hook: Arc<Mutex<Option<Hook>>> = Arc::new(Mutex::new(None));
        let client = crate::support::http_client();
        let (ops, sent, hooks) = (operations.clone(), bodies.clone(), hook.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (ops, sent, hooks, client, upstream) = (
                    ops.clone(),
                    sent.clone(),
                    hooks.clone(),
                    client.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(
                            request,
                            ops.clone(),
                            sent.clone(),
                            hooks.clone(),
                            client.clone(),
                            upstream.clone(),
                        )
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        DynamoProxy {
            endpoint,
            operations,
            bodies,
            hook,
        }
    }

    /// The operations forwarded so far (`GetItem`, `PutItem`, ...), in order.
    pub fn operations(&self) -> Vec<String> {
        self.operations.lock().expect("not poisoned").clone()
    }

    /// The operations forwarded so far with their request bodies (DynamoDB's JSON), in order.
    pub fn requests(&self) -> Vec<(String, serde_json::Value)> {
        let operations = self.operations.lock().expect("not poisoned").clone();
        let bodies = self.bodies.lock().expect("not poisoned").clone();
        operations.into_iter().zip(bodies).collect()
    }

    pub fn clear(&self) {
        self.operations.lock().expect("not poisoned").clear();
        self.bodies.lock().expect("not poisoned").clear();
    }

    /// Before forwarding each operation, runs the step `hook` returns for it, if any.
    pub fn before(&self, hook: impl Fn(&str) -> Option<Step> + Send + Sync + 'static) {
        *self.hook.lock().expect("not poisoned") = Some(Arc::new(hook));
    }
}

async fn forward(
    request: hyper::Request<hyper::body::Incoming>,
    operations: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    hook: Arc<Mutex<Option<Hook>>>,
    client: reqwest::Client,
    upstream: String,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    {
        // One lock for both, so that the two lists stay in step.
        let mut operations = operations.lock().expect("not poisoned");
        operations.push(operation.clone());
        bodies
            .lock()
            .expect("not poisoned")
            .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
    }
    let step = hook
        .lock()
        .expect("not poisoned")
        .as_ref()
        .and_then(|hook| hook(&operation));
    if let Some(step) = step {
        step.await;
    }
    let mut outgoing = client.post(&upstream).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.expect("DynamoDB Local answers");
    let mut response = hyper::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.expect("a whole answer");
    Ok(response.body(Full::new(bytes)).expect("a valid response"))
}
