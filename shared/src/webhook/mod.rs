//! Nango's webhooks: verify the signature over the raw bytes, then (and only then) parse.
//!
//! [`signature::verify`] must pass before [`payload::parse`] sees a byte; the handler enforces the
//! order. Parsing never fails on what Nango may add later: unknown types, operations and fields are
//! acknowledged and ignored.

pub mod keys;
pub mod payload;
pub mod signature;

pub use keys::SigningKeys;
pub use payload::{FailedCreation, Notice, PayloadError, parse};
pub use signature::{SIGNATURE_HEADER, SignatureError, verify};
