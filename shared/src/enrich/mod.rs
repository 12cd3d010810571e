//! Enrichment: when a webhook is thin (Okta event hooks, BambooHR and HiBob events carry
//! little more than an id), read the person's current attributes back from the source's
//! own API.
//!
//! [`SourceApis`] dispatches on the connection name (`PersonKey::source`) to the API client
//! configured for it in the worker's secret (`sources`, see docs/worker-secret.md);
//! [`InMemoryEnricher`] is the twin for unit tests and the local stack. Both also list a
//! connection's whole roster for the nightly reconcile ([`RosterSource`], in `roster.rs`).
//!
//! Reads are paced per connection ([`pacer`]) and a throttled read is retried after the
//! source's advice while the caller's deadline allows; docs/external-facts.md ("Source APIs")
//! has the rate limits this follows.

mod bamboohr;
mod hibob;
mod okta;
mod pacer;
mod roster;
#[cfg(test)]
mod roster_tests;
#[cfg(test)]
mod tests;

pub use crate::event::ATTRIBUTE_FIELDS;
pub use roster::{Roster, RosterSource};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::http_retry::{
    self, Attempt, DEADLINE_MARGIN, GaveUp, HttpClient, Reply, RetryPolicy, Verdict, describe_transport, join_url,
};
use crate::secrets::SecretString;
use pacer::Pacer;

use crate::event::{Attributes, PersonKey};

#[async_trait]
pub trait Enricher: Send + Sync {
    /// The person's current record (attributes, status word and HR dates); `None` when the
    /// source says the person does not exist. A throttled read waits for the source's
    /// `Retry-After` while that fits before `deadline`, and otherwise fails as `Throttled`.
    async fn fetch(&self, person: &PersonKey, deadline: Option<Instant>) -> Result<Option<Attributes>, EnrichError>;
}

/// Errors never carry credentials: they name the connection and the HTTP status, not the
/// request.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("no source API is configured for connection {connection:?} (add it to the worker secret's `sources`)")]
    UnknownConnection { connection: String },
    #[error("source API for {connection} is misconfigured: {reason}")]
    Misconfigured { connection: String, reason: String },
    #[error("{connection} rejected the configured credentials (HTTP {status}): check the key and its permissions")]
    Unauthorized { connection: String, status: u16 },
    /// The source answered 429 (or 503 with `Retry-After`), or our own pacing for it would
    /// not let a request start before the deadline.
    #[error("{connection} is throttling us{}", retry_after_suffix(.retry_after))]
    Throttled { connection: String, retry_after: Option<Duration> },
    #[error("{connection} is unavailable: {reason}")]
    Unavailable { connection: String, reason: String },
    #[error("{connection} answered unexpectedly: {reason}")]
    UnexpectedResponse { connection: String, reason: String },
}

fn retry_after_suffix(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!("; retry after {}s", d.as_secs())).unwrap_or_default()
}

impl EnrichError {
    /// True for conditions that pass on their own (timeouts, 429, 5xx): the message goes
    /// back to the queue. False for what needs a human (credentials, configuration,
    /// unexpected answers): retrying would only fail again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EnrichError::Throttled { .. } | EnrichError::Unavailable { .. })
    }

    /// The source (or our pacing of it) asked us to wait: a caller can hand the message back
    /// for later (after [`EnrichError::retry_after`]) rather than treat the source as down.
    pub fn is_throttled(&self) -> bool {
        matches!(self, EnrichError::Throttled { .. })
    }

    /// How long the source asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EnrichError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One connection's API settings, as the worker secret's `sources` map holds them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceApiConfig {
    Bamboohr {
        /// The part before `.bamboohr.com` in the company's BambooHR address.
        company_domain: String,
        api_key: SecretString,
        /// Overrides `https://{company_domain}.bamboohr.com/api/v1` (tests; the legacy
        /// `https://api.bamboohr.com/api/gateway.php/{company_domain}/v1` also works).
        #[serde(default)]
        base_url: Option<String>,
        /// Client-side pace; default 0 (unlimited: BambooHR publishes no figure).
        #[serde(default)]
        requests_per_minute: Option<u32>,
    },
    Hibob {
        service_user_id: String,
        service_user_token: SecretString,
        /// Overrides `https://api.hibob.com/v1`.
        #[serde(default)]
        base_url: Option<String>,
        /// Client-side pace; default 50, HiBob's documented limit on people reads.
        #[serde(default)]
        requests_per_minute: Option<u32>,
    },
    Okta {
        /// e.g. `https://acme.okta.com`.
        org_url: String,
        api_token: SecretString,
        /// Client-side pace; default 0 (unlimited: Okta's own headers pace the reads).
        #[serde(default)]
        requests_per_minute: Option<u32>,
    },
}

