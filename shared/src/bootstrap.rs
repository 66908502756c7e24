//! Cold start: logging, the TLS configuration, the AWS SDK configuration and the configuration
//! (with secrets from Secrets Manager when deployed), built once and kept for the life of the sandbox.
//!
//! A cold start that cannot configure itself writes one log line naming the variable at fault
//! (never its value) and exits.
//!
//! Every function's `main` runs on tokio's current-thread scheduler: a Lambda sandbox handles one
//! invocation at a time, so worker threads would only add their start to the cold start and a
//! cross-thread wake-up to every read and write of every invocation (measured: docs/performance.md).

use std::collections::HashMap;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use lambda_http::{Body, Request, Response, service_fn};
use serde::Deserialize;

use lambda_http::tracing::subscriber as tracing_subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::{self, MakeWriter};
use tracing_subscriber::prelude::*;

use crate::config::{ConfigError, ProcessEnv, Source};
use crate::metrics;
use crate::transport::{self, Tls};

/// Names a Secrets Manager secret holding the secret variables. Deployed, the Nango secret key and
/// signing keys live there rather than in plain environment variables; locally, the plain
/// variables are used.
pub const NANGO_SECRET_ARN: &str = "NANGO_SECRET_ARN";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (and `RUST_LOG`'s directives), as the runtime's default
/// subscriber does — but never beyond [`MAX_LOG_LEVEL`].
pub fn init_tracing() {
    use lambda_http::tracing::subscriber::util::SubscriberInitExt;
    let env = |name| std::env::var(name).ok();
    let level = env("AWS_LAMBDA_LOG_LEVEL").or_else(|| env("RUST_LOG"));
    let json = env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    log_subscriber(
        level.as_deref(),
        env("RUST_LOG").as_deref(),
        json,
        std::io::stdout,
    )
    .init();
}

/// The most verbose the logs get, whatever level is asked for: at `TRACE` the AWS SDK logs whole
/// request and response bodies, and those carry connections' tags (emails, display names). Logs
/// carry ids only, so `TRACE` logs what `DEBUG` does.
pub const MAX_LOG_LEVEL: LevelFilter = LevelFilter::DEBUG;

/// The functions' log subscriber, writing to `writer`: `level` is a level name (`INFO` when absent
/// or not one), `directives` are `RUST_LOG`-style, both held to [`MAX_LOG_LEVEL`].
pub fn log_subscriber<W>(
    level: Option<&str>,
    directives: Option<&str>,
    json: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level = level
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives.unwrap_or_default());
    let layer = fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(writer);
    let layer = if json {
        layer.json().boxed()
    } else {
        layer.boxed()
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .with(MAX_LOG_LEVEL)
}

/// How long the AWS SDK waits for a connection to AWS.
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The AWS SDK configuration: credentials and region from the Lambda environment, endpoint
/// overrides from the SDK's own variables (`AWS_ENDPOINT_URL_DYNAMODB`), requests sent over `tls`
/// by our HTTP client. Tight timeouts, so a storage outage answers 500 quickly (and Nango
/// retries) instead of hanging the webhook.
pub async fn aws_config(tls: &Tls) -> Result<SdkConfig, InitError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let http = transport::aws_reqwest_client(tls, AWS_CONNECT_TIMEOUT)?;
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .http_client(transport::aws_http_client(http))
        .timeout_config(timeouts)
        .load()
        .await)
}

/// The environment, overlaid with the secret named by `NANGO_SECRET_ARN` when there is one.
pub struct Environment {
    secrets: HashMap<String, String>,
    secret: Option<SecretSource>,
}

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        self.secrets
            .get(name)
            .cloned()
            .or_else(|| ProcessEnv.get(name))
    }
}

/// The secret's value: a JSON object whose keys are variable names, e.g.
/// `{"NANGO_SECRET_KEY":"...","NANGO_WEBHOOK_SIGNING_KEY":"..."}`.
#[derive(Deserialize)]
#[serde(transparent)]
struct SecretVariables(HashMap<String, String>);

