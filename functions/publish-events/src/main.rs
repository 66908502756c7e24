//! the connections table's DynamoDB stream → EventBridge — see
//! `nango_connect::handlers::publish_events`.

use lambda_runtime::LambdaEvent;
use nango_connect::events::stream::StreamEvent;
use nango_connect::handlers::publish_events::PublishEvents;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let cold = bootstrap::start(metrics::function::PUBLISH_EVENTS).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(PublishEvents::from_env(&cold.env, eventbridge));
    // The handler answers every batch itself (failures as batchItemFailures); only an event that
    // is not a stream batch at all reaches the runtime as an error.
    bootstrap::serve_events(|event: LambdaEvent<StreamEvent>| {
        let handler = &handler;
        async move { Ok::<_, lambda_runtime::Error>(handler.handle(event.payload).await) }
    })
    .await
}
