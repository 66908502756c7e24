//! Fair shares and one budget for Nango: token buckets kept in DynamoDB, shared by every sandbox
//! of every function.
//!
//! - [`CallerLimits`]: each end user, and separately each organization, gets its own rate of
//!   Nango-calling requests (`POST /sessions`, `POST /sessions/reconnect`,
//!   `DELETE /connections/{id}`), so one busy caller cannot take everyone's share.
//! - [`NangoBudget`]: every request to Nango's API, from every function, takes from one bucket
//!   kept under Nango's per-account rate limit. User-facing calls may empty it; background calls
//!   (webhook confirmations, reconciliation) only take what is above a reserve kept for users. A
//!   429 from Nango drains it for the `Retry-After` Nango asked for, for every function.
//!
//! A bucket is one item holding GCRA's "theoretical arrival time" (`tat`), the token bucket in
//! one number: a request is allowed when `tat - now` is within the burst's tolerance, and moves
//! `tat` on by one interval. One conditional `UpdateItem` takes a token from an idle bucket, two
//! from a busy one; a refusal reads the old `tat` back from the failed condition, which says
//! exactly when a token will be free (`Retry-After`). Items expire by TTL an hour after their
//! last use. The buckets live in a table of their own: a write to the connections table would
//! reach its stream, and publish-events would be invoked for every request.
//!
//! A bucket that cannot be read (DynamoDB failing) admits: the limits protect Nango and other
//! users, and failing closed would turn a DynamoDB blip into refusals for everyone. Nango's own
//! 429 stays the backstop; the failure is logged and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::config::{ConfigError, RateLimitConfig, Source};
use crate::identity::Identity;
use crate::metrics::Metric;
use crate::nango::NangoClient;

/// How long an unused bucket is kept: far longer than any bucket takes to fill again.
const KEEP_UNUSED: Duration = Duration::from_secs(3600);
/// The most a bucket may add to a request. A bucket answers in a few ms; one that does not is
/// failing, and the request goes ahead rather than wait through the SDK's retries.
const BUCKET_TIMEOUT: Duration = Duration::from_millis(500);

/// `count` requests per `per`, and up to `burst` at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Rate {
    pub fn per_minute(count: u32, burst: u32) -> Self {
        Rate {
            count,
            per: Duration::from_secs(60),
            burst,
        }
    }

    /// The time one token takes to come back.
    fn interval_ms(&self) -> u64 {
        (self.per.as_millis() as u64 / u64::from(self.count.max(1))).max(1)
    }

    /// How far ahead of now `tat` may be and still admit: the burst, less the one being taken.
    fn tolerance_ms(&self) -> u64 {
        self.interval_ms() * u64::from(self.burst.max(1) - 1)
    }
}

/// What a bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// No token now; one will be free after this long.
    Refused {
        retry_after: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("the rate limit table could not be used: {0}")]
pub struct BucketError(String);

/// The token buckets' table.
#[derive(Clone)]
pub struct Buckets {
    client: Client,
    table: String,
    /// Buckets this sandbox found empty, and when their next token is due: until then a request is
    /// refused here, without a write (a flood costs DynamoDB nothing after its first refusal).
    empty_until: Arc<Mutex<HashMap<(String, u32), Instant>>>,
}

/// The most empty buckets a sandbox remembers; past it, it forgets those whose time has come.
const REMEMBERED_EMPTY: usize = 10_000;

