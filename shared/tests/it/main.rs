//! Integration tests: the handlers against DynamoDB Local and a wiremock Nango, driven with
//! recorded Lambda events. Run through `scripts/test`, which starts DynamoDB Local.

// Test helpers panic on purpose: a failed expectation is a failed test.
#![allow(clippy::unwrap_used)]

mod access;
mod contract;
mod delete;
mod dynamo_proxy;
mod events;
mod limits;
mod list;
mod reconcile;
mod reconnect;
mod sessions;
mod storage;
mod support;
mod tombstones;
mod trust;
mod webhooks;
