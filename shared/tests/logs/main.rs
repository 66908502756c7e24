//! The log capture test, in a process of its own: `tracing` caches whether a log line is enabled
//! per call site, for the whole process, and a subscriber set for one test thread cannot see the
//! lines whose call sites other test threads registered first. Alone here, it sees every line.

// Test helpers panic on purpose: a failed expectation is a failed test. Most of the shared
// harness serves the other integration tests, not this one.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../it/contract.rs"]
mod contract;
mod logs;
#[path = "../it/support.rs"]
mod support;
