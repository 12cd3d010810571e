//! Enrichment: when a webhook is thin (Okta event hooks, BambooHR and HiBob events carry
//! little more than an id), read the person's current attributes back from the source's
//! own API.
//!
//! [`SourceApis`] dispatches on the connection name (`PersonKey::source`) to the API client
//! configured for it in the worker's secret (`sources`, see docs/worker-secret.md);
//! [`InMemoryEnricher`] is the twin for unit tests and the local stack.

mod bamboohr;
mod hibob;
mod okta;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::http_retry::{self, Attempt, GaveUp, HttpClient, Reply, RetryPolicy, Verdict, describe_transport, join_url};
use crate::secrets::SecretString;

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
    #[error("{connection} is throttling us (HTTP 429){}", retry_after_suffix(.retry_after))]
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
    },
    Hibob {
        service_user_id: String,
        service_user_token: SecretString,
        /// Overrides `https://api.hibob.com/v1`.
        #[serde(default)]
        base_url: Option<String>,
    },
    Okta {
        /// e.g. `https://acme.okta.com`.
        org_url: String,
        api_token: SecretString,
    },
}

/// The worker secret's `sources` map: connection name → API settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SourceApiConfigs(pub BTreeMap<String, SourceApiConfig>);

/// Bounds on every call to a source API, so a slow HR system cannot eat the Lambda's time.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

enum SourceApi {
    Bamboohr(bamboohr::BambooHr),
    Hibob(hibob::HiBob),
    Okta(okta::Okta),
}

/// The real enricher: one HTTP client (rustls, pooled, with timeouts) shared by every
/// configured connection.
pub struct SourceApis {
    http: HttpClient,
    apis: HashMap<String, SourceApi>,
}

impl fmt::Debug for SourceApis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.apis.keys().collect();
        names.sort();
        f.debug_struct("SourceApis").field("connections", &names).finish_non_exhaustive()
    }
}

impl SourceApis {
    pub fn new(configs: &SourceApiConfigs) -> Result<Self, EnrichError> {
        Self::with_timeout(configs, DEFAULT_REQUEST_TIMEOUT)
    }

    /// Like [`SourceApis::new`] with a different per-request timeout.
    pub fn with_timeout(configs: &SourceApiConfigs, timeout: Duration) -> Result<Self, EnrichError> {
        // One attempt per read: a failing read fails the message, and SQS redelivers it after
        // the visibility timeout, which is a gentler retry than hammering an HR system.
        let policy = RetryPolicy { max_retries: 0, request_timeout: timeout, ..RetryPolicy::default() };
        let http = HttpClient::new("source_api", policy).map_err(|e| EnrichError::Misconfigured {
            connection: "*".into(),
            reason: format!("cannot build the HTTP client: {}", describe_transport(&e)),
        })?;
        let mut apis = HashMap::new();
        for (connection, config) in &configs.0 {
            let api = match config {
                SourceApiConfig::Bamboohr { company_domain, api_key, base_url } => SourceApi::Bamboohr(
                    bamboohr::BambooHr::new(connection, company_domain, api_key, base_url.as_deref())?,
                ),
                SourceApiConfig::Hibob { service_user_id, service_user_token, base_url } => SourceApi::Hibob(
                    hibob::HiBob::new(connection, service_user_id, service_user_token, base_url.as_deref())?,
                ),
                SourceApiConfig::Okta { org_url, api_token } => {
                    SourceApi::Okta(okta::Okta::new(connection, org_url, api_token)?)
                }
            };
            apis.insert(connection.clone(), api);
        }
        Ok(SourceApis { http, apis })
    }
}

#[async_trait]
impl Enricher for SourceApis {
    async fn fetch(&self, person: &PersonKey, _deadline: Option<Instant>) -> Result<Option<Attributes>, EnrichError> {
        match self.apis.get(&person.source) {
            Some(SourceApi::Bamboohr(api)) => api.fetch(&self.http, &person.id).await,
            Some(SourceApi::Hibob(api)) => api.fetch(&self.http, &person.id).await,
            Some(SourceApi::Okta(api)) => api.fetch(&self.http, &person.id).await,
            None => Err(EnrichError::UnknownConnection { connection: person.source.clone() }),
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

/// Sends a request and sorts the outcome: `Ok(None)` for 404, the body for 2xx, a typed
/// error otherwise.
async fn send_json(
    http: &HttpClient,
    connection: &str,
    request: reqwest::RequestBuilder,
) -> Result<Option<serde_json::Value>, EnrichError> {
    let build = |_: Attempt| {
        let request =
            request.try_clone().ok_or_else(|| Failure::Enrich(misconfigured(connection, "unclonable request")));
        async move { request }
    };
    let classify = |reply: Reply, _: Attempt| match reply.status {
        StatusCode::NOT_FOUND => Verdict::Done(None),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Verdict::Fail(Failure::Enrich(EnrichError::Unauthorized {
            connection: connection.to_owned(),
            status: reply.status.as_u16(),
        })),
        // Handed back to the queue at once, with the source's own advice on when to retry.
        StatusCode::TOO_MANY_REQUESTS => Verdict::Fail(Failure::Enrich(EnrichError::Throttled {
            connection: connection.to_owned(),
            retry_after: reply.retry_after,
        })),
        status if status.is_server_error() => {
            Verdict::Retry { problem: format!("HTTP {}", status.as_u16()), retry_after: reply.retry_after }
        }
        status if !status.is_success() => Verdict::Fail(Failure::Enrich(EnrichError::UnexpectedResponse {
            connection: connection.to_owned(),
            reason: format!("HTTP {}", status.as_u16()),
        })),
        _ => match serde_json::from_slice(&reply.body) {
            Ok(body) => Verdict::Done(Some(body)),
            Err(e) => Verdict::Fail(Failure::Enrich(EnrichError::UnexpectedResponse {
                connection: connection.to_owned(),
                reason: format!("body is not JSON: {e}"),
            })),
        },
    };
    http.send(connection, None, build, classify).await.map_err(|failure| match failure {
        Failure::Enrich(error) => error,
        // Without the URL: it names the person's id, which is not needed to act on the error.
        Failure::GaveUp(GaveUp::RetriesExhausted { last, .. } | GaveUp::Deadline { last }) => {
            EnrichError::Unavailable { connection: connection.to_owned(), reason: last }
        }
    })
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
