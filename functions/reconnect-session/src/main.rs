//! POST /sessions/reconnect — see `nango_connect::handlers::reconnect_session`.

use nango_connect::handlers::reconnect_session::ReconnectSession;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = bootstrap::start(metrics::function::RECONNECT_SESSION).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(ReconnectSession::from_env(&cold.env, &cold.tls, dynamodb));
    bootstrap::serve(|request| handler.handle(request)).await
}
