//! The `ingest` function: `POST /webhooks/{connection}` (and the `GET` of Okta's
//! verification). Verifies the webhook on its raw bytes, answers handshakes, normalizes the
//! payload into [`LifecycleEvent`](crate::LifecycleEvent)s and queues them; see
//! docs/ingest.md and docs/openapi.yaml.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use crate::config::{ConfigError, Env};
use crate::http_api::{error_response, json_response};
use crate::queue::{EventQueue, SqsEventQueue};
use crate::secrets::{AwsSecretSource, SecretSource};
use crate::sources::{self, Connections, Context, Entry, InboundRequest, Normalized, Outcome, SourceError};
use connections::ConnectionCache;

/// How many event ids one log line lists; a BambooHR batch can hold hundreds.
const LOGGED_IDS: usize = 20;

pub use crate::clock::{Clock, FixedClock, SystemClock};
pub use config::IngestConfig;

mod config;
mod connections;

/// Every external system `ingest` uses: in Lambda the AWS clients, built by the first
/// request that needs them ([`IngestApp::from_env`]); by hand in the local stack and tests.
pub struct Ports {
    pub queue: Arc<dyn EventQueue>,
    pub secrets: Arc<dyn SecretSource>,
    pub clock: Arc<dyn Clock>,
}

/// Everything `ingest` builds once per cold start. Cheap to clone.
#[derive(Clone)]
pub struct IngestApp {
    inner: Arc<Inner>,
}

#[expect(clippy::large_enum_variant, reason = "one per process, behind an Arc")]
enum Inner {
    Ready(Ready),
    /// Started without a usable configuration: webhook routes answer 500 (the logs name the
    /// variable to fix) rather than the function failing every invocation opaquely.
    Misconfigured(String),
}

struct Ready {
    config: IngestConfig,
    queue: Arc<dyn EventQueue>,
    connections: ConnectionCache,
    clock: Arc<dyn Clock>,
}

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    ignored: usize,
}

/// The `{connection}` of `/webhooks/{connection}`. API Gateway HTTP APIs with a named stage
/// keep the stage in the raw path, so one leading segment is allowed before `webhooks`.
pub fn route(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["webhooks", name] | [_, "webhooks", name] if !name.is_empty() => Some(name),
        _ => None,
    }
}

impl IngestApp {
    pub fn new(config: IngestConfig, ports: Ports) -> Self {
        let Ports { queue, secrets, clock } = ports;
        let connections = ConnectionCache::new(secrets, config.connections_secret_id.clone(), config.secret_cache_ttl);
        IngestApp { inner: Arc::new(Inner::Ready(Ready { config, queue, connections, clock })) }
    }

    /// The Lambda's configuration: settings from the environment (checked now, so a bad
    /// variable shows at cold start), SQS and Secrets Manager through the default AWS
    /// configuration chain. Loading that chain costs milliseconds (the HTTPS client parses
    /// the system's root certificates), and every request that gets past routing needs it,
    /// so it loads on the first such request instead of during init: a cold start caused by
    /// a webhook does the same work in the same order, and init -- which on a small Lambda
    /// shares one slice of CPU with anything running beside it -- stays short.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let env = Env::from_process();
        let config = IngestConfig::from_env(&env)?;
        let aws = Arc::new(LazyAws::new(env.required("QUEUE_URL")?));
        Ok(Self::new(config, Ports { queue: aws.clone(), secrets: aws, clock: Arc::new(SystemClock) }))
    }

    /// An app that routes but cannot serve webhooks; `reason` goes to the logs.
    pub fn misconfigured(reason: impl Into<String>) -> Self {
        IngestApp { inner: Arc::new(Inner::Misconfigured(reason.into())) }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let raw_path = request.raw_http_path();
        let path = if raw_path.is_empty() { request.uri().path() } else { raw_path };
        let Some(connection) = route(path).map(str::to_owned) else {
            tracing::info!(status = 404, outcome = "no_route", "no such route");
            return error_response(404, "no such route; webhooks are sent to /webhooks/{connection}");
        };
        let span = tracing::info_span!("request", connection = %connection, source = tracing::field::Empty);
        match self.inner.as_ref() {
            Inner::Ready(ready) => ready.handle(&connection, request).instrument(span).await,
            Inner::Misconfigured(reason) => {
                tracing::error!(%reason, connection, status = 500, "ingest is misconfigured");
                error_response(500, "ingest is misconfigured; see the function's logs")
            }
        }
    }
}