impl Buckets {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Buckets {
            client,
            table: table.into(),
            empty_until: Arc::default(),
        }
    }

    /// Takes a token from bucket `key`, leaving at least `reserve` tokens in it.
    pub async fn take(&self, key: &str, rate: Rate, reserve: u32) -> Result<Take, BucketError> {
        let remembered = (key.to_owned(), reserve);
        if let Some(due) = self.empty(&remembered) {
            return Ok(Take::Refused {
                retry_after: due
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            });
        }
        let taken = tokio::time::timeout(BUCKET_TIMEOUT, self.try_take(key, rate, reserve))
            .await
            .unwrap_or_else(|_| Err(BucketError("no answer in time".to_owned())))?;
        if let Take::Refused { retry_after } = taken {
            self.remember_empty(remembered, Instant::now() + retry_after);
        }
        Ok(taken)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn empty(&self, bucket: &(String, u32)) -> Option<Instant> {
        let empty = self
            .empty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        empty
            .get(bucket)
            .copied()
            .filter(|due| *due > Instant::now())
    }

    fn remember_empty(&self, bucket: (String, u32), due: Instant) {
        let mut empty = self
            .empty_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if empty.len() >= REMEMBERED_EMPTY {
            let now = Instant::now();
            empty.retain(|_, due| *due > now);
        }
        if empty.len() < REMEMBERED_EMPTY {
            empty.insert(bucket, due);
        }
    }

    async fn try_take(&self, key: &str, rate: Rate, reserve: u32) -> Result<Take, BucketError> {
        let now = now_ms();
        let interval = rate.interval_ms();
        // An idle bucket (or none yet) is full: the next token is due one interval from now.
        let idle = self
            .update(key, now)
            .update_expression("SET tat = :next, expiresAt = :expires")
            .condition_expression("attribute_not_exists(tat) OR tat <= :now")
            .expression_attribute_values(":next", number(now + interval))
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match idle {
            Ok(_) => return Ok(Take::Taken),
            Err(err) if !is_condition_failure(&err) => return Err(bucket_error(err)),
            Err(_) => {}
        }
        let limit = (now + rate.tolerance_ms()).saturating_sub(u64::from(reserve) * interval);
        let busy = self
            .update(key, now)
            .update_expression("SET tat = tat + :interval, expiresAt = :expires")
            .condition_expression("tat <= :limit")
            .expression_attribute_values(":interval", number(interval))
            .expression_attribute_values(":limit", number(limit))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match busy {
            Ok(_) => Ok(Take::Taken),
            Err(err) => match condition_failure_item(&err) {
                Some(item) => {
                    let tat = read_number(item, "tat").unwrap_or(limit);
                    Ok(Take::Refused {
                        retry_after: Duration::from_millis(tat.saturating_sub(limit).max(1)),
                    })
                }
                None => Err(bucket_error(err)),
            },
        }
    }

    /// Empties bucket `key` for `period`: nothing is admitted until it has passed.
    pub async fn drain(&self, key: &str, rate: Rate, period: Duration) -> Result<(), BucketError> {
        tokio::time::timeout(BUCKET_TIMEOUT, self.try_drain(key, rate, period))
            .await
            .unwrap_or_else(|_| Err(BucketError("no answer in time".to_owned())))
    }

    async fn try_drain(&self, key: &str, rate: Rate, period: Duration) -> Result<(), BucketError> {
        let now = now_ms();
        let blocked = now + period.as_millis() as u64 + rate.tolerance_ms();
        let drained = self
            .update(key, now)
            .update_expression("SET tat = :blocked, expiresAt = :expires")
            .condition_expression("attribute_not_exists(tat) OR tat < :blocked")
            .expression_attribute_values(":blocked", number(blocked))
            .send()
            .await;
        match drained {
            // Already drained for longer.
            Err(err) if !is_condition_failure(&err) => Err(bucket_error(err)),
            _ => Ok(()),
        }
    }

    fn update(
        &self,
        key: &str,
        now: u64,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let expires = (now + KEEP_UNUSED.as_millis() as u64) / 1000;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("bucket", AttributeValue::S(key.to_owned()))
            .expression_attribute_values(":expires", number(expires))
    }
}

/// Who is over their share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Organization,
}

impl Scope {
    pub const ALL: &[Scope] = &[Scope::User, Scope::Organization];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Organization => "organization",
        }
    }
}

/// A caller over their share: the answer is `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    pub retry_after: Duration,
}

/// Each end user's and each organization's share of the Nango-calling routes.
#[derive(Clone)]
pub struct CallerLimits {
    buckets: Buckets,
    pub user: Rate,
    pub organization: Rate,
}

impl CallerLimits {
    pub fn new(buckets: Buckets, user: Rate, organization: Rate) -> Self {
        CallerLimits {
            buckets,
            user,
            organization,
        }
    }

    /// Takes one request from the caller's bucket, then from their organization's. A caller over
    /// their own share takes nothing from the organization's.
    pub async fn admit(&self, identity: &Identity) -> Result<(), Limited> {
        let user = format!("user#{}", identity.end_user_id);
        self.take(&user, self.user, Scope::User).await?;
        if let Some(organization) = &identity.organization_id {
            let key = format!("organization#{organization}");
            self.take(&key, self.organization, Scope::Organization)
                .await?;
        }
        Ok(())
    }

