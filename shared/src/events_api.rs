//! The 1Password Events API, as invite-retry needs it: successful sign-ins tell us who has
//! accepted an invitation, which the SCIM bridge cannot (an invited user reads `active: true`
//! exactly like one who accepted).
//!
//! `POST /api/v2/signinattempts` pages by cursor: the first request carries a *reset cursor*
//! (`limit`, `start_time`), every later one the `cursor` the previous answer returned. The
//! answer is `{"cursor", "has_more", "items"}`. The port is [`SignInEvents`]; the HTTP
//! implementation is [`HttpSignInEvents`], the in-memory one [`InMemorySignInEvents`].

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;

/// Largest page the API accepts.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// The API keeps 120 days of events; a reset cursor cannot start earlier.
pub const RETENTION_DAYS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum EventsApiError {
    #[error("Events API URL must use https (set ALLOW_HTTP_BRIDGE=true only for local testing)")]
    InsecureUrl,
    #[error("Events API URL is invalid: {0}")]
    InvalidUrl(String),
    #[error("Events API rejected the bearer token (401)")]
    Unauthorized,
    #[error("Events API token lacks the signinattempts feature (403)")]
    Forbidden,
    #[error("Events API answered {status}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status { status: u16, message: Option<String> },
    #[error("Events API unreachable: {0}")]
    Transport(String),
    #[error("Events API answered something we could not read: {0}")]
    Decode(String),
    #[error("gave up before the deadline; last problem: {last}")]
    DeadlineExceeded { last: String },
    #[error("gave up after {attempts} attempts; last problem: {last}")]
    RetriesExhausted { attempts: u32, last: String },
}

/// Which page to read: a fresh start (reset cursor) or the continuation of a stored cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    Reset { limit: u32, start_time: Option<DateTime<Utc>> },
    Continue { cursor: String },
}

impl PageRequest {
    fn body(&self) -> serde_json::Value {
        match self {
            PageRequest::Reset { limit, start_time } => {
                let mut body = serde_json::json!({ "limit": (*limit).clamp(1, MAX_PAGE_LIMIT) });
                if let Some(start) = start_time {
                    body["start_time"] = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
                }
                body
            }
            PageRequest::Continue { cursor } => serde_json::json!({ "cursor": cursor }),
        }
    }
}

/// The user a sign-in attempt was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUser {
    pub uuid: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
}

/// One sign-in attempt. Fields we do not use (`country`, `client`, `location`, …) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInAttempt {
    pub uuid: String,
    #[serde(default)]
    pub session_uuid: String,
    pub timestamp: DateTime<Utc>,
    /// `success`, `credentials_failed`, `mfa_failed`, `sso_failed`, …
    pub category: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub target_user: EventUser,
}