impl Environment {
    pub async fn load(aws: &SdkConfig) -> Result<Self, ConfigError> {
        let Some(secret) = SecretSource::from_env(aws) else {
            return Ok(Environment {
                secrets: HashMap::new(),
                secret: None,
            });
        };
        Ok(Environment {
            secrets: secret.read().await?,
            secret: Some(secret),
        })
    }

    /// Where the secret variables came from, when they came from Secrets Manager.
    pub fn secret_source(&self) -> Option<&SecretSource> {
        self.secret.as_ref()
    }
}

/// The secret named by `NANGO_SECRET_ARN`: read at cold start, and read again by the webhook
/// receiver when a signature matches none of the keys it has (the key was rotated).
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: impl Into<String>) -> Self {
        SecretSource {
            client,
            arn: arn.into(),
        }
    }

    fn from_env(aws: &SdkConfig) -> Option<Self> {
        let arn = ProcessEnv
            .get(NANGO_SECRET_ARN)
            .filter(|arn| !arn.trim().is_empty())?;
        Some(SecretSource::new(
            aws_sdk_secretsmanager::Client::new(aws),
            arn.trim(),
        ))
    }

    /// The secret's variables, as they are now.
    pub async fn read(&self) -> Result<HashMap<String, String>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: NANGO_SECRET_ARN,
            reason,
        };
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|err| {
                invalid(format!(
                    "the secret could not be read: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
                ))
            })?;
        let text = output
            .secret_string()
            .ok_or_else(|| invalid("the secret has no string value".to_owned()))?;
        // serde's message could quote the value; say only what shape was expected.
        let SecretVariables(secrets) = serde_json::from_str(text).map_err(|_| {
            invalid("the secret's value is not a JSON object of string values".to_owned())
        })?;
        Ok(secrets)
    }
}

/// What a cold start builds before its handler, once for the life of the sandbox.
pub struct ColdStart {
    /// The one TLS configuration of the process, for every HTTPS client it builds.
    pub tls: Tls,
    pub aws: SdkConfig,
    /// The environment, secrets included.
    pub env: Environment,
}

/// Everything a cold start needs before it builds its handler: logging, metrics (as `function`),
/// the TLS and AWS configurations and the environment (secrets included).
pub async fn start(function: &'static str) -> ColdStart {
    init_tracing();
    metrics::init(function);
    let tls = Tls::new();
    let aws = or_exit(aws_config(&tls).await);
    let env = or_exit(Environment::load(&aws).await.map_err(InitError::from));
    ColdStart { tls, aws, env }
}

/// Serves HTTP invocations until the sandbox is shut down. Handlers answer every request
/// themselves (errors included), so the runtime never sees an `Err`. The invocation's metrics are
/// written before its answer is returned: the sandbox may be frozen right after.
pub async fn serve<F>(handle: impl Fn(Request) -> F) -> Result<(), lambda_http::Error>
where
    F: Future<Output = Response<Body>> + Send,
{
    lambda_http::run(service_fn(|request: Request| {
        let answer = handle(request);
        async move {
            let answer = answer.await;
            metrics::flush();
            Ok::<_, lambda_http::Error>(answer)
        }
    }))
    .await
}

/// Serves invocations of a non-HTTP event (a stream batch, a schedule) until the sandbox is shut
/// down, writing each one's metrics before it returns.
pub async fn serve_events<E, R, F>(
    handle: impl Fn(lambda_runtime::LambdaEvent<E>) -> F,
) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned + Send,
    R: serde::Serialize,
    F: Future<Output = Result<R, lambda_runtime::Error>> + Send,
{
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<E>| {
            let answer = handle(event);
            async move {
                let answer = answer.await;
                metrics::flush();
                answer
            }
        },
    ))
    .await
}

/// The value, or the one log line that says why there is none, then exit.
pub fn or_exit<T>(result: Result<T, InitError>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => {
            match &err {
                InitError::Config(config) => {
                    tracing::error!(variable = config.variable(), error = %err, "cold start failed")
                }
                InitError::HttpClient(_) => tracing::error!(error = %err, "cold start failed"),
            }
            std::process::exit(1);
        }
    }
}
