//! The reconciliation benchmark: how fast a pass reconciles, what it asks of Nango and DynamoDB,
//! how many runs it takes and how much memory a run holds, against DynamoDB Local and the Nango
//! emulator (both started by `scripts/bench-reconcile`, which documents the variables). A
//! benchmark, not a test: it prints a table and judges nothing.
//!
//! A first, unprinted round of 200 connections warms DynamoDB Local's JVM up. Then for each size
//! N: a fresh table and a fresh emulator holding N connections whose creation webhooks were all
//! lost (10% with broken credentials), then three passes:
//! - `all new`: every connection stored;
//! - `unchanged`: a pass over the same Nango, which writes nothing;
//! - `1% changed, 0.1% deleted`: refresh failures and deletions that no webhook reported.
//!
//! Each run is its own process (this binary with `--run <table>`), as each scheduled invocation is
//! its own Lambda invocation: the peak RSS column is that process's `VmHWM`, the reconciler's
//! alone, with the function's scheduler, TLS, SDK configuration, settings and deadline (the
//! function's 300 s timeout less its 20 s margin). Runs are repeated until the pass ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use nango_connect::bootstrap;
use nango_connect::config::NangoConfig;
use nango_connect::handlers::reconcile_connections::NANGO_TIMEOUTS;
use nango_connect::nango::NangoClient;
use nango_connect::reconcile::{MAX_CONFIRMATIONS, Reconciler, Settings};
use nango_connect::store::ConnectionStore;
use nango_connect::transport::Tls;
use serde_json::{Value, json};

const TABLE_DEFINITION: &str = include_str!("../../infra/dynamodb/connections-table.json");
const TABLE_TTL: &str = include_str!("../../infra/dynamodb/connections-table-ttl.json");
/// The function's timeout (template.yaml) less the margin its handler keeps.
const RUN_TIME: Duration = Duration::from_secs(300 - 20);

type Error = Box<dyn std::error::Error>;

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| format!("{name} is required (run scripts/bench-reconcile)").into())
}

// The scheduler of the function itself.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, table] = args.as_slice()
        && flag == "--run"
    {
        return one_run(table).await;
    }
    let sizes: Vec<usize> = args.iter().map(|n| n.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![2_000, 10_000]
    } else {
        sizes
    };
    drive(&sizes).await
}

/// One run, in this process, as the function would make it; prints its summary, the DynamoDB
/// requests it sent and its peak RSS as one JSON line.
async fn one_run(table: &str) -> Result<(), Error> {
    let tls = Tls::new();
    let aws = bootstrap::aws_config(&tls).await?;
    let requests = Arc::new(AtomicU64::new(0));
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&aws)
        .interceptor(CountRequests(requests.clone()))
        .build();
    let mut config = NangoConfig::from_source(&[
        ("NANGO_HOST", env("NANGO_HOST")?.as_str()),
        ("NANGO_SECRET_KEY", env("NANGO_SECRET_KEY")?.as_str()),
    ])?;
    config.timeouts = NANGO_TIMEOUTS;
    let settings = Settings {
        // No replica behind the emulator; and every deletion confirmed by the pass that finds it.
        grace: Duration::ZERO,
        max_confirmations: MAX_CONFIRMATIONS,
        ..Settings::default()
    };
    let reconciler = Reconciler::new(
        NangoClient::new(&config, &tls)?,
        ConnectionStore::new(aws_sdk_dynamodb::Client::from_conf(dynamodb), table),
        settings,
    );
    let summary = reconciler
        .run(tokio::time::Instant::now() + RUN_TIME)
        .await?;
    println!(
        "{}",
        json!({
            "summary": summary,
            "dynamodb_requests": requests.load(Ordering::Relaxed),
            "peak_rss_kib": peak_rss_kib(),
        })
    );
    Ok(())
}

