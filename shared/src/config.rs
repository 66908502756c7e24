//! Configuration, read from the environment once per cold start.
//!
//! Each function loads only the pieces it uses. A missing or malformed variable is a
//! [`ConfigError`] naming the variable — never its value, since some of them are secrets.

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;

use crate::nango::IntegrationId;
use crate::rate_limit::Rate;

pub const NANGO_HOST: &str = "NANGO_HOST";
pub const NANGO_SECRET_KEY: &str = "NANGO_SECRET_KEY";
pub const NANGO_WEBHOOK_SIGNING_KEY: &str = "NANGO_WEBHOOK_SIGNING_KEY";
pub const CONNECTIONS_TABLE: &str = "CONNECTIONS_TABLE";
pub const NANGO_ALLOWED_INTEGRATIONS: &str = "NANGO_ALLOWED_INTEGRATIONS";
pub const END_USER_ID_CLAIM: &str = "END_USER_ID_CLAIM";
pub const END_USER_EMAIL_CLAIM: &str = "END_USER_EMAIL_CLAIM";
pub const END_USER_NAME_CLAIM: &str = "END_USER_NAME_CLAIM";
pub const ORGANIZATION_ID_CLAIM: &str = "ORGANIZATION_ID_CLAIM";
pub const ORGANIZATION_ACCESS: &str = "ORGANIZATION_ACCESS";
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
pub const NANGO_ENVIRONMENT: &str = "NANGO_ENVIRONMENT";
pub const TOMBSTONE_RETENTION_DAYS: &str = "TOMBSTONE_RETENTION_DAYS";
pub const RATE_LIMIT_TABLE: &str = "RATE_LIMIT_TABLE";
pub const NANGO_REQUESTS_PER_MINUTE: &str = "NANGO_REQUESTS_PER_MINUTE";
pub const NANGO_BURST: &str = "NANGO_BURST";
pub const NANGO_USER_RESERVE: &str = "NANGO_USER_RESERVE";
pub const USER_REQUESTS_PER_MINUTE: &str = "USER_REQUESTS_PER_MINUTE";
pub const USER_BURST: &str = "USER_BURST";
pub const ORGANIZATION_REQUESTS_PER_MINUTE: &str = "ORGANIZATION_REQUESTS_PER_MINUTE";
pub const ORGANIZATION_BURST: &str = "ORGANIZATION_BURST";

const DEFAULT_NANGO_HOST: &str = "https://api.nango.dev";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl ConfigError {
    /// The variable at fault, for the one log line a failed cold start writes.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
        }
    }
}

/// Where the variables come from: the process environment in Lambda, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

/// A set variable with surrounding blanks removed; blank counts as unset.
pub(crate) fn optional(source: &impl Source, name: &'static str) -> Option<String> {
    source
        .get(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn required(source: &impl Source, name: &'static str) -> Result<String, ConfigError> {
    optional(source, name).ok_or(ConfigError::Missing(name))
}

/// A comma-separated list, blanks dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// How to reach Nango's API.
#[derive(Debug, Clone)]
pub struct NangoConfig {
    /// Base URL without a trailing slash.
    pub host: String,
    pub secret_key: SecretString,
    pub timeouts: NangoTimeouts,
}

/// Bounds on every call to Nango. The API functions run with a 15 s Lambda timeout, so the whole
/// budget (all attempts and waits) stays well under it.
#[derive(Debug, Clone, Copy)]
pub struct NangoTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub budget: Duration,
    pub max_attempts: u32,
    pub first_backoff: Duration,
}

impl Default for NangoTimeouts {
    fn default() -> Self {
        NangoTimeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(5),
            budget: Duration::from_secs(9),
            max_attempts: 4,
            first_backoff: Duration::from_millis(200),
        }
    }
}

