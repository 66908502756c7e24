//! The benchmark's second yardstick: the floor plus the one DynamoDB write that storing a webhook
//! costs — a conditional PutItem of a connection-sized item, through the same AWS SDK
//! configuration and HTTP stack as the functions (`nango_connect::bootstrap::aws_config`). What
//! this costs above the floor is the AWS SDK's share; what webhook-receiver costs above this is
//! our own code's.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use nango_connect::bootstrap;
use nango_connect::transport::Tls;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let aws = bootstrap::aws_config(&Tls::new()).await?;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = std::env::var("CONNECTIONS_TABLE")?;
    let (client, table) = (&client, table.as_str());
    lambda_http::run(service_fn(move |request: Request| async move {
        // A new key each time, as each of the benchmark's webhooks is about a new connection.
        let id = request.lambda_context().request_id;
        let text = |value: &str| AttributeValue::S(value.to_owned());
        let tags = [("end_user_id", "bench"), ("organization_id", "bench-org")]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), text(value)))
            .collect();
        client
            .put_item()
            .table_name(table)
            .item("connectionId", AttributeValue::S(id))
            .item("integrationId", text("github"))
            .item("provider", text("github"))
            .item("authMode", text("OAUTH2"))
            .item("environment", text("dev"))
            .item("endUserId", text("bench"))
            .item("organizationId", text("bench-org"))
            .item("status", text("active"))
            .item("createdAt", text("2026-11-30T00:00:00.000Z"))
            .item("updatedAt", text("2026-11-30T00:00:00.000Z"))
            .item("tags", AttributeValue::M(tags))
            .item("version", AttributeValue::N("1".to_owned()))
            .condition_expression("attribute_not_exists(connectionId)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await?;
        Ok::<_, Error>(Response::new(Body::from(request.body().as_ref().to_vec())))
    }))
    .await
}
