//! The backend half of Nango's Connect flow, shared by the Lambda functions.
//!
//! Read top to bottom: [`identity`] says who calls, [`access`] what they may do, [`nango`] asks Nango for session tokens,
//! [`webhook`] verifies and reads what Nango reports back, [`connection`] decides what that
//! changes, [`store`] keeps it in DynamoDB, [`reconcile`] recovers what lost webhooks never said, [`http`] turns results into answers, and [`handlers`]
//! wire it together, one per function. [`config`] and [`bootstrap`] run once per cold start.

pub mod access;
pub mod bootstrap;
pub mod config;
pub mod connection;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod nango;
pub mod reconcile;
pub mod store;
pub mod webhook;