impl NangoConfig {
    /// The webhook receiver's bounds: it confirms what a webhook claims within
    /// [`crate::confirmation::CONFIRMATION_BUDGET`], inside its 10 s Lambda timeout and far inside
    /// Nango's 20 s per delivery.
    pub fn for_webhooks(mut self) -> Self {
        self.timeouts = NangoTimeouts {
            attempt: Duration::from_secs(2),
            budget: Duration::from_secs(4),
            max_attempts: 3,
            ..self.timeouts
        };
        self
    }

    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let host = optional(source, NANGO_HOST).unwrap_or_else(|| DEFAULT_NANGO_HOST.to_owned());
        if !(is_https_url(&host) || is_loopback_http(&host)) {
            return Err(ConfigError::Invalid {
                name: NANGO_HOST,
                reason: "must be an https:// URL (http:// only on this machine: 127.0.0.1, localhost, [::1]), since the secret key travels with every call".to_owned(),
            });
        }
        Ok(NangoConfig {
            host: host.trim_end_matches('/').to_owned(),
            secret_key: required(source, NANGO_SECRET_KEY)?.into(),
            timeouts: NangoTimeouts::default(),
        })
    }
}

/// `https://host[:port][/path]`: a host name or IPv4 address, no credentials, query or fragment.
/// The template's `NangoHost` pattern says the same, and both are tested against one list of cases.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|port| {
            (1..=5).contains(&port.len()) && port.chars().all(|c| c.is_ascii_digit())
        })
        && !path
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(ipv6) => ipv6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The keys a webhook may be signed with: during a rotation, the old and the new one.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub signing_keys: Vec<SecretString>,
    /// `NANGO_ENVIRONMENT` (e.g. `prod`): only auth webhooks of this environment are applied;
    /// unset or empty, any. Two environments' signing keys in one list must never let one
    /// environment's webhooks change the other's connections.
    pub environment: Option<String>,
}

impl WebhookConfig {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let value = required(source, NANGO_WEBHOOK_SIGNING_KEY)?;
        let signing_keys: Vec<SecretString> =
            list(&value).map(|key| key.to_owned().into()).collect();
        if signing_keys.is_empty() {
            // Every webhook would be refused, and Nango never retries a refusal.
            return Err(ConfigError::Invalid {
                name: NANGO_WEBHOOK_SIGNING_KEY,
                reason: "names no key".to_owned(),
            });
        }
        Ok(WebhookConfig {
            signing_keys,
            environment: optional(source, NANGO_ENVIRONMENT),
        })
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub table: String,
    /// How long a tombstone is kept after its deletion (DynamoDB's time to live then removes it).
    pub tombstone_retention: Duration,
}

/// The bounds of `TOMBSTONE_RETENTION_DAYS` (the template's `TombstoneRetentionDays` says the
/// same). At least a day: a tombstone is what refuses a late webhook for a deleted connection.
pub const TOMBSTONE_RETENTION_DAYS_RANGE: std::ops::RangeInclusive<u64> = 1..=3650;
const DEFAULT_TOMBSTONE_RETENTION_DAYS: u64 = 30;
const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

impl StoreConfig {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let days = match optional(source, TOMBSTONE_RETENTION_DAYS) {
            None => DEFAULT_TOMBSTONE_RETENTION_DAYS,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|days| TOMBSTONE_RETENTION_DAYS_RANGE.contains(days))
                .ok_or_else(|| ConfigError::Invalid {
                    name: TOMBSTONE_RETENTION_DAYS,
                    reason: format!(
                        "must be a whole number of days from {} to {}",
                        TOMBSTONE_RETENTION_DAYS_RANGE.start(),
                        TOMBSTONE_RETENTION_DAYS_RANGE.end()
                    ),
                })?,
        };
        Ok(StoreConfig {
            table: required(source, CONNECTIONS_TABLE)?,
            tombstone_retention: Duration::from_secs(days * SECONDS_PER_DAY),
        })
    }
}

/// The token buckets: each caller's share, and the one budget for Nango (`rate_limit`). Without
/// `RATE_LIMIT_TABLE` there are none (tests of other things; the template always sets it).
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub table: String,
    pub nango: Rate,
    /// Tokens of the Nango budget that background calls leave for users.
    pub user_reserve: u32,
    pub user: Rate,
    pub organization: Rate,
}

/// Nango allows about 200 requests a minute per account (shared/docs/nango-api.md): the default
/// budget keeps a quarter of it for anything else using the same account.
pub const DEFAULT_NANGO_REQUESTS_PER_MINUTE: u32 = 150;