    async fn take(&self, key: &str, rate: Rate, scope: Scope) -> Result<(), Limited> {
        match self.buckets.take(key, rate, 0).await {
            Ok(Take::Taken) => Ok(()),
            Ok(Take::Refused { retry_after }) => {
                Metric::RateLimited.add_for(&[scope.as_str()], 1);
                Err(Limited { scope, retry_after })
            }
            Err(err) => {
                tracing::warn!(error = %err, scope = scope.as_str(), "rate limit not checked: admitted");
                Metric::RateLimitErrors.add(1);
                Ok(())
            }
        }
    }
}

/// Whose call to Nango it is: users first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A user waits on the answer: may empty the budget.
    User,
    /// Webhook confirmations and reconciliation: only what is above the users' reserve.
    Background,
}

impl Priority {
    pub const ALL: &[Priority] = &[Priority::User, Priority::Background];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::User => "user",
            Priority::Background => "background",
        }
    }
}

/// The one budget every call to Nango takes from.
#[derive(Clone)]
pub struct NangoBudget {
    buckets: Buckets,
    rate: Rate,
    /// Tokens background calls leave for users.
    reserve: u32,
}

/// The budget's item.
const NANGO_BUCKET: &str = "nango";

impl NangoBudget {
    pub fn new(buckets: Buckets, rate: Rate, reserve: u32) -> Self {
        NangoBudget {
            buckets,
            rate,
            reserve: reserve.min(rate.burst.saturating_sub(1)),
        }
    }

    /// One request's worth, at `priority`. `Err` when the budget cannot be read: the call goes
    /// ahead (see the module's documentation).
    pub async fn take(&self, priority: Priority) -> Result<Take, BucketError> {
        let reserve = match priority {
            Priority::User => 0,
            Priority::Background => self.reserve,
        };
        self.buckets.take(NANGO_BUCKET, self.rate, reserve).await
    }

    /// Nango answered 429: nobody calls it again before `retry_after` has passed.
    pub async fn drain(&self, retry_after: Duration) -> Result<(), BucketError> {
        self.buckets
            .drain(NANGO_BUCKET, self.rate, retry_after)
            .await
    }
}

/// Both, from one table.
#[derive(Clone)]
pub struct Limits {
    pub callers: CallerLimits,
    pub nango: NangoBudget,
}

impl Limits {
    pub fn new(client: Client, config: RateLimitConfig) -> Self {
        let buckets = Buckets::new(client, config.table);
        Limits {
            callers: CallerLimits::new(buckets.clone(), config.user, config.organization),
            nango: NangoBudget::new(buckets, config.nango, config.user_reserve),
        }
    }

    /// The limits `RATE_LIMIT_TABLE` names, if it names a table.
    pub fn from_source(source: &impl Source, client: &Client) -> Result<Option<Self>, ConfigError> {
        Ok(RateLimitConfig::from_source(source)?.map(|config| Limits::new(client.clone(), config)))
    }

    /// For a route that calls Nango for a caller: `nango` taking from the budget at user
    /// priority, and each caller's share — both from `RATE_LIMIT_TABLE`, or neither.
    pub fn for_callers(
        source: &impl Source,
        client: &Client,
        nango: NangoClient,
    ) -> Result<(NangoClient, Option<CallerLimits>), ConfigError> {
        let limits = Limits::from_source(source, client)?;
        let nango = Limits::budget(limits.as_ref(), nango, Priority::User);
        Ok((nango, limits.map(|limits| limits.callers)))
    }

    /// `nango`, taking from the budget at `priority` — or as it is when there are no limits.
    pub fn budget(limits: Option<&Limits>, nango: NangoClient, priority: Priority) -> NangoClient {
        match limits {
            Some(limits) => nango.with_budget(limits.nango.clone(), priority),
            None => nango,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn read_number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn is_condition_failure<R>(err: &SdkError<UpdateItemError, R>) -> bool {
    matches!(
        err,
        SdkError::ServiceError(service)
            if matches!(service.err(), UpdateItemError::ConditionalCheckFailedException(_))
    )
}

fn condition_failure_item<R>(
    err: &SdkError<UpdateItemError, R>,
) -> Option<&HashMap<String, AttributeValue>> {
    match err {
        SdkError::ServiceError(service) => match service.err() {
            UpdateItemError::ConditionalCheckFailedException(failed) => failed.item(),
            _ => None,
        },
        _ => None,
    }
}

fn bucket_error<R: std::fmt::Debug>(err: SdkError<UpdateItemError, R>) -> BucketError {
    BucketError(DisplayErrorContext(&err).to_string())
}
