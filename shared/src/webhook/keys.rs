//! The signing keys a webhook is checked against, and how they follow a rotation.
//!
//! Deployed, the keys come from the Secrets Manager secret, read once at cold start. When the key is
//! rotated in Nango (and then in the secret), a warm container holds the old keys; a 401 would lose
//! the webhook for good, since Nango never retries a 4xx. So a signature that matches no key held
//! makes us read the secret again and check once more, at most once per [`RELOAD_INTERVAL`] per
//! container, so that a flood of forged requests cannot turn into a flood of Secrets Manager calls.
//!
//! We answer 401 only when the keys were read for this very request; otherwise the keys held may
//! predate a rotation, and the answer is [`SignatureError::KeysMayBeStale`] (503), which Nango
//! retries after 3 s and again 6 s later. Whoever floods the URL with bad signatures may take the
//! reads, but every read after the rotation fetches the new key: by a genuine webhook's third
//! attempt, at least 9 s after its first and so more than one interval later, either someone read
//! the new key since the first attempt or a read is due again. A rotation loses no webhook.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::signature::{self, SignatureError};
use crate::bootstrap::SecretSource;
use crate::config::WebhookConfig;

/// At most one read of the secret per interval per container: under a flood of forgeries, 12 a
/// minute. Below Nango's shortest retry spacing (3 s, then 6 s) with room to spare: see above.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

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
            return Err(SignatureError::KeysMayBeStale);
        }
        let keys = match reload.read().await {
            Ok(keys) => keys,
            Err(err) => {
                tracing::error!(error = %err, "could not read the signing keys again; keeping the ones held");
                return Err(SignatureError::KeysMayBeStale);
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
