//! The one way this crate calls an HTTP API (the SCIM bridge, the 1Password Events API, the
//! HR and IdP APIs): a [`RetryPolicy`] with exponential backoff and full jitter that honours
//! `Retry-After` (seconds or HTTP-date, capped) and never starts an attempt it cannot finish
//! before the invocation's deadline; one transport-error describer that never shows a URL;
//! one URL joiner that percent-encodes every segment.
//!
//! Each client keeps only what is its own: how to build a request, what each answer means
//! (a [`Verdict`]) and its error type, which says how giving up reads (`From<GaveUp>`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

/// No attempt starts later than this before the deadline, so the caller still has time to
/// report the failure (and a Lambda to answer) after the last one.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// The first backoff's upper bound; it doubles per retry up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` asking for longer is cut to this.
    pub max_retry_after: Duration,
    /// One attempt's timeout (shortened when the deadline is nearer).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in `[0, min(max_backoff, base_backoff × 2^retry)]`, so many workers
    /// retrying against one bridge spread out instead of arriving together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.base_backoff.saturating_mul(1u32 << retry.min(16)).min(self.max_backoff);
        Duration::from_millis(rand::rng().random_range(0..=cap.as_millis().max(1) as u64))
    }

    fn wait_before(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after),
            None => self.backoff(retry),
        }
    }
}

/// What the caller gets to know about the attempt it is making.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Retries made before this attempt (0 for the first).
    pub retries: u32,
    /// How long this attempt may take.
    pub timeout: Duration,
    /// The previous attempt asked for fresh credentials ([`Verdict::RefreshAndRetry`]).
    pub refresh_credentials: bool,
    /// Credentials were refreshed once already in this call; a second refusal is final.
    pub refreshed: bool,
}

/// What one answer means, as the client classifies it.
#[derive(Debug)]
pub enum Verdict<T, E> {
    Done(T),
    Fail(E),
    /// Passes on its own (429, 5xx, a timeout): try again after a pause.
    Retry {
        problem: String,
        retry_after: Option<Duration>,
    },
    /// The credentials were refused: re-read them and try once more at once. Allowed once
    /// per call; a client sees `Attempt::refreshed` and fails instead of asking again.
    RefreshAndRetry {
        problem: String,
    },
}

/// Why a call stopped retrying; every client's error type can be made from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GaveUp {
    #[error("gave up before the invocation deadline; last problem: {last}")]
    Deadline { last: String },
    #[error("gave up after {attempts} attempts; last problem: {last}")]
    RetriesExhausted { attempts: u32, last: String },
}

