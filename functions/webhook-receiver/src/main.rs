//! the webhook function URL (any path) — see `nango_connect::handlers::webhook_receiver`.

use nango_connect::handlers::webhook_receiver::WebhookReceiver;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = bootstrap::start(metrics::function::WEBHOOK_RECEIVER).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&cold.aws);
    let eventbridge = aws_sdk_eventbridge::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(WebhookReceiver::from_env(
        &cold.env,
        &cold.tls,
        dynamodb,
        eventbridge,
    ));
    bootstrap::serve(|request| handler.handle(request)).await
}