/// The AWS clients, built by the first request that needs them.
struct LazyAws {
    queue_url: String,
    clients: tokio::sync::OnceCell<(SqsEventQueue, AwsSecretSource)>,
}

impl LazyAws {
    fn new(queue_url: String) -> Self {
        LazyAws { queue_url, clients: tokio::sync::OnceCell::new() }
    }

    async fn clients(&self) -> &(SqsEventQueue, AwsSecretSource) {
        self.clients
            .get_or_init(|| async {
                let sdk = crate::lambda::sdk_config().await;
                (SqsEventQueue::from_sdk_config(&sdk, self.queue_url.clone()), AwsSecretSource::from_sdk_config(&sdk))
            })
            .await
    }
}

#[async_trait::async_trait]
impl EventQueue for LazyAws {
    async fn send(&self, events: &[crate::LifecycleEvent]) -> Result<(), crate::queue::QueueError> {
        self.clients().await.0.send(events).await
    }
}

#[async_trait::async_trait]
impl SecretSource for LazyAws {
    async fn secret_string(&self, id: &str) -> Result<String, crate::secrets::SecretsError> {
        self.clients().await.1.secret_string(id).await
    }
}

/// The parts of one request's story its answer's metric and log line carry (the request's
/// span carries the connection and the source).
struct Report {
    source: &'static str,
    started: Instant,
}

impl Report {
    fn answer(&self, status: u16, outcome: &'static str, response: Response<Body>) -> Response<Body> {
        metrics::counter!("webhook_requests", "source" => self.source, "outcome" => outcome).increment(1);
        tracing::info!(status, outcome, elapsed_ms = self.started.elapsed().as_millis() as u64, "webhook answered");
        response
    }
}

/// What became of a request once its connection was looked up.
enum Processed {
    /// The secret does not name the connection.
    Unknown,
    /// The secret names it, but its entry cannot be used; why, quoting nothing secret.
    Disabled(String),
    Ran {
        source: &'static str,
        allow: &'static str,
        result: Result<Outcome, SourceError>,
    },
}

impl Ready {
    async fn handle(&self, connection: &str, request: Request) -> Response<Body> {
        let mut report = Report { source: "unknown", started: Instant::now() };
        let body: &[u8] = request.body().as_ref();
        if body.len() > self.config.max_body_bytes {
            let message = format!("the body exceeds {} bytes", self.config.max_body_bytes);
            return report.answer(413, "too_large", error_response(413, &message));
        }
        let connections = match self.connections.get().await {
            Ok(connections) => connections,
            Err(error) => {
                tracing::error!(%error, "cannot read the connections secret");
                return report.answer(
                    503,
                    "secrets_unavailable",
                    error_response(503, "temporarily unavailable; retry later"),
                );
            }
        };
        let inbound = InboundRequest { method: request.method(), headers: request.headers(), body };
        let context = Context { connection, now: self.clock.now(), tolerance: self.config.timestamp_tolerance };
        // Unknown, disabled, unverified: one answer, so nobody learns which connections
        // exist or what they are; the logs tell them apart.
        let (source, allow, result) = match self.process(connections, connection, &inbound, &context).await {
            Processed::Unknown => return report.answer(401, "unknown_connection", unauthorized()),
            Processed::Disabled(problem) => {
                tracing::error!(%problem, "connection disabled: its entry in the connections secret is malformed");
                return report.answer(401, "connection_disabled", unauthorized());
            }
            Processed::Ran { source, allow, result } => (source, allow, result),
        };
        report.source = source;
        tracing::Span::current().record("source", source);
        match result {
            Ok(Outcome::Handshake(handshake)) => report.answer(200, "handshake", json_response(200, &handshake.0)),
            Ok(Outcome::Events(normalized)) => self.queue_events(&report, normalized).await,
            Err(error) => refused(&report, error, allow),
        }
    }

