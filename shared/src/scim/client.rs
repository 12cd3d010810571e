//! HTTP implementation of [`Directory`] for the 1Password SCIM bridge.
//!
//! Retries 429, 5xx and timeouts with exponential backoff and full jitter, honouring
//! `Retry-After`, never past the invocation's deadline; bounds concurrent requests with a
//! semaphore shared by every clone; refreshes the bearer token once on a 401 (rotation).

use async_trait::async_trait;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use url::Url;

use super::{
    CreateOutcome, Directory, GROUP_SCHEMA, ListResponse, NewUser, PatchOperation, PatchRequest, ScimError,
    ScimErrorBody, ScimGroup, ScimUser, quote_filter_value,
};

/// Where the bridge is and how to authenticate. `base_url` includes the SCIM base path
/// (`https://scim.example.com/scim` or `/scim/v2`).
#[derive(Clone)]
pub struct BridgeCredentials {
    pub base_url: String,
    pub token: String,
}

impl fmt::Debug for BridgeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeCredentials").field("base_url", &self.base_url).field("token", &"<redacted>").finish()
    }
}

#[async_trait]
pub trait CredentialProvider: Send + Sync {
    async fn current(&self) -> Result<Arc<BridgeCredentials>, ScimError>;
    /// Re-reads the credentials from their source (after a 401: the token was rotated).
    async fn refresh(&self) -> Result<Arc<BridgeCredentials>, ScimError>;
}

/// Fixed credentials: tests, the local stack.
pub struct StaticCredentials(Arc<BridgeCredentials>);

impl StaticCredentials {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        StaticCredentials(Arc::new(BridgeCredentials { base_url: base_url.into(), token: token.into() }))
    }
}

#[async_trait]
impl CredentialProvider for StaticCredentials {
    async fn current(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        Ok(self.0.clone())
    }
    async fn refresh(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, Clone)]
pub struct ScimClientConfig {
    /// Requests in flight at once, across every clone of the client. The bridge is a
    /// single instance; the research recommends 1–2.
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// Attempts after the first for retryable failures.
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Accept `http://` bridge URLs (local stack and tests only).
    pub allow_http: bool,
    /// Page size when listing.
    pub page_size: usize,
}

impl Default for ScimClientConfig {
    fn default() -> Self {
        ScimClientConfig {
            concurrency: 2,
            request_timeout: Duration::from_secs(10),
            max_retries: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            allow_http: false,
            page_size: 100,
        }
    }
}

#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    credentials: Arc<dyn CredentialProvider>,
    limiter: Arc<Semaphore>,
    config: Arc<ScimClientConfig>,
    deadline: Option<Instant>,
}

/// How long before the deadline we stop starting new attempts, so the caller still has
/// time to report the failure.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