/// Every request sent to DynamoDB, retries included.
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `VmHWM` of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn drive(sizes: &[usize]) -> Result<(), Error> {
    let dynamodb = env("AWS_ENDPOINT_URL_DYNAMODB")?;
    let nango_host = env("NANGO_HOST")?;
    // Node closes a connection idle for 5 s (its keepAliveTimeout), as long as a pass can take:
    // a pooled connection must not outlive that.
    let http = Tls::new()
        .client_builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()?;
    println!(
        "| pass | connections | runs | seconds | rows/s | writes | deleted | Nango requests | DynamoDB requests | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rounds = std::iter::once((200, false)).chain(sizes.iter().map(|&size| (size, true)));
    for (round, (size, shown)) in rounds.enumerate() {
        let table = format!("reconcile-bench-{}-{round}", std::process::id());
        create_table(&http, &dynamodb, &table).await?;
        control(&http, &nango_host, "POST", "/_emulator/reset", json!({})).await?;
        control(
            &http,
            &nango_host,
            "POST",
            "/_emulator/config",
            json!({"webhookUrls": []}),
        )
        .await?;
        let mut ids: Vec<String> = Vec::with_capacity(size);
        // A few thousand a call keeps each request under the emulator's body limit.
        for first in (0..size).step_by(2_000) {
            let specs: Vec<Value> = (first..size.min(first + 2_000))
                .map(|i| {
                    json!({"integration": "github", "webhook": false, "authError": i % 10 == 0,
                           "tags": {"end_user_id": format!("user-{}", i % 1000), "organization_id": format!("org-{}", i % 97)}})
                })
                .collect();
            let body = json!({ "connections": specs });
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

        pass("all new", size, &table, shown)?;
        pass("unchanged", size, &table, shown)?;
        for (i, id) in ids.iter().enumerate() {
            if i % 100 == 1 {
                let path = format!("/_emulator/connections/{id}/refresh-failure");
                control(&http, &nango_host, "POST", &path, json!({"webhook": false})).await?;
            } else if i % 1000 == 2 {
                let path = format!("/_emulator/connections/{id}?webhook=false");
                control(&http, &nango_host, "DELETE", &path, json!({})).await?;
            }
        }
        pass("1% changed, 0.1% deleted", size, &table, shown)?;
    }
    Ok(())
}

/// Runs until the pass ends, each run its own process; prints one row.
fn pass(name: &str, size: usize, table: &str, shown: bool) -> Result<(), Error> {
    let me = std::env::current_exe()?;
    let (mut runs, mut seconds, mut seen, mut writes, mut deleted) = (0u32, 0.0, 0u64, 0u64, 0u64);
    let (mut nango, mut dynamodb, mut peak) = (0u64, 0u64, 0u64);
    loop {
        let started = Instant::now();
        let output = std::process::Command::new(&me)
            .args(["--run", table])
            .stderr(std::process::Stdio::inherit())
            .output()?;
        seconds += started.elapsed().as_secs_f64();
        if !output.status.success() {
            return Err(format!("{name}: a run failed ({})", output.status).into());
        }
        let line: Value = serde_json::from_slice(&output.stdout)?;
        let summary: &Value = &line["summary"];
        let count = |field: &str| summary[field].as_u64().unwrap_or(0);
        runs += 1;
        seen += count("seen");
        writes += count("stored_new") + count("changed") + count("restored");
        deleted += count("marked_deleted");
        nango += count("nango_requests");
        dynamodb += line["dynamodb_requests"].as_u64().unwrap_or(0);
        peak = peak.max(line["peak_rss_kib"].as_u64().unwrap_or(0));
        if count("write_failures") > 0 {
            return Err(format!("{name}: writes failed: {summary}").into());
        }
        if summary["complete"] == true {
            break;
        }
        if runs >= 20 {
            return Err(format!("{name}: no end after {runs} runs: {summary}").into());
        }
    }
    if shown {
        println!(
            "| {name} | {size} | {runs} | {seconds:.1} | {:.0} | {writes} | {deleted} | {nango} | {dynamodb} | {:.1} |",
            seen as f64 / seconds,
            peak as f64 / 1024.0
        );
    }
    Ok(())
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
