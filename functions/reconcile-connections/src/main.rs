//! Scheduled (and on demand): reconcile the connections table with Nango's listing — see
//! `nango_connect::reconcile`. Any event is accepted (a scheduler event, `{}`); the answer is the
//! run's summary.

use lambda_runtime::LambdaEvent;
use nango_connect::handlers::reconcile_connections::ReconcileConnections;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let cold = bootstrap::start(metrics::function::RECONCILE_CONNECTIONS).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(ReconcileConnections::from_env(
        &cold.env, &cold.tls, dynamodb,
    ));
    bootstrap::serve_events(|event: LambdaEvent<serde_json::Value>| {
        let handler = &handler;
        async move {
            handler
                .handle(event.context.deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    })
    .await
}