impl ScimClient {
    pub fn new(credentials: Arc<dyn CredentialProvider>, config: ScimClientConfig) -> Result<Self, ScimError> {
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ScimError::Transport(e.to_string()))?;
        Ok(ScimClient {
            http,
            credentials,
            limiter: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config: Arc::new(config),
            deadline: None,
        })
    }

    /// The same client (same pool, same concurrency limit) bounded by `deadline`.
    pub fn until(&self, deadline: Instant) -> Self {
        ScimClient { deadline: Some(deadline), ..self.clone() }
    }

    fn url(&self, base: &str, segments: &[&str]) -> Result<Url, ScimError> {
        let mut url = Url::parse(base).map_err(|e| ScimError::InvalidUrl(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.config.allow_http => {}
            _ => return Err(ScimError::InsecureUrl),
        }
        {
            let mut path = url.path_segments_mut().map_err(|_| ScimError::InvalidUrl("cannot be a base".into()))?;
            path.pop_if_empty();
            // Ids are opaque: push() percent-encodes them.
            for segment in segments {
                path.push(segment);
            }
        }
        Ok(url)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.config.base_backoff.saturating_mul(1u32 << attempt.min(16));
        let cap = exponential.min(self.config.max_backoff);
        // Full jitter: spreads retries of many workers hitting one bridge.
        let millis = rand::rng().random_range(0..=cap.as_millis().max(1) as u64);
        Duration::from_millis(millis)
    }

    /// Sends one logical request, with retries. Returns the final status and body for the
    /// caller to interpret (including 4xx other than 401).
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), ScimError> {
        let mut credentials = self.credentials.current().await?;
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        let operation = format!("{method} /{}", segments.first().copied().unwrap_or(""));
        loop {
            let url = self.url(&credentials.base_url, segments)?;
            let remaining = match self.deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left <= DEADLINE_MARGIN {
                        return Err(ScimError::DeadlineExceeded { last: "no time left".into() });
                    }
                    left - DEADLINE_MARGIN
                }
                None => self.config.request_timeout,
            };
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&credentials.token)
                .header(reqwest::header::ACCEPT, "application/scim+json, application/json")
                .timeout(self.config.request_timeout.min(remaining))
                .query(query);
            if let Some(body) = body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/scim+json").body(body.to_string());
            }
            let started = Instant::now();
            let result = {
                let _permit = self.limiter.acquire().await.map_err(|e| ScimError::Transport(e.to_string()))?;
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = retry_after(&response);
                        match response.bytes().await {
                            Ok(bytes) => Ok((status, retry_after, bytes.to_vec())),
                            Err(e) => Err(describe_transport(&e)),
                        }
                    }
                    Err(e) => Err(describe_transport(&e)),
                }
            };
            let elapsed = started.elapsed();
            metrics::histogram!("scim_call_ms", "operation" => operation.clone())
                .record(elapsed.as_secs_f64() * 1000.0);

            let (problem, retry_after) = match result {
                Ok((StatusCode::UNAUTHORIZED, _, _)) if !refreshed => {
                    tracing::warn!(operation, "bridge answered 401; refreshing the token once");
                    metrics::counter!("scim_token_refreshes").increment(1);
                    credentials = self.credentials.refresh().await?;
                    refreshed = true;
                    continue;
                }
                Ok((StatusCode::UNAUTHORIZED, _, _)) => return Err(ScimError::Unauthorized),
                Ok((status, retry_after, bytes)) if is_retryable(status) => {
                    metrics::counter!("scim_calls", "status" => status.as_u16().to_string()).increment(1);
                    let detail = parse_error(&bytes).detail.unwrap_or_default();
                    (format!("{operation} answered {status} {detail}").trim().to_owned(), retry_after)
                }
                Ok((status, _, bytes)) => {
                    metrics::counter!("scim_calls", "status" => status.as_u16().to_string()).increment(1);
                    return Ok((status, bytes));
                }
                Err(problem) => {
                    metrics::counter!("scim_calls", "status" => "transport").increment(1);
                    (format!("{operation}: {problem}"), None)
                }
            };

            attempt += 1;
            if attempt > self.config.max_retries {
                return Err(ScimError::RetriesExhausted { attempts: attempt, last: problem });
            }
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            if let Some(deadline) = self.deadline
                && Instant::now() + delay + DEADLINE_MARGIN >= deadline
            {
                return Err(ScimError::DeadlineExceeded { last: problem });
            }
            metrics::counter!("scim_retries").increment(1);
            tracing::info!(operation, attempt, delay_ms = delay.as_millis() as u64, problem, "retrying bridge call");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        accept: &[StatusCode],
    ) -> Result<T, ScimError> {
        let (status, body) = self.send(method, segments, query, body).await?;
        if !accept.contains(&status) {
            return Err(status_error(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ScimError::Decode(e.to_string()))
    }

    /// One filtered query; `keep` re-checks every returned user, because a bridge that
    /// ignores the filter would return everyone. A bridge that rejects the filter (400)
    /// gets the same question answered by listing every user.
    async fn query_users(&self, filter: String, keep: impl Fn(&ScimUser) -> bool) -> Result<Vec<ScimUser>, ScimError> {
        let query = [("filter", filter), ("startIndex", "1".to_owned()), ("count", "10".to_owned())];
        let (status, body) = self.send(Method::GET, &["Users"], &query, None).await?;
        let users: Vec<ScimUser> = match status {
            StatusCode::OK => {
                serde_json::from_slice::<ListResponse<ScimUser>>(&body)
                    .map_err(|e| ScimError::Decode(e.to_string()))?
                    .resources
            }
            StatusCode::BAD_REQUEST => {
                tracing::warn!("bridge rejected a filter; falling back to listing users");
                self.list_all(&["Users"]).await?
            }
            other => return Err(status_error(other, &body)),
        };
        Ok(users.into_iter().filter(|user| keep(user)).collect())
    }

    async fn list_all<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Vec<T>, ScimError> {
        let mut all = Vec::new();
        let mut start_index = 1usize;
        loop {
            let query = [("startIndex", start_index.to_string()), ("count", self.config.page_size.to_string())];
            let page: ListResponse<T> = self.send_json(Method::GET, segments, &query, None, &[StatusCode::OK]).await?;
            let received = page.resources.len();
            all.extend(page.resources);
            if received == 0 || all.len() >= page.total_results {
                return Ok(all);
            }
            start_index += received;
        }
    }
}

#[async_trait]
impl Directory for ScimClient {
    async fn find_user(&self, external_id: &str, user_name: Option<&str>) -> Result<Option<ScimUser>, ScimError> {
        let by_external_id = |user: &ScimUser| user.external_id.as_deref() == Some(external_id);
        let by_user_name = |user: &ScimUser| user_name.is_some_and(|name| user.user_name.eq_ignore_ascii_case(name));
        let mut filter = format!("externalId eq {}", quote_filter_value(external_id));
        if let Some(name) = user_name {
            filter.push_str(&format!(" or userName eq {}", quote_filter_value(name)));
        }
        let found = self.query_users(filter, |user| by_external_id(user) || by_user_name(user)).await?;
        let preferred = found.iter().position(by_external_id).unwrap_or(0);
        Ok(found.into_iter().nth(preferred))
    }

    async fn find_user_by_user_name(&self, user_name: &str) -> Result<Option<ScimUser>, ScimError> {
        let filter = format!("userName eq {}", quote_filter_value(user_name));
        let found = self.query_users(filter, |user| user.user_name.eq_ignore_ascii_case(user_name)).await?;
        Ok(found.into_iter().next())
    }

    async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, ScimError> {
        let (status, body) = self.send(Method::GET, &["Users", id], &[], None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map(Some).map_err(|e| ScimError::Decode(e.to_string())),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(status_error(other, &body)),
        }
    }

    async fn create_user(&self, user: &NewUser) -> Result<CreateOutcome, ScimError> {
        let body = serde_json::to_value(user).map_err(|e| ScimError::Decode(e.to_string()))?;
        let (status, response) = self.send(Method::POST, &["Users"], &[], Some(&body)).await?;
        match status {
            // The hosted bridge answers 200, the RFC says 201: accept both.
            StatusCode::OK | StatusCode::CREATED => serde_json::from_slice(&response)
                .map(CreateOutcome::Created)
                .map_err(|e| ScimError::Decode(e.to_string())),
            StatusCode::CONFLICT => Ok(CreateOutcome::Conflict),
            other => Err(status_error(other, &response)),
        }
    }

    async fn patch_user(&self, id: &str, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.patch(&["Users", id], operations).await
    }

    async fn delete_user(&self, id: &str) -> Result<(), ScimError> {
        let (status, body) = self.send(Method::DELETE, &["Users", id], &[], None).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            other => Err(status_error(other, &body)),
        }
    }

    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        self.list_all(&["Groups"]).await
    }

    async fn create_group(&self, display_name: &str) -> Result<ScimGroup, ScimError> {
        let body = serde_json::json!({ "schemas": [GROUP_SCHEMA], "displayName": display_name });
        self.send_json(Method::POST, &["Groups"], &[], Some(&body), &[StatusCode::OK, StatusCode::CREATED]).await
    }

    async fn patch_group(&self, id: &str, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.patch(&["Groups", id], operations).await
    }
}

impl ScimClient {
    async fn patch(&self, segments: &[&str], operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        let body = serde_json::to_value(PatchRequest::new(operations)).map_err(|e| ScimError::Decode(e.to_string()))?;
        let (status, response) = self.send(Method::PATCH, segments, &[], Some(&body)).await?;
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            other => Err(status_error(other, &response)),
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    // Seconds only; the HTTP-date form is rare for APIs and we then fall back to backoff.
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(60)))
}

fn describe_transport(error: &reqwest::Error) -> String {
    // Categories only: short, stable, and free of URLs and headers.
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_body() || error.is_decode() {
        "response cut off".to_owned()
    } else {
        "request failed".to_owned()
    }
}

fn parse_error(body: &[u8]) -> ScimErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

fn status_error(status: StatusCode, body: &[u8]) -> ScimError {
    let parsed = parse_error(body);
    ScimError::Status { status: status.as_u16(), scim_type: parsed.scim_type, detail: parsed.detail }
}
