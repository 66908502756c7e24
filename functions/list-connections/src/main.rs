//! GET /connections — see `nango_connect::handlers::list_connections`.

use nango_connect::handlers::list_connections::ListConnections;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = bootstrap::start(metrics::function::LIST_CONNECTIONS).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(ListConnections::from_env(&cold.env, dynamodb));
    bootstrap::serve(|request| handler.handle(request)).await
}