impl SourceApiConfig {
    /// The connection's client-side pace (0 = unlimited): configured, or the source's
    /// documented limit.
    pub fn requests_per_minute(&self) -> u32 {
        match self {
            SourceApiConfig::Bamboohr { requests_per_minute, .. }
            | SourceApiConfig::Okta { requests_per_minute, .. } => requests_per_minute.unwrap_or(0),
            SourceApiConfig::Hibob { requests_per_minute, .. } => {
                requests_per_minute.unwrap_or(HIBOB_REQUESTS_PER_MINUTE)
            }
        }
    }
}

impl SourceApiConfig {
    fn url_is_plain_http(&self) -> bool {
        let url = match self {
            SourceApiConfig::Bamboohr { base_url, .. } | SourceApiConfig::Hibob { base_url, .. } => base_url.as_deref(),
            SourceApiConfig::Okta { org_url, .. } => Some(org_url.as_str()),
        };
        url.is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("http://"))
    }
}

/// The worker secret's `sources` map: connection name → API settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SourceApiConfigs(pub BTreeMap<String, SourceApiConfig>);

/// Bounds on every call to a source API, so a slow HR system cannot eat the Lambda's time.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// HiBob's documented limit for people reads.
const HIBOB_REQUESTS_PER_MINUTE: u32 = 50;
/// Retries of a throttled read, each after the source's `Retry-After`, within the deadline.
const THROTTLED_RETRIES: u32 = 3;
/// The `HttpClient` label: metrics are `source_api_calls{status}` and
/// `source_api_call_ms{operation}`.
const LABEL: &str = "source_api";

enum SourceApi {
    Bamboohr(bamboohr::BambooHr),
    Hibob(hibob::HiBob),
    Okta(okta::Okta),
}

/// One configured connection: its API and its pacer, shared by every concurrent fetch.
struct Connection {
    api: SourceApi,
    pacer: Pacer,
}

/// The real enricher: one HTTP client (rustls, pooled, with timeouts) shared by every
/// configured connection.
pub struct SourceApis {
    http: HttpClient,
    apis: HashMap<String, Connection>,
}

impl fmt::Debug for SourceApis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.apis.keys().collect();
        names.sort();
        f.debug_struct("SourceApis").field("connections", &names).finish_non_exhaustive()
    }
}

impl SourceApis {
    /// `allow_http` admits `http://` URLs (tests and the local stack only: credentials would
    /// cross the network in clear text).
    pub fn new(configs: &SourceApiConfigs, allow_http: bool) -> Result<Self, EnrichError> {
        Self::with_timeout(configs, DEFAULT_REQUEST_TIMEOUT, allow_http)
    }

    /// Like [`SourceApis::new`] with a different per-request timeout.
    pub fn with_timeout(configs: &SourceApiConfigs, timeout: Duration, allow_http: bool) -> Result<Self, EnrichError> {
        if !allow_http && let Some((connection, _)) = configs.0.iter().find(|(_, c)| c.url_is_plain_http()) {
            return Err(misconfigured(connection, "an http:// URL is refused for a source API; use https"));
        }
        // Only throttled reads are retried (send_json says so per answer): any other failing
        // read fails the message, and SQS redelivers it after the visibility timeout, which is
        // a gentler retry than hammering an HR system.
        let policy = RetryPolicy { max_retries: THROTTLED_RETRIES, request_timeout: timeout, ..RetryPolicy::default() };
        let http = HttpClient::new(LABEL, policy).map_err(|e| EnrichError::Misconfigured {
            connection: "*".into(),
            reason: format!("cannot build the HTTP client: {}", describe_transport(&e)),
        })?;
        let mut apis = HashMap::new();
        for (connection, config) in &configs.0 {
            let api = match config {
                SourceApiConfig::Bamboohr { company_domain, api_key, base_url, .. } => SourceApi::Bamboohr(
                    bamboohr::BambooHr::new(connection, company_domain, api_key, base_url.as_deref())?,
                ),
                SourceApiConfig::Hibob { service_user_id, service_user_token, base_url, .. } => SourceApi::Hibob(
                    hibob::HiBob::new(connection, service_user_id, service_user_token, base_url.as_deref())?,
                ),
                SourceApiConfig::Okta { org_url, api_token, .. } => {
                    SourceApi::Okta(okta::Okta::new(connection, org_url, api_token)?)
                }
            };
            let pacer = Pacer::per_minute(config.requests_per_minute());
            apis.insert(connection.clone(), Connection { api, pacer });
        }
        Ok(SourceApis { http, apis })
    }
}

