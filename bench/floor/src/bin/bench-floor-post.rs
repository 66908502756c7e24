//! The benchmark's yardstick for the functions that call Nango: the floor plus one JSON POST to
//! `NANGO_HOST/connect/sessions` over the functions' HTTP stack (`nango_connect::transport`), its
//! answer read as JSON. What this costs above the floor is one HTTP exchange's share; what
//! create-session costs above this is our own code's.

use lambda_http::{Body, Error, Request, Response, service_fn};
use nango_connect::transport::Tls;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let client = Tls::new().client_builder().build()?;
    let url = format!("{}/connect/sessions", std::env::var("NANGO_HOST")?);
    let secret = std::env::var("NANGO_SECRET_KEY")?;
    let (client, url, secret) = (&client, url.as_str(), secret.as_str());
    lambda_http::run(service_fn(move |_: Request| async move {
        // The body create-session sends: the owner as tags, one integration.
        let body = serde_json::json!({
            "tags": {
                "end_user_id": "bench",
                "end_user_email": "bench@example.com",
                "organization_id": "bench-org",
            },
            "allowed_integrations": ["github"],
        });
        let answer: serde_json::Value = client
            .post(url)
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok::<_, Error>(Response::new(Body::from(answer.to_string())))
    }))
    .await
}
