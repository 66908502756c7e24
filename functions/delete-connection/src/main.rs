//! DELETE /connections/{connectionId} — see `nango_connect::handlers::delete_connection`.

use nango_connect::bootstrap;
use nango_connect::handlers::delete_connection::DeleteConnection;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (aws, env) = bootstrap::start().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let handler = bootstrap::or_exit(DeleteConnection::from_env(&env, dynamodb));
    bootstrap::serve(|request| handler.handle(request)).await
}