#[async_trait]
impl Enricher for SourceApis {
    async fn fetch(&self, person: &PersonKey, deadline: Option<Instant>) -> Result<Option<Attributes>, EnrichError> {
        let Some(connection) = self.apis.get(&person.source) else {
            return Err(EnrichError::UnknownConnection { connection: person.source.clone() });
        };
        let read = Read { http: &self.http, connection: &person.source, pacer: &connection.pacer, deadline };
        match &connection.api {
            SourceApi::Bamboohr(api) => api.fetch(read, &person.id).await,
            SourceApi::Hibob(api) => api.fetch(read, &person.id).await,
            SourceApi::Okta(api) => api.fetch(read, &person.id).await,
        }
    }
}

/// A fixed map person → attributes, standing in for the source APIs of the connections it
/// serves (those it was given people of, or told about with [`InMemoryEnricher::serve`]).
/// Anyone absent from a served connection "does not exist in the source"; a connection it
/// does not serve has no API, like a generic sender.
#[derive(Debug, Default)]
pub struct InMemoryEnricher {
    people: std::sync::RwLock<HashMap<PersonKey, Attributes>>,
    connections: std::sync::RwLock<std::collections::HashSet<String>>,
    reads: std::sync::atomic::AtomicUsize,
    /// Connections whose roster read fails ([`InMemoryEnricher::fail_roster`]).
    failing_rosters: std::sync::RwLock<std::collections::HashSet<String>>,
    /// The fields a connection's roster returns, when not all
    /// ([`InMemoryEnricher::roster_fields`]).
    roster_fields: std::sync::RwLock<HashMap<String, std::collections::BTreeSet<&'static str>>>,
}

impl InMemoryEnricher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `connection` even while it has nobody.
    pub fn serve(&self, connection: &str) {
        self.connections.write().unwrap_or_else(|p| p.into_inner()).insert(connection.to_owned());
    }

    /// Adds or replaces a person, as an HR admin editing the record would.
    pub fn insert(&self, person: PersonKey, attributes: Attributes) {
        self.serve(&person.source);
        self.people.write().unwrap_or_else(|p| p.into_inner()).insert(person, attributes);
    }

    pub fn remove(&self, person: &PersonKey) {
        self.people.write().unwrap_or_else(|p| p.into_inner()).remove(person);
    }

    /// Reads answered so far (for the cost benchmark and tests).
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl FromIterator<(PersonKey, Attributes)> for InMemoryEnricher {
    fn from_iter<I: IntoIterator<Item = (PersonKey, Attributes)>>(iter: I) -> Self {
        let enricher = InMemoryEnricher::new();
        for (person, attributes) in iter {
            enricher.insert(person, attributes);
        }
        enricher
    }
}

#[async_trait]
impl Enricher for InMemoryEnricher {
    async fn fetch(&self, person: &PersonKey, _deadline: Option<Instant>) -> Result<Option<Attributes>, EnrichError> {
        if !self.connections.read().unwrap_or_else(|p| p.into_inner()).contains(&person.source) {
            return Err(EnrichError::UnknownConnection { connection: person.source.clone() });
        }
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.people.read().unwrap_or_else(|p| p.into_inner()).get(person).cloned())
    }
}

// ---------------------------------------------------------------- shared HTTP handling

/// Parses and checks a base URL from the secret; the error says which connection. `http`
/// is accepted (tests point a connection at a local server).
fn parse_base_url(connection: &str, raw: &str) -> Result<url::Url, EnrichError> {
    http_retry::parse_base_url(raw.trim_end_matches('/'), true).map_err(|error| EnrichError::Misconfigured {
        connection: connection.to_owned(),
        reason: format!("the URL {raw:?} {error}"),
    })
}

/// One fetch's context, handed by [`SourceApis`] to the source's reader and on to
/// [`send_json`].
#[derive(Clone, Copy)]
struct Read<'a> {
    http: &'a HttpClient,
    connection: &'a str,
    pacer: &'a Pacer,
    deadline: Option<Instant>,
}

