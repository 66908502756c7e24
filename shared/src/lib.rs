//! The backend half of Nango's Connect flow, shared by the Lambda functions.
//!
//! Read top to bottom: [`identity`] says who calls, [`access`] what they may do, [`nango`] asks Nango for session tokens,
//! [`webhook`] verifies and reads what Nango reports back, [`connection`] decides what that
//! changes, [`store`] keeps it in DynamoDB, [`reconcile`] recovers what lost webhooks never said,
//! [`http`] turns results into answers, and [`handlers`] wire it together, one per function.
//! [`events`] publishes what changed to EventBridge. [`config`] and [`bootstrap`] run once per cold
//! start, and [`transport`] is the one HTTPS stack that the Nango client and the AWS SDK share.

pub mod access;
pub mod bootstrap;
pub mod config;
pub mod confirmation;
pub mod connection;
pub mod events;
#[cfg(test)]
mod fuzzing;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod nango;
pub mod rate_limit;
pub mod reconcile;
pub mod store;
pub mod transport;
pub mod webhook;
