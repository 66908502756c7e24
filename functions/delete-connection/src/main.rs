//! DELETE /connections/{connectionId} — see `nango_connect::handlers::delete_connection`.

use nango_connect::handlers::delete_connection::DeleteConnection;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = bootstrap::start(metrics::function::DELETE_CONNECTION).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&cold.aws);
    let handler = bootstrap::or_exit(DeleteConnection::from_env(&cold.env, &cold.tls, dynamodb));
    bootstrap::serve(|request| handler.handle(request)).await
}