impl Read<'_> {
    fn throttled(&self, retry_after: Option<Duration>) -> Failure {
        Failure::Enrich(EnrichError::Throttled { connection: self.connection.to_owned(), retry_after })
    }

    fn unavailable(&self, reason: String) -> Failure {
        Failure::Enrich(EnrichError::Unavailable { connection: self.connection.to_owned(), reason })
    }
}

/// Sends a read and sorts the outcome: `Ok(None)` for 404, the body for 2xx, a typed error
/// otherwise. Each attempt waits for the connection's pacer; only throttled answers are
/// retried ([`throttled`]).
async fn send_json(read: Read<'_>, request: RequestBuilder) -> Result<Option<Value>, EnrichError> {
    Ok(send(read, request, None).await?.map(|answer| answer.body))
}

/// A 2xx answer: its JSON body and its headers (a page's `Link`).
struct Answer {
    body: Value,
    headers: HeaderMap,
}

/// [`send_json`], keeping the answer's headers and counting in `sent` every request that
/// went out (throttled retries included).
async fn send(
    read: Read<'_>,
    request: RequestBuilder,
    sent: Option<&std::sync::atomic::AtomicUsize>,
) -> Result<Option<Answer>, EnrichError> {
    let request = &request;
    let outcome = http_retry::retry(read.http.policy(), LABEL, read.deadline, move |attempt| async move {
        let timeout = match pace(read, attempt).await {
            Ok(timeout) => timeout,
            Err(failure) => return Verdict::Fail(failure),
        };
        let Some(request) = request.try_clone() else {
            return Verdict::Fail(Failure::Enrich(misconfigured(read.connection, "unclonable request")));
        };
        if let Some(sent) = sent {
            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let started = std::time::Instant::now();
        let answer = exchange(request.timeout(timeout)).await;
        metrics::histogram!(format!("{LABEL}_call_ms"), "operation" => read.connection.to_owned())
            .record(started.elapsed().as_secs_f64() * 1000.0);
        let status =
            answer.as_ref().map_or_else(|_| "transport".to_owned(), |(reply, ..)| reply.status.as_str().to_owned());
        metrics::counter!(format!("{LABEL}_calls"), "status" => status).increment(1);
        match answer {
            Ok((reply, quota_reset, headers)) => classify(read, reply, quota_reset, headers, attempt),
            // Not retried here: the queue redelivers the message (see `SourceApis::with_timeout`).
            Err(error) => Verdict::Fail(read.unavailable(describe_transport(&error).to_owned())),
        }
    })
    .await;
    outcome.map_err(|failure| match failure {
        Failure::Enrich(error) => error,
        // Without the URL: it names the person's id, which is not needed to act on the error.
        Failure::GaveUp(GaveUp::RetriesExhausted { last, .. } | GaveUp::Deadline { last }) => {
            EnrichError::Unavailable { connection: read.connection.to_owned(), reason: last }
        }
    })
}

/// Waits for the connection's next slot and returns the attempt's timeout, shortened by the
/// wait so the request still ends before the deadline's margin.
async fn pace(read: Read<'_>, attempt: Attempt) -> Result<Duration, Failure> {
    read.pacer.wait(read.deadline).await.map_err(|wait| read.throttled(Some(wait)))?;
    let Some(deadline) = read.deadline else { return Ok(attempt.timeout) };
    let left = tokio::time::Instant::from_std(deadline)
        .saturating_duration_since(tokio::time::Instant::now())
        .saturating_sub(DEADLINE_MARGIN);
    match attempt.timeout.min(left) {
        // Only a late timer gets here: the pacer refuses slots that leave no time.
        timeout if timeout.is_zero() => Err(read.throttled(None)),
        timeout => Ok(timeout),
    }
}

/// The answer read whole, how long until the source's quota resets when it says the quota is
/// nearly spent, and the answer's headers.
async fn exchange(request: RequestBuilder) -> Result<(Reply, Option<Duration>, HeaderMap), reqwest::Error> {
    let response = request.send().await?;
    let now = Utc::now();
    let status = response.status();
    let retry_after = http_retry::retry_after(response.headers(), now);
    let quota_reset = quota_reset(response.headers(), now);
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok((Reply { status, retry_after, body }, quota_reset, headers))
}

fn classify(
    read: Read<'_>,
    reply: Reply,
    quota_reset: Option<Duration>,
    headers: HeaderMap,
    attempt: Attempt,
) -> Verdict<Option<Answer>, Failure> {
    let policy = read.http.policy();
    if let Some(wait) = quota_reset {
        read.pacer.hold_until(tokio::time::Instant::now() + wait.min(policy.max_retry_after));
    }
    let connection = read.connection.to_owned();
    match reply.status {
        StatusCode::NOT_FOUND => Verdict::Done(None),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Verdict::Fail(Failure::Enrich(EnrichError::Unauthorized { connection, status: reply.status.as_u16() }))
        }
        // Okta sends no Retry-After with its 429; its quota reset says the same.
        StatusCode::TOO_MANY_REQUESTS => throttled(read, attempt, reply.retry_after.or(quota_reset)),
        // BambooHR's throttling answer until it moves to 429 (Sep 2026); a 503 without
        // Retry-After is an outage.
        StatusCode::SERVICE_UNAVAILABLE if reply.retry_after.is_some() => throttled(read, attempt, reply.retry_after),
        status if status.is_server_error() => Verdict::Fail(read.unavailable(format!("HTTP {}", status.as_u16()))),
        status if !status.is_success() => Verdict::Fail(Failure::Enrich(EnrichError::UnexpectedResponse {
            connection,
            reason: format!("HTTP {}", status.as_u16()),
        })),
        _ => match serde_json::from_slice(&reply.body) {
            Ok(body) => Verdict::Done(Some(Answer { body, headers })),
            Err(e) => Verdict::Fail(Failure::Enrich(EnrichError::UnexpectedResponse {
                connection,
                reason: format!("body is not JSON: {e}"),
            })),
        },
    }
}