impl RateLimitConfig {
    pub fn from_source(source: &impl Source) -> Result<Option<Self>, ConfigError> {
        let Some(table) = optional(source, RATE_LIMIT_TABLE) else {
            return Ok(None);
        };
        let rate = |count, default_count, burst, default_burst| {
            Ok::<_, ConfigError>(Rate::per_minute(
                whole_number(source, count, default_count, 1..=100_000)?,
                whole_number(source, burst, default_burst, 1..=10_000)?,
            ))
        };
        Ok(Some(RateLimitConfig {
            table,
            nango: rate(
                NANGO_REQUESTS_PER_MINUTE,
                DEFAULT_NANGO_REQUESTS_PER_MINUTE,
                NANGO_BURST,
                15,
            )?,
            user_reserve: whole_number(source, NANGO_USER_RESERVE, 5, 0..=10_000)?,
            user: rate(USER_REQUESTS_PER_MINUTE, 20, USER_BURST, 10)?,
            organization: rate(
                ORGANIZATION_REQUESTS_PER_MINUTE,
                120,
                ORGANIZATION_BURST,
                30,
            )?,
        }))
    }
}

/// A whole number in `range`, or `default` when unset.
pub(crate) fn whole_number(
    source: &impl Source,
    name: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    let Some(value) = optional(source, name) else {
        return Ok(default);
    };
    value
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!(
                "must be a whole number in {}..={}",
                range.start(),
                range.end()
            ),
        })
}

/// The EventBridge bus the receiver and the stream consumer publish to (its name, or its ARN).
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub bus_name: String,
}

impl EventsConfig {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(EventsConfig {
            bus_name: required(source, EVENT_BUS_NAME)?,
        })
    }
}

/// Which JWT claims name the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub end_user_id: String,
    pub end_user_email: String,
    pub end_user_name: String,
    pub organization_id: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            end_user_id: "sub".to_owned(),
            end_user_email: "email".to_owned(),
            end_user_name: "name".to_owned(),
            organization_id: "org_id".to_owned(),
        }
    }
}

impl ClaimNames {
    pub fn from_source(source: &impl Source) -> Self {
        let defaults = ClaimNames::default();
        let pick = |name, default| optional(source, name).unwrap_or(default);
        ClaimNames {
            end_user_id: pick(END_USER_ID_CLAIM, defaults.end_user_id),
            end_user_email: pick(END_USER_EMAIL_CLAIM, defaults.end_user_email),
            end_user_name: pick(END_USER_NAME_CLAIM, defaults.end_user_name),
            organization_id: pick(ORGANIZATION_ID_CLAIM, defaults.organization_id),
        }
    }
}

/// The integrations a client may ask a session for, and reconnect. `None`: no restriction of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedIntegrations(pub Option<BTreeSet<IntegrationId>>);

