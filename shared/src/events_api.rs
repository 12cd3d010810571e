//! The 1Password Events API, as invite-retry needs it: successful sign-ins tell us who has
//! accepted an invitation, which the SCIM bridge cannot (an invited user reads `active: true`
//! exactly like one who accepted).
//!
//! `POST /api/v2/signinattempts` pages by cursor: the first request carries a *reset cursor*
//! (`limit`, `start_time`), every later one the `cursor` the previous answer returned. The
//! answer is `{"cursor", "has_more", "items"}`. `GET /api/v2/auth/introspect` says which
//! 1Password account the token belongs to (`account_uuid`), which invite-retry compares with
//! the bridge's account before trusting the sign-ins. The port is [`SignInEvents`]; the HTTP
//! implementation is [`HttpSignInEvents`], the in-memory one [`InMemorySignInEvents`].

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use url::Url;

use crate::http_retry::{
    Attempt, BaseUrlError, GaveUp, HttpClient, Reply, RetryPolicy, Verdict, describe_transport, is_transient, join_url,
    parse_base_url,
};
use crate::secrets::SecretString;

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
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
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
    /// Retries of 429, 5xx and transport failures, backoff and per-request timeout.
    pub retry: RetryPolicy,
}

impl Default for EventsClientConfig {
    fn default() -> Self {
        let retry = RetryPolicy { max_retries: 4, max_backoff: Duration::from_secs(5), ..RetryPolicy::default() };
        EventsClientConfig { retry }
    }
}

/// The Events API over HTTPS with a bearer token.
#[derive(Debug, Clone)]
pub struct HttpSignInEvents {
    http: HttpClient,
    base: Url,
    token: SecretString,
}

impl HttpSignInEvents {
    /// `base_url` is the account's Events API host, e.g. `https://events.1password.com`.
    /// `http` comes from [`Self::http_client`] and is shared, so warm invocations (and a
    /// client rebuilt after a token rotation) reuse connections.
    pub fn new(
        http: HttpClient,
        base_url: &str,
        token: SecretString,
        allow_http: bool,
    ) -> Result<Self, EventsApiError> {
        let base = parse_base_url(base_url, allow_http).map_err(|error| match error {
            BaseUrlError::Insecure => EventsApiError::InsecureUrl,
            other => EventsApiError::InvalidUrl(other.to_string()),
        })?;
        Ok(HttpSignInEvents { http, base, token })
    }

    /// The HTTP client this module expects, with `config`'s retry policy.
    pub fn http_client(config: &EventsClientConfig) -> Result<HttpClient, EventsApiError> {
        HttpClient::new("events_api", config.retry.clone())
            .map_err(|e| EventsApiError::Transport(describe_transport(&e).to_owned()))
    }

    fn url(&self, segments: &[&str]) -> Url {
        join_url(&self.base, segments)
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
        let build = |_: Attempt| {
            let mut request = self
                .http
                .http()
                .request(method.clone(), self.url(segments))
                .bearer_auth(self.token.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            async move { Ok(request) }
        };
        self.http.send(&operation, Some(deadline), build, |reply, _| classify(&operation, reply)).await
    }
}

/// What an Events API answer means.
fn classify<T: serde::de::DeserializeOwned>(operation: &str, reply: Reply) -> Verdict<T, EventsApiError> {
    match reply.status {
        status if status.is_success() => match serde_json::from_slice(&reply.body) {
            Ok(value) => Verdict::Done(value),
            Err(e) => Verdict::Fail(EventsApiError::Decode(e.to_string())),
        },
        StatusCode::UNAUTHORIZED => Verdict::Fail(EventsApiError::Unauthorized),
        StatusCode::FORBIDDEN => Verdict::Fail(EventsApiError::Forbidden),
        status if is_transient(status) => {
            Verdict::Retry { problem: format!("{operation} answered {status}"), retry_after: reply.retry_after }
        }
        status => {
            Verdict::Fail(EventsApiError::Status { status: status.as_u16(), message: error_message(&reply.body) })
        }
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
    /// What introspection reports as the token's account.
    account_uuid: Option<String>,
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

    /// Introspection will say the token belongs to this 1Password account.
    pub fn with_account_uuid(mut self, account_uuid: &str) -> Self {
        self.account_uuid = Some(account_uuid.to_owned());
        self
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
            account_uuid: self.account_uuid.clone(),
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
    fn introspection_names_the_tokens_account() {
        let body = r#"{"uuid":"OK41XEGLRTH4YKO5YRTCPNX3IU","issued_at":"2020-06-11T16:32:50-03:00",
            "features":["auditevents","itemusages","signinattempts"],"account_uuid":"M4E2SWNZAZFTRGQGDNS2E5A4MU"}"#;
        let info: Introspection = serde_json::from_str(body).unwrap();
        assert_eq!(info.account_uuid.as_deref(), Some("M4E2SWNZAZFTRGQGDNS2E5A4MU"));
        assert!(info.can_read_sign_ins());
    }

    #[tokio::test]
    async fn in_memory_introspection_reports_the_account_it_was_given() {
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(InMemorySignInEvents::new().introspect(deadline).await.unwrap().account_uuid, None);
        let events = InMemorySignInEvents::new().with_account_uuid("VZSYVT2LGHTBWBQGUJAIZVRABM");
        assert_eq!(
            events.introspect(deadline).await.unwrap().account_uuid.as_deref(),
            Some("VZSYVT2LGHTBWBQGUJAIZVRABM")
        );
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

    fn client(base: &str, allow_http: bool) -> Result<HttpSignInEvents, EventsApiError> {
        let http = HttpSignInEvents::http_client(&EventsClientConfig::default()).unwrap();
        HttpSignInEvents::new(http, base, SecretString::new("ev-secret-77"), allow_http)
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        assert!(matches!(client("http://events.local", false), Err(EventsApiError::InsecureUrl)));
        assert!(client("http://events.local", true).is_ok());
        assert!(matches!(client("not a url", false), Err(EventsApiError::InvalidUrl(_))));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let client = client("https://events.1password.com", false).unwrap();
        assert!(!format!("{client:?}").contains("ev-secret-77"));
    }

    #[test]
    fn builds_urls_under_a_base_with_or_without_a_trailing_slash() {
        for base in ["https://events.1password.com", "https://events.1password.com/", "https://h/prefix/"] {
            let url = client(base, false).unwrap().url(&["api", "v2", "signinattempts"]);
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