/// A throttled read waits for the source's advice (or a backoff) and tries again, while
/// retries remain and the wait ends before the deadline; otherwise the advice goes back to
/// the caller. Other fetches of the connection are held for the same wait: they would only
/// be throttled too.
fn throttled<T>(read: Read<'_>, attempt: Attempt, advice: Option<Duration>) -> Verdict<T, Failure> {
    let policy = read.http.policy();
    let wait = advice.unwrap_or_else(|| policy.backoff(attempt.retries + 1)).min(policy.max_retry_after);
    let now = tokio::time::Instant::now();
    read.pacer.hold_until(now + wait);
    // The slack keeps this decision on the safe side of the retry loop's own deadline check,
    // made a moment later, which would otherwise report an outage instead of throttling.
    let slack = Duration::from_millis(50);
    let fits = read
        .deadline
        .is_none_or(|deadline| now + wait + DEADLINE_MARGIN + slack < tokio::time::Instant::from_std(deadline));
    if attempt.retries < policy.max_retries && fits {
        Verdict::Retry { problem: "throttled".into(), retry_after: Some(wait) }
    } else {
        Verdict::Fail(read.throttled(advice))
    }
}

/// Okta's `X-Rate-Limit-*` headers: when less than a tenth of the window's quota is left, the
/// time until the window resets (`X-Rate-Limit-Reset`, UTC epoch seconds). A reset that is
/// not a future epoch time (a source sending a delta there) reads as past and holds nothing.
fn quota_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    let (limit, remaining) = (number("x-rate-limit-limit")?, number("x-rate-limit-remaining")?);
    if remaining.saturating_mul(10) >= limit {
        return None;
    }
    let reset = DateTime::<Utc>::from_timestamp(number("x-rate-limit-reset")?, 0)?;
    (reset - now).to_std().ok().filter(|wait| !wait.is_zero())
}

/// A calendar date in one of `formats`; anything else is logged (the field's name, never
/// the value) and read as unknown, so one odd field does not fail the whole read.
fn parse_date(text: &str, formats: &[&str], field: &'static str) -> Option<NaiveDate> {
    let date = formats.iter().find_map(|format| NaiveDate::parse_from_str(text, format).ok());
    if date.is_none() {
        tracing::warn!(field, "source API sent a date in an unknown format; reading it as no date");
    }
    date
}

/// A read's failure inside the retry loop, before it is told in the connection's terms.
enum Failure {
    Enrich(EnrichError),
    GaveUp(GaveUp),
}

impl From<GaveUp> for Failure {
    fn from(gave_up: GaveUp) -> Self {
        Failure::GaveUp(gave_up)
    }
}

fn misconfigured(connection: &str, reason: &str) -> EnrichError {
    EnrichError::Misconfigured { connection: connection.to_owned(), reason: reason.to_owned() }
}

/// A non-blank string at `pointer`, trimmed; numbers are rendered (some sources send ids
/// as numbers).
fn text_at(value: &serde_json::Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first present value among `pointers`.
fn first_text(value: &serde_json::Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| text_at(value, p))
}
