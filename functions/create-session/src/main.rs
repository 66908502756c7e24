//! `POST /sessions` — see `nango_connect::handlers::create_session`.

use nango_connect::bootstrap;
use nango_connect::handlers::create_session::CreateSession;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (_aws, env) = bootstrap::start().await;
    let handler = bootstrap::or_exit(CreateSession::from_env(&env));
    bootstrap::serve(|request| handler.handle(request)).await
}