/// Runs `attempt` until it is done or failed, or until the policy or the deadline says stop.
/// `label` names the caller in the retry log line and the `<label>_retries` metric.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    label: &'static str,
    deadline: Option<std::time::Instant>,
    mut attempt: F,
) -> Result<T, E>
where
    E: From<GaveUp>,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Verdict<T, E>>,
{
    let deadline = deadline.map(Instant::from_std);
    let mut next =
        Attempt { retries: 0, timeout: policy.request_timeout, refresh_credentials: false, refreshed: false };
    let mut last = String::from("no time left");
    loop {
        next.timeout = match deadline {
            Some(deadline) => match deadline.saturating_duration_since(Instant::now()).checked_sub(DEADLINE_MARGIN) {
                Some(left) if !left.is_zero() => policy.request_timeout.min(left),
                _ => return Err(GaveUp::Deadline { last }.into()),
            },
            None => policy.request_timeout,
        };
        let (problem, retry_after) = match attempt(next).await {
            Verdict::Done(value) => return Ok(value),
            Verdict::Fail(error) => return Err(error),
            Verdict::RefreshAndRetry { problem } if !next.refreshed => {
                tracing::warn!(label, problem, "credentials refused; re-reading them once");
                next = Attempt { refresh_credentials: true, refreshed: true, ..next };
                last = problem;
                continue;
            }
            Verdict::RefreshAndRetry { problem } => (problem, None),
            Verdict::Retry { problem, retry_after } => (problem, retry_after),
        };
        next.refresh_credentials = false;
        next.retries += 1;
        if next.retries > policy.max_retries {
            return Err(GaveUp::RetriesExhausted { attempts: next.retries, last: problem }.into());
        }
        let delay = policy.wait_before(next.retries, retry_after);
        if deadline.is_some_and(|deadline| Instant::now() + delay + DEADLINE_MARGIN >= deadline) {
            return Err(GaveUp::Deadline { last: problem }.into());
        }
        metrics::counter!(format!("{label}_retries")).increment(1);
        tracing::info!(label, retry = next.retries, delay_ms = delay.as_millis() as u64, problem, "retrying");
        last = problem;
        tokio::time::sleep(delay).await;
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// `Retry-After`, when the answer carried one we could read.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// A pooled HTTPS client (rustls) that sends every request through [`retry`], records
/// `<label>_calls{status}` and `<label>_call_ms{operation}`, and optionally bounds the
/// requests in flight across every clone.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    policy: Arc<RetryPolicy>,
    label: &'static str,
    in_flight: Option<Arc<Semaphore>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("label", &self.label).field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(label: &'static str, policy: RetryPolicy) -> Result<Self, reqwest::Error> {
        crate::lambda::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(policy.request_timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("onepassword-provisioning/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpClient { http, policy: Arc::new(policy), label, in_flight: None })
    }

    /// At most `limit` requests of this client and its clones in flight at once.
    pub fn with_concurrency_limit(mut self, limit: usize) -> Self {
        self.in_flight = Some(Arc::new(Semaphore::new(limit.max(1))));
        self
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The underlying client, for building requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends the request `build` makes for each attempt (with the attempt's timeout applied)
    /// and lets `classify` say what each answer means. Transport failures are retried.
    pub async fn send<T, E, B, BFut, C>(
        &self,
        operation: &str,
        deadline: Option<std::time::Instant>,
        build: B,
        classify: C,
    ) -> Result<T, E>
    where
        E: From<GaveUp>,
        B: Fn(Attempt) -> BFut,
        BFut: Future<Output = Result<RequestBuilder, E>>,
        C: Fn(Reply, Attempt) -> Verdict<T, E>,
    {
        let (build, classify) = (&build, &classify);
        retry(&self.policy, self.label, deadline, move |attempt| async move {
            let request = match build(attempt).await {
                Ok(request) => request.timeout(attempt.timeout),
                Err(error) => return Verdict::Fail(error),
            };
            let started = std::time::Instant::now();
            let reply = self.exchange(request).await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            metrics::histogram!(format!("{}_call_ms", self.label), "operation" => operation.to_owned())
                .record(elapsed_ms);
            match reply {
                Ok(reply) => {
                    metrics::counter!(format!("{}_calls", self.label), "status" => reply.status.as_u16().to_string())
                        .increment(1);
                    classify(reply, attempt)
                }
                Err(error) => {
                    metrics::counter!(format!("{}_calls", self.label), "status" => "transport").increment(1);
                    Verdict::Retry {
                        problem: format!("{operation}: {}", describe_transport(&error)),
                        retry_after: None,
                    }
                }
            }
        })
        .await
    }

    async fn exchange(&self, request: RequestBuilder) -> Result<Reply, reqwest::Error> {
        let _permit = match &self.in_flight {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        };
        let response = request.send().await?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), Utc::now());
        let body = response.bytes().await?.to_vec();
        Ok(Reply { status, retry_after, body })
    }
}

/// True for answers that pass on their own: 429 and 5xx.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `Retry-After` as a wait from `now`: delta-seconds, or an HTTP-date (IMF-fixdate, which
/// RFC 2822 parsing reads; a date in the past means "now"). Unreadable values are ignored,
/// and the caller falls back to its backoff.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A transport failure in a few stable words: never the URL (it can carry a person's id) nor
/// headers (they carry credentials).
pub fn describe_transport(error: &reqwest::Error) -> &'static str {
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

/// Why a configured base URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("is invalid: {0}")]
    Invalid(String),
    #[error("must use https")]
    Insecure,
    #[error("cannot be a base URL")]
    NotABase,
    #[error("must not embed credentials (they would end up in logs)")]
    EmbeddedCredentials,
}

/// Parses a configured base URL: `https` (or `http` when `allow_http`), able to take path
/// segments, no credentials in it.
pub fn parse_base_url(raw: &str, allow_http: bool) -> Result<Url, BaseUrlError> {
    let url = Url::parse(raw.trim()).map_err(|e| BaseUrlError::Invalid(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(BaseUrlError::Insecure),
    }
    if url.cannot_be_a_base() {
        return Err(BaseUrlError::NotABase);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlError::EmbeddedCredentials);
    }
    Ok(url)
}

/// `base` + path segments, each percent-encoded, so an id can never change the path; a
/// trailing slash on `base` makes no difference.
pub fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

#[cfg(test)]
mod tests;