impl SignInAttempt {
    pub fn is_success(&self) -> bool {
        self.category.eq_ignore_ascii_case("success")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInPage {
    pub cursor: String,
    pub has_more: bool,
    #[serde(default)]
    pub items: Vec<SignInAttempt>,
}

/// What `GET /api/v2/auth/introspect` says about the token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Introspection {
    pub uuid: String,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub account_uuid: Option<String>,
}

impl Introspection {
    pub fn can_read_sign_ins(&self) -> bool {
        self.features.iter().any(|f| f == "signinattempts")
    }
}

/// The Events API port: one page of sign-in attempts, bounded by `deadline`.
#[async_trait]
pub trait SignInEvents: Send + Sync {
    async fn sign_in_attempts(&self, request: &PageRequest, deadline: Instant) -> Result<SignInPage, EventsApiError>;
    async fn introspect(&self, deadline: Instant) -> Result<Introspection, EventsApiError>;
}

#[derive(Debug, Clone)]
pub struct EventsClientConfig {
    pub request_timeout: Duration,
    /// Attempts after the first for 429, 5xx and transport failures.
    pub max_retries: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Accept `http://` URLs (local stack and tests only).
    pub allow_http: bool,
}

impl Default for EventsClientConfig {
    fn default() -> Self {
        EventsClientConfig {
            request_timeout: Duration::from_secs(10),
            max_retries: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            allow_http: false,
        }
    }
}

/// How long before the deadline no new attempt starts, so the caller can still report.
const DEADLINE_MARGIN: Duration = Duration::from_millis(300);

/// The Events API over HTTPS with a bearer token.
#[derive(Clone)]
pub struct HttpSignInEvents {
    http: reqwest::Client,
    base: Url,
    token: String,
    config: EventsClientConfig,
}

impl fmt::Debug for HttpSignInEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSignInEvents").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl HttpSignInEvents {
    /// `base_url` is the account's Events API host, e.g. `https://events.1password.com`.
    /// `http` is shared so warm invocations reuse connections.
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        token: impl Into<String>,
        config: EventsClientConfig,
    ) -> Result<Self, EventsApiError> {
        let base = Url::parse(base_url).map_err(|e| EventsApiError::InvalidUrl(e.to_string()))?;
        match base.scheme() {
            "https" => {}
            "http" if config.allow_http => {}
            _ => return Err(EventsApiError::InsecureUrl),
        }
        if base.cannot_be_a_base() {
            return Err(EventsApiError::InvalidUrl("cannot be a base".into()));
        }
        Ok(HttpSignInEvents { http, base, token: token.into(), config })
    }

    /// A client with the timeouts this module expects.
    pub fn http_client() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.config.base_backoff.saturating_mul(1u32 << attempt.min(16)).min(self.config.max_backoff);
        Duration::from_millis(rand::rng().random_range(0..=cap.as_millis().max(1) as u64))
    }

    /// One logical request with retries on 429/5xx/transport failures, never past `deadline`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<T, EventsApiError> {
        let operation = format!("{method} /{}", segments.join("/"));
        let mut attempt = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left <= DEADLINE_MARGIN {
                return Err(EventsApiError::DeadlineExceeded { last: "no time left".into() });
            }
            let mut request = self
                .http
                .request(method.clone(), self.url(segments))
                .bearer_auth(&self.token)
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.config.request_timeout.min(left - DEADLINE_MARGIN));
            if let Some(body) = body {
                request = request.json(body);
            }
            let (problem, retry_after) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    let bytes = match response.bytes().await {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            metrics::counter!("events_api_calls", "status" => "transport").increment(1);
                            self.retry_or_fail(&mut attempt, format!("{operation}: {}", describe(&e)), None, deadline)
                                .await?;
                            continue;
                        }
                    };
                    metrics::counter!("events_api_calls", "status" => status.as_u16().to_string()).increment(1);
                    match status {
                        s if s.is_success() => {
                            return serde_json::from_slice(&bytes).map_err(|e| EventsApiError::Decode(e.to_string()));
                        }
                        StatusCode::UNAUTHORIZED => return Err(EventsApiError::Unauthorized),
                        StatusCode::FORBIDDEN => return Err(EventsApiError::Forbidden),
                        s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                            (format!("{operation} answered {s}"), retry_after)
                        }
                        s => return Err(EventsApiError::Status { status: s.as_u16(), message: error_message(&bytes) }),
                    }
                }
                Err(e) => {
                    metrics::counter!("events_api_calls", "status" => "transport").increment(1);
                    (format!("{operation}: {}", describe(&e)), None)
                }
            };
            self.retry_or_fail(&mut attempt, problem, retry_after, deadline).await?;
        }
    }

    async fn retry_or_fail(
        &self,
        attempt: &mut u32,
        problem: String,
        retry_after: Option<Duration>,
        deadline: Instant,
    ) -> Result<(), EventsApiError> {
        *attempt += 1;
        if *attempt > self.config.max_retries {
            return Err(EventsApiError::RetriesExhausted { attempts: *attempt, last: problem });
        }
        let delay = retry_after.unwrap_or_else(|| self.backoff(*attempt));
        if Instant::now() + delay + DEADLINE_MARGIN >= deadline {
            return Err(EventsApiError::DeadlineExceeded { last: problem });
        }
        tracing::info!(attempt = *attempt, delay_ms = delay.as_millis() as u64, problem, "retrying Events API call");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[async_trait]
impl SignInEvents for HttpSignInEvents {
    async fn sign_in_attempts(&self, request: &PageRequest, deadline: Instant) -> Result<SignInPage, EventsApiError> {
        let body = request.body();
        self.call(reqwest::Method::POST, &["api", "v2", "signinattempts"], Some(&body), deadline).await
    }

    async fn introspect(&self, deadline: Instant) -> Result<Introspection, EventsApiError> {
        self.call(reqwest::Method::GET, &["api", "v2", "auth", "introspect"], None, deadline).await
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(60)))
}

