//! `POST /sessions` — see `nango_connect::handlers::create_session`.

use nango_connect::handlers::create_session::CreateSession;
use nango_connect::{bootstrap, metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = bootstrap::start(metrics::function::CREATE_SESSION).await;
    let handler = bootstrap::or_exit(CreateSession::from_env(
        &cold.env,
        &cold.tls,
        aws_sdk_dynamodb::Client::new(&cold.aws),
    ));
    bootstrap::serve(|request| handler.handle(request)).await
}
