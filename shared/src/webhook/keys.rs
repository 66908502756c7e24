//! The signing keys a webhook is checked against, and how they follow a rotation.
//!
//! Deployed, the keys come from the Secrets Manager secret, read once at cold start. When the key is
//! rotated in Nango (and then in the secret), a warm container would refuse every webhook until it
//! is recycled — with a 401, which Nango never retries. So a signature that matches no key we hold
//! makes us read the secret again and check once more, at most once per [`RELOAD_INTERVAL`] per
//! container, so that a flood of forged requests cannot turn into a flood of Secrets Manager calls.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::signature::{self, SignatureError};
use crate::bootstrap::SecretSource;
use crate::config::WebhookConfig;

pub const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

pub struct SigningKeys {
    current: RwLock<Arc<[SecretString]>>,
    reload: Option<Reload>,
}

struct Reload {
    secret: SecretSource,
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl SigningKeys {
    /// Keys that never change (plain environment variables).
    pub fn fixed(keys: Vec<SecretString>) -> Self {
        SigningKeys {
            current: RwLock::new(keys.into()),
            reload: None,
        }
    }

    /// Keys read from `secret`, read again on a mismatch at most once per `interval`.
    pub fn reloading(keys: Vec<SecretString>, secret: SecretSource, interval: Duration) -> Self {
        SigningKeys {
            current: RwLock::new(keys.into()),
            reload: Some(Reload {
                secret,
                interval,
                last: Mutex::new(None),
            }),
        }
    }

    /// Checks `signature` against the keys we hold, and after a mismatch against the secret's
    /// current keys, when they may be read again.
    pub async fn verify(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        match signature::verify(signature, body, &self.keys()) {
            Err(SignatureError::Mismatch) => {}
            checked => return checked,
        }
        let Some(reload) = &self.reload else {
            return Err(SignatureError::Mismatch);
        };
        if !reload.due() {
            return Err(SignatureError::Mismatch);
        }
        let keys = match reload.read().await {
            Ok(keys) => keys,
            Err(err) => {
                tracing::error!(error = %err, "could not read the signing keys again; keeping the ones held");
                return Err(SignatureError::Mismatch);
            }
        };
        let verified = signature::verify(signature, body, &keys);
        tracing::info!(
            matched = verified.is_ok(),
            "signing keys read again after a signature matched none"
        );
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = keys.into();
        verified
    }

    fn keys(&self) -> Arc<[SecretString]> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Reload {
    /// Whether a read is allowed now; if so, the interval starts again.
    fn due(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            return false;
        }
        *last = Some(now);
        true
    }

    async fn read(&self) -> Result<Vec<SecretString>, crate::config::ConfigError> {
        let variables = self.secret.read().await?;
        Ok(WebhookConfig::from_source(&variables)?.signing_keys)
    }
}