impl AllowedIntegrations {
    /// Whether `id` may be offered or reconnected: always, when no list is set.
    pub fn permits(&self, id: &IntegrationId) -> bool {
        self.0.as_ref().is_none_or(|allowed| allowed.contains(id))
    }

    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let Some(value) = optional(source, NANGO_ALLOWED_INTEGRATIONS) else {
            return Ok(AllowedIntegrations(None));
        };
        let ids = list(&value)
            .map(|id| {
                IntegrationId::parse(id).map_err(|reason| ConfigError::Invalid {
                    name: NANGO_ALLOWED_INTEGRATIONS,
                    reason: reason.to_owned(),
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        if ids.is_empty() {
            return Ok(AllowedIntegrations(None));
        }
        Ok(AllowedIntegrations(Some(ids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn nango_host_defaults_to_nango_cloud_and_loses_its_trailing_slash() {
        let config = NangoConfig::from_source(&[(NANGO_SECRET_KEY, "k")]).unwrap();
        assert_eq!(config.host, "https://api.nango.dev");
        let config = NangoConfig::from_source(&[
            (NANGO_SECRET_KEY, "k"),
            (NANGO_HOST, "http://127.0.0.1:3003/"),
        ])
        .unwrap();
        assert_eq!(config.host, "http://127.0.0.1:3003");
    }

    /// The same cases the template's `NangoHost` pattern is tested against.
    #[derive(serde::Deserialize)]
    struct HostCases {
        deployable: Vec<String>,
        local_only: Vec<String>,
        refused: Vec<String>,
    }

    #[test]
    fn nango_host_is_https_or_plain_http_on_this_machine_only() {
        let cases: HostCases = serde_json::from_str(include_str!(
            "../../infra/template-tests/nango-host-cases.json"
        ))
        .unwrap();
        let accepts = |host: &str| {
            NangoConfig::from_source(&[(NANGO_SECRET_KEY, "k"), (NANGO_HOST, host)]).is_ok()
        };
        for host in cases.deployable.iter().chain(&cases.local_only) {
            assert!(accepts(host), "{host}");
        }
        for host in &cases.refused {
            // Blank means "not set": the default then applies.
            if !host.trim().is_empty() {
                assert!(!accepts(host), "{host}");
            }
        }
    }

    #[test]
    fn missing_secret_key_names_the_variable() {
        let err =
            NangoConfig::from_source(&[(NANGO_HOST, "https://nango.example.com")]).unwrap_err();
        assert_eq!(err.variable(), NANGO_SECRET_KEY);
        assert!(err.to_string().contains(NANGO_SECRET_KEY));
    }

    #[test]
    fn malformed_host_is_rejected_without_echoing_secrets() {
        let err = NangoConfig::from_source(&[
            (NANGO_SECRET_KEY, "super-secret-value"),
            (NANGO_HOST, "nango.example.com"),
        ])
        .unwrap_err();
        assert_eq!(err.variable(), NANGO_HOST);
        assert!(!err.to_string().contains("super-secret-value"));
        let debug = format!(
            "{:?}",
            NangoConfig::from_source(&[(NANGO_SECRET_KEY, "super-secret-value")])
        );
        assert!(!debug.contains("super-secret-value"), "{debug}");
    }

    #[test]
    fn signing_keys_accept_a_rotation_list() {
        let config =
            WebhookConfig::from_source(&[(NANGO_WEBHOOK_SIGNING_KEY, " old-key , new-key ,")])
                .unwrap();
        let keys: Vec<_> = config
            .signing_keys
            .iter()
            .map(|k| k.expose_secret().to_owned())
            .collect();
        assert_eq!(keys, ["old-key", "new-key"]);
        for empty in ["  ", ",", " , ,"] {
            let err =
                WebhookConfig::from_source(&[(NANGO_WEBHOOK_SIGNING_KEY, empty)]).unwrap_err();
            assert_eq!(err.variable(), NANGO_WEBHOOK_SIGNING_KEY);
        }
    }

    #[test]
    fn tombstone_retention_defaults_to_30_days_and_is_validated() {
        let table = (CONNECTIONS_TABLE, "t");
        let days = |n: u64| Duration::from_secs(n * 86_400);
        assert_eq!(
            StoreConfig::from_source(&[table])
                .unwrap()
                .tombstone_retention,
            days(30)
        );
        assert_eq!(
            crate::store::DEFAULT_TOMBSTONE_RETENTION,
            days(30),
            "the store's default is the configuration's"
        );
        for (value, expected) in [(" 7 ", 7), ("1", 1), ("3650", 3650), ("", 30)] {
            let config =
                StoreConfig::from_source(&[table, (TOMBSTONE_RETENTION_DAYS, value)]).unwrap();
            assert_eq!(config.tombstone_retention, days(expected), "{value:?}");
        }
        for value in ["0", "3651", "-1", "1.5", "thirty", "30d"] {
            let err =
                StoreConfig::from_source(&[table, (TOMBSTONE_RETENTION_DAYS, value)]).unwrap_err();
            assert_eq!(err.variable(), TOMBSTONE_RETENTION_DAYS, "{value:?}");
        }
    }

    #[test]
    fn claim_names_default_and_override() {
        assert_eq!(ClaimNames::from_source(&[]), ClaimNames::default());
        let names = ClaimNames::from_source(&[(ORGANIZATION_ID_CLAIM, "custom:org")]);
        assert_eq!(names.organization_id, "custom:org");
        assert_eq!(names.end_user_id, "sub");
    }

    #[test]
    fn allowed_integrations_parse_as_a_set() {
        assert_eq!(
            AllowedIntegrations::from_source(&[]).unwrap(),
            AllowedIntegrations(None)
        );
        let allowed = AllowedIntegrations::from_source(&[(
            NANGO_ALLOWED_INTEGRATIONS,
            "github, linear,github",
        )])
        .unwrap();
        let ids: Vec<_> = allowed
            .0
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        assert_eq!(ids, ["github", "linear"]);
    }
}