    /// Runs the connection's source; when the cached key fails to verify, re-reads the
    /// secret if this connection may (see `connections`) and tries the fresh value.
    async fn process(
        &self,
        connections: Arc<Connections>,
        name: &str,
        inbound: &InboundRequest<'_>,
        context: &Context<'_>,
    ) -> Processed {
        let first = run(&connections, name, inbound, context);
        if !matches!(first, Processed::Ran { result: Err(SourceError::Unauthorized(_)), .. }) {
            return first;
        }
        match self.connections.refresh_for(name, &connections).await {
            Some(fresh) => run(&fresh, name, inbound, context),
            None => first,
        }
    }

    async fn queue_events(&self, report: &Report, normalized: Normalized) -> Response<Body> {
        let Normalized { events, ignored } = normalized;
        let event_ids: Vec<&str> = events.iter().take(LOGGED_IDS).map(|e| e.source_event_id.as_str()).collect();
        let ignored_ids: Vec<String> = ignored
            .iter()
            .take(LOGGED_IDS)
            .map(|i| format!("{} ({})", i.source_event_id.as_deref().unwrap_or("-"), i.reason))
            .collect();
        if !events.is_empty()
            && let Err(error) = self.queue.send(&events).await
        {
            tracing::error!(
                %error,
                events = events.len(),
                event_ids = ?event_ids,
                "could not queue; answering 503 so the sender retries"
            );
            return report.answer(
                503,
                "queue_unavailable",
                error_response(503, "the queue is unavailable; retry later"),
            );
        }
        metrics::counter!("events_accepted", "source" => report.source).increment(events.len() as u64);
        metrics::counter!("events_ignored", "source" => report.source).increment(ignored.len() as u64);
        tracing::info!(
            accepted = events.len(),
            ignored = ignored.len(),
            event_ids = ?event_ids,
            ignored_events = ?ignored_ids,
            "events queued"
        );
        report.answer(202, "accepted", json_response(202, &Accepted { accepted: events.len(), ignored: ignored.len() }))
    }
}

/// The answer to a request the source refused.
fn refused(report: &Report, error: SourceError, allow: &'static str) -> Response<Body> {
    match error {
        SourceError::Unauthorized(reason) => {
            tracing::warn!(reason, "webhook refused");
            report.answer(401, "unauthorized", unauthorized())
        }
        // Only a sender that proved it holds the key learns what the connection accepts.
        SourceError::MethodNotAllowed { verified: true } => {
            let response = error_response(405, &format!("method not allowed; this endpoint accepts {allow}"));
            report.answer(405, "method_not_allowed", with_allow(response, allow))
        }
        SourceError::MethodNotAllowed { verified: false } => report.answer(401, "method_not_allowed", unauthorized()),
        SourceError::BadRequest(message) => {
            tracing::warn!(problem = %message, "malformed webhook body");
            report.answer(400, "bad_request", error_response(400, &message))
        }
        SourceError::UnsupportedMediaType(message) => {
            report.answer(415, "unsupported_media_type", error_response(415, &message))
        }
    }
}

fn unauthorized() -> Response<Body> {
    error_response(401, "unauthorized")
}

fn with_allow(mut response: Response<Body>, allow: &'static str) -> Response<Body> {
    response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

fn run(connections: &Connections, name: &str, request: &InboundRequest<'_>, context: &Context<'_>) -> Processed {
    match connections.lookup(name) {
        None => Processed::Unknown,
        Some(Entry::Disabled(problem)) => Processed::Disabled(problem.to_owned()),
        Some(Entry::Ready(config)) => Processed::Ran {
            source: config.kind().as_str(),
            allow: sources::allowed_methods(config),
            result: sources::process(config, request, context),
        },
    }
}

#[cfg(test)]
mod tests;
