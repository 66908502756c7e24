//! The reconciliation benchmark: how many connections a run reconciles per second, against
//! DynamoDB Local and the Nango emulator (both started by `scripts/bench-reconcile`, which
//! documents the variables). A benchmark, not a test: it prints a table and judges nothing.
//!
//! A first, unprinted round of 200 connections warms DynamoDB Local's JVM up. Then for each size
//! N: a fresh table and a fresh emulator holding N connections whose creation
//! webhooks were all lost (10% with broken credentials), then three runs:
//! - `all new`: every connection stored;
//! - `unchanged`: a second run over the same Nango, which writes nothing;
//! - `5% changed, 1% deleted`: refresh failures and deletions that no webhook reported.

use std::time::{Duration, Instant};

use nango_connect::bootstrap;
use nango_connect::config::NangoConfig;
use nango_connect::handlers::reconcile_connections::NANGO_TIMEOUTS;
use nango_connect::nango::NangoClient;
use nango_connect::reconcile::{Reconciler, Settings, Summary};
use nango_connect::store::ConnectionStore;
use nango_connect::transport::Tls;
use serde_json::{Value, json};

const TABLE_DEFINITION: &str = include_str!("../../infra/dynamodb/connections-table.json");
const TABLE_TTL: &str = include_str!("../../infra/dynamodb/connections-table-ttl.json");

type Error = Box<dyn std::error::Error>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| format!("{name} is required (run scripts/bench-reconcile)").into())
}

// The scheduler, TLS configuration and AWS SDK configuration of the function itself.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let dynamodb = env("AWS_ENDPOINT_URL_DYNAMODB")?;
    let nango_host = env("NANGO_HOST")?;
    let secret_key = env("NANGO_SECRET_KEY")?;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|n| n.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![2_000, 10_000]
    } else {
        sizes
    };
    let tls = Tls::new();
    let aws = bootstrap::aws_config(&tls).await?;
    let http = tls.client_builder().build()?;
    let mut config = NangoConfig::from_source(&[
        ("NANGO_HOST", nango_host.as_str()),
        ("NANGO_SECRET_KEY", secret_key.as_str()),
    ])?;
    config.timeouts = NANGO_TIMEOUTS;
    let settings = Settings {
        // No replica behind the emulator; and every deletion confirmed in the run that finds it.
        grace: Duration::ZERO,
        max_confirmations: 10_000,
        ..Settings::default()
    };

    println!(
        "{:<24}{:>12}{:>7}{:>8}{:>10}{:>10}{:>10}{:>12}",
        "run", "connections", "pages", "writes", "deleted", "requests", "seconds", "rows/s"
    );
    let rounds = std::iter::once((200, false)).chain(sizes.iter().map(|&size| (size, true)));
    for (round, (size, shown)) in rounds.enumerate() {
        let table = format!("reconcile-bench-{}-{round}", std::process::id());
        create_table(&http, &dynamodb, &table).await?;
        let store = ConnectionStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
        let reconciler = Reconciler::new(NangoClient::new(&config, &tls)?, store, settings.clone());

        control(&http, &nango_host, "POST", "/_emulator/reset", json!({})).await?;
        control(
            &http,
            &nango_host,
            "POST",
            "/_emulator/config",
            json!({"webhookUrls": []}),
        )
        .await?;
        let specs: Vec<Value> = (0..size)
            .map(|i| {
                json!({"integration": "github", "webhook": false, "authError": i % 10 == 0,
                       "tags": {"end_user_id": format!("user-{}", i % 1000), "organization_id": format!("org-{}", i % 97)}})
            })
            .collect();
        // A few thousand a call keeps each request under the emulator's body limit.
        let mut ids: Vec<String> = Vec::with_capacity(size);
        for chunk in specs.chunks(2_000) {
            let body = json!({ "connections": chunk });
            let created =
                control(&http, &nango_host, "POST", "/_emulator/connections", body).await?;
            ids.extend(
                created["connections"]
                    .as_array()
                    .ok_or("the emulator answered no connections")?
                    .iter()
                    .filter_map(|row| row["connection_id"].as_str().map(str::to_owned)),
            );
        }

        measure("all new", size, &reconciler, shown).await?;
        measure("unchanged", size, &reconciler, shown).await?;
        for (i, id) in ids.iter().enumerate() {
            if i % 20 == 1 {
                let path = format!("/_emulator/connections/{id}/refresh-failure");
                control(&http, &nango_host, "POST", &path, json!({"webhook": false})).await?;
            } else if i % 100 == 2 {
                let path = format!("/_emulator/connections/{id}?webhook=false");
                control(&http, &nango_host, "DELETE", &path, json!({})).await?;
            }
        }
        measure("5% changed, 1% deleted", size, &reconciler, shown).await?;
    }
    Ok(())
}

async fn measure(
    name: &str,
    size: usize,
    reconciler: &Reconciler,
    shown: bool,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let summary = reconciler
        .run(tokio::time::Instant::now() + Duration::from_secs(3600))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !summary.complete || summary.write_failures > 0 {
        return Err(format!("{name}: the run did not finish cleanly: {summary:?}").into());
    }
    if !shown {
        return Ok(summary);
    }
    println!(
        "{:<24}{:>12}{:>7}{:>8}{:>10}{:>10}{:>10.2}{:>12.0}",
        name,
        size,
        summary.pages,
        summary.stored_new + summary.changed,
        summary.marked_deleted,
        summary.nango_requests,
        seconds,
        summary.seen as f64 / seconds
    );
    Ok(summary)
}

/// The table from its one definition, under another name, with its time to live (DynamoDB Local
/// checks no signature).
async fn create_table(http: &reqwest::Client, endpoint: &str, name: &str) -> Result<(), Error> {
    for (operation, input) in [
        ("CreateTable", TABLE_DEFINITION),
        ("UpdateTimeToLive", TABLE_TTL),
    ] {
        let mut input: Value = serde_json::from_str(input)?;
        input["TableName"] = json!(name);
        let response = http
            .post(endpoint)
            .header("X-Amz-Target", format!("DynamoDB_20120810.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(input.to_string())
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("{operation}: {}", response.text().await?).into());
        }
    }
    Ok(())
}

async fn control(
    http: &reqwest::Client,
    host: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value, Error> {
    let response = http
        .request(method.parse()?, format!("{host}{path}"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(format!("{method} {path}: {status} {text}").into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}