fn describe(error: &reqwest::Error) -> &'static str {
    // Categories only: never the URL or headers.
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response cut off"
    } else {
        "request failed"
    }
}

/// The API's error body is `{"Error": {"Message": "..."}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.pointer("/Error/Message").and_then(|m| m.as_str()).map(|m| m.chars().take(200).collect())
}

/// Sign-in attempts held in memory, paged exactly like the API (for unit tests and the local
/// stack). Cursors encode a position in the append-only list.
#[derive(Default)]
pub struct InMemorySignInEvents {
    attempts: Mutex<Vec<SignInAttempt>>,
    requests: Mutex<Vec<PageRequest>>,
}

#[derive(Serialize, Deserialize)]
struct MemoryCursor {
    position: usize,
    limit: u32,
    start: Option<DateTime<Utc>>,
}

impl InMemorySignInEvents {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, attempt: SignInAttempt) {
        lock(&self.attempts).push(attempt);
    }

    /// Every page request received, in order.
    pub fn requests(&self) -> Vec<PageRequest> {
        lock(&self.requests).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl SignInEvents for InMemorySignInEvents {
    async fn sign_in_attempts(&self, request: &PageRequest, _deadline: Instant) -> Result<SignInPage, EventsApiError> {
        lock(&self.requests).push(request.clone());
        let cursor = match request {
            PageRequest::Reset { limit, start_time } => {
                MemoryCursor { position: 0, limit: (*limit).clamp(1, MAX_PAGE_LIMIT), start: *start_time }
            }
            PageRequest::Continue { cursor } => URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| EventsApiError::Status { status: 400, message: Some("invalid cursor".into()) })?,
        };
        let attempts = lock(&self.attempts);
        let in_window = |a: &SignInAttempt| cursor.start.is_none_or(|s| a.timestamp >= s);
        let mut items = Vec::new();
        let mut position = cursor.position.min(attempts.len());
        while position < attempts.len() && items.len() < cursor.limit as usize {
            if in_window(&attempts[position]) {
                items.push(attempts[position].clone());
            }
            position += 1;
        }
        let has_more = attempts[position..].iter().any(in_window);
        let next = MemoryCursor { position, ..cursor };
        let encoded =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&next).map_err(|e| EventsApiError::Decode(e.to_string()))?);
        Ok(SignInPage { cursor: encoded, has_more, items })
    }

    async fn introspect(&self, _deadline: Instant) -> Result<Introspection, EventsApiError> {
        Ok(Introspection {
            uuid: "IN-MEMORY".into(),
            issued_at: None,
            features: vec!["signinattempts".into()],
            account_uuid: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32, category: &str) -> SignInAttempt {
        SignInAttempt {
            uuid: format!("a{n}"),
            session_uuid: format!("s{n}"),
            timestamp: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).unwrap(),
            category: category.into(),
            kind: "credentials_ok".into(),
            target_user: EventUser { uuid: format!("U{n}"), name: "N".into(), email: format!("u{n}@example.com") },
        }
    }

    #[test]
    fn parses_the_documented_response_shape() {
        let body = r#"{"cursor":"aGVsbG8","has_more":true,"items":[{"uuid":"56YE2TYN2VFYRLNSHKPW5NVT5E",
            "session_uuid":"A5K6COGVRVEJXJW3XQZGS7VAMM","timestamp":"2023-03-15T16:33:50-03:00",
            "category":"success","type":"credentials_ok","country":"CA",
            "target_user":{"uuid":"IR7VJHJ36JHINBFAD7V2T5MP3E","name":"Jane","email":"jane@example.com","type":"user"},
            "client":{"app_name":"1Password Browser Extension","ip_address":"192.0.2.1"},
            "account_uuid":"VZSYVT2LGHTBWBQGUJAIZVRABM"}]}"#;
        let page: SignInPage = serde_json::from_str(body).unwrap();
        assert!(page.has_more);
        assert_eq!(page.items.len(), 1);
        assert!(page.items[0].is_success());
        assert_eq!(page.items[0].target_user.uuid, "IR7VJHJ36JHINBFAD7V2T5MP3E");
        assert_eq!(page.items[0].timestamp, DateTime::parse_from_rfc3339("2023-03-15T19:33:50Z").unwrap());
    }

    #[test]
    fn request_bodies_follow_the_reset_and_continuing_cursor_schemas() {
        let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            PageRequest::Reset { limit: 5000, start_time: Some(start) }.body(),
            serde_json::json!({"limit": 1000, "start_time": "2026-03-02T09:00:00Z"})
        );
        assert_eq!(PageRequest::Reset { limit: 20, start_time: None }.body(), serde_json::json!({"limit": 20}));
        assert_eq!(PageRequest::Continue { cursor: "abc".into() }.body(), serde_json::json!({"cursor": "abc"}));
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        let http = reqwest::Client::new();
        let refused = HttpSignInEvents::new(http.clone(), "http://events.local", "t", EventsClientConfig::default());
        assert!(matches!(refused, Err(EventsApiError::InsecureUrl)));
        let allowed = EventsClientConfig { allow_http: true, ..Default::default() };
        assert!(HttpSignInEvents::new(http.clone(), "http://events.local", "t", allowed).is_ok());
        assert!(matches!(
            HttpSignInEvents::new(http, "not a url", "t", EventsClientConfig::default()),
            Err(EventsApiError::InvalidUrl(_))
        ));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let client = HttpSignInEvents::new(
            reqwest::Client::new(),
            "https://events.1password.com",
            "ev-secret-77",
            EventsClientConfig::default(),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("ev-secret-77"));
    }

    #[test]
    fn builds_urls_under_a_base_with_or_without_a_trailing_slash() {
        for base in ["https://events.1password.com", "https://events.1password.com/", "https://h/prefix/"] {
            let client =
                HttpSignInEvents::new(reqwest::Client::new(), base, "t", EventsClientConfig::default()).unwrap();
            let url = client.url(&["api", "v2", "signinattempts"]);
            assert!(url.as_str().ends_with("/api/v2/signinattempts"), "{url}");
            assert!(!url.as_str().contains("//api"), "{url}");
        }
    }

    #[tokio::test]
    async fn in_memory_pages_by_cursor_and_continues_after_new_events() {
        let events = InMemorySignInEvents::new();
        for n in 0..5 {
            events.push(attempt(n, if n % 2 == 0 { "success" } else { "credentials_failed" }));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut request = PageRequest::Reset { limit: 2, start_time: None };
        let mut seen = Vec::new();
        loop {
            let page = events.sign_in_attempts(&request, deadline).await.unwrap();
            seen.extend(page.items.iter().map(|a| a.uuid.clone()));
            request = PageRequest::Continue { cursor: page.cursor };
            if !page.has_more {
                break;
            }
        }
        assert_eq!(seen, ["a0", "a1", "a2", "a3", "a4"]);
        events.push(attempt(9, "success"));
        let page = events.sign_in_attempts(&request, deadline).await.unwrap();
        assert_eq!(page.items.iter().map(|a| a.uuid.as_str()).collect::<Vec<_>>(), ["a9"]);
        assert!(!page.has_more);
        let bad = events.sign_in_attempts(&PageRequest::Continue { cursor: "%%".into() }, deadline).await;
        assert!(matches!(bad, Err(EventsApiError::Status { status: 400, .. })));
    }

    #[tokio::test]
    async fn in_memory_reset_cursor_honours_start_time() {
        let events = InMemorySignInEvents::new();
        for n in 0..4 {
            events.push(attempt(n, "success"));
        }
        let start = attempt(2, "success").timestamp;
        let page = events
            .sign_in_attempts(
                &PageRequest::Reset { limit: 10, start_time: Some(start) },
                Instant::now() + Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(page.items.iter().map(|a| a.uuid.as_str()).collect::<Vec<_>>(), ["a2", "a3"]);
    }
}
