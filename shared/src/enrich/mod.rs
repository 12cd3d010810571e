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
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::event::{Attributes, PersonKey};

#[async_trait]
pub trait Enricher: Send + Sync {
    /// The person's current attributes; `None` when the source says the person does not
    /// exist.
    async fn fetch(&self, person: &PersonKey) -> Result<Option<Attributes>, EnrichError>;
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

/// A credential from the secret. Its `Debug` never shows the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Credential(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// One connection's API settings, as the worker secret's `sources` map holds them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceApiConfig {
    Bamboohr {
        /// The part before `.bamboohr.com` in the company's BambooHR address.
        company_domain: String,
        api_key: Credential,
        /// Overrides `https://{company_domain}.bamboohr.com/api/v1` (tests; the legacy
        /// `https://api.bamboohr.com/api/gateway.php/{company_domain}/v1` also works).
        #[serde(default)]
        base_url: Option<String>,
    },
    Hibob {
        service_user_id: String,
        service_user_token: Credential,
        /// Overrides `https://api.hibob.com/v1`.
        #[serde(default)]
        base_url: Option<String>,
    },
    Okta {
        /// e.g. `https://acme.okta.com`.
        org_url: String,
        api_token: Credential,
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
    http: reqwest::Client,
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
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(concat!("onepassword-provisioning/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EnrichError::Misconfigured {
                connection: "*".into(),
                reason: format!("cannot build the HTTP client: {e}"),
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
    async fn fetch(&self, person: &PersonKey) -> Result<Option<Attributes>, EnrichError> {
        match self.apis.get(&person.source) {
            Some(SourceApi::Bamboohr(api)) => api.fetch(&self.http, &person.id).await,
            Some(SourceApi::Hibob(api)) => api.fetch(&self.http, &person.id).await,
            Some(SourceApi::Okta(api)) => api.fetch(&self.http, &person.id).await,
            None => Err(EnrichError::UnknownConnection { connection: person.source.clone() }),
        }
    }
}

/// A fixed map person → attributes. Anyone absent "does not exist in the source".
#[derive(Debug, Default)]
pub struct InMemoryEnricher {
    people: std::sync::RwLock<HashMap<PersonKey, Attributes>>,
}

impl InMemoryEnricher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a person, as an HR admin editing the record would.
    pub fn insert(&self, person: PersonKey, attributes: Attributes) {
        self.people.write().unwrap_or_else(|p| p.into_inner()).insert(person, attributes);
    }

    pub fn remove(&self, person: &PersonKey) {
        self.people.write().unwrap_or_else(|p| p.into_inner()).remove(person);
    }
}

impl FromIterator<(PersonKey, Attributes)> for InMemoryEnricher {
    fn from_iter<I: IntoIterator<Item = (PersonKey, Attributes)>>(iter: I) -> Self {
        InMemoryEnricher { people: std::sync::RwLock::new(iter.into_iter().collect()) }
    }
}

#[async_trait]
impl Enricher for InMemoryEnricher {
    async fn fetch(&self, person: &PersonKey) -> Result<Option<Attributes>, EnrichError> {
        Ok(self.people.read().unwrap_or_else(|p| p.into_inner()).get(person).cloned())
    }
}

// ---------------------------------------------------------------- shared HTTP handling

/// Parses and checks a base URL from the secret; the error says which connection.
fn parse_base_url(connection: &str, raw: &str) -> Result<url::Url, EnrichError> {
    let url = url::Url::parse(raw.trim_end_matches('/')).map_err(|e| EnrichError::Misconfigured {
        connection: connection.to_owned(),
        reason: format!("invalid URL {raw:?}: {e}"),
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
        return Err(EnrichError::Misconfigured {
            connection: connection.to_owned(),
            reason: format!("{raw:?} is not an http(s) base URL"),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs; they belong in their own keys.
        return Err(EnrichError::Misconfigured {
            connection: connection.to_owned(),
            reason: "the URL must not embed credentials".into(),
        });
    }
    Ok(url)
}

/// `base` + path segments, each percent-encoded, so an id can never change the path.
fn endpoint(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for segment in segments {
            path.push(segment);
        }
    }
    url
}

/// Sends a request and sorts the outcome: `Ok(None)` for 404, the body for 2xx, a typed
/// error otherwise.
async fn send_json(
    connection: &str,
    request: reqwest::RequestBuilder,
) -> Result<Option<serde_json::Value>, EnrichError> {
    let response = request.send().await.map_err(|e| transport_error(connection, e))?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(EnrichError::Unauthorized { connection: connection.to_owned(), status: status.as_u16() });
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(EnrichError::Throttled { connection: connection.to_owned(), retry_after });
    }
    if status.is_server_error() {
        return Err(EnrichError::Unavailable {
            connection: connection.to_owned(),
            reason: format!("HTTP {}", status.as_u16()),
        });
    }
    if !status.is_success() {
        return Err(EnrichError::UnexpectedResponse {
            connection: connection.to_owned(),
            reason: format!("HTTP {}", status.as_u16()),
        });
    }
    let body = response.bytes().await.map_err(|e| transport_error(connection, e))?;
    serde_json::from_slice(&body).map(Some).map_err(|e| EnrichError::UnexpectedResponse {
        connection: connection.to_owned(),
        reason: format!("body is not JSON: {e}"),
    })
}

fn transport_error(connection: &str, error: reqwest::Error) -> EnrichError {
    // Without the URL: it names the person's id, which is not needed to act on the error.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    EnrichError::Unavailable { connection: connection.to_owned(), reason: format!("{kind}: {}", error.without_url()) }
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
