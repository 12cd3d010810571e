//! The `worker` function: turns queued lifecycle events into 1Password changes.
//!
//! Batch semantics (SQS FIFO with `ReportBatchItemFailures`): message groups (one per
//! person) run concurrently, messages within a group strictly in order; once a message of a
//! group fails, it and every later message of that group in the batch are reported failed,
//! so SQS redelivers them in order. An empty failure list means the whole batch succeeded.

mod config;

pub use config::WorkerConfig;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use crate::apply::{Applier, ApplyError};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Env};
use crate::enrich::{EnrichError, Enricher, SourceApis};
use crate::event::LifecycleEvent;
use crate::ledger::{DynamoLedger, Ledger};
use crate::notify::Notifier;
use crate::queue::EventQueue;
use crate::scim::{Directory, ScimClient, ScimError, SecretCredentials, WorkerSecret};
use crate::secrets::{AwsSecretSource, SecretSource};

/// Every external system the worker uses, built once per cold start: from AWS in Lambda
/// ([`Ports::from_aws`]), by hand in the local stack and the tests.
pub struct Ports {
    pub ledger: Arc<dyn Ledger>,
    /// The 1Password SCIM bridge.
    pub directory: Arc<dyn Directory>,
    /// The HR and IdP APIs thin webhooks are read back from.
    pub enricher: Arc<dyn Enricher>,
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Where a message a source API throttled is handed back (the worker's own queue).
    pub requeue: Option<Arc<dyn EventQueue>>,
    /// "Now" for the desired state: the system clock, or the local stack's simulated one.
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// DynamoDB, and what the worker secret in Secrets Manager configures.
    pub async fn from_aws(config: &WorkerConfig, sdk: &aws_config::SdkConfig) -> Result<Self, StartupError> {
        let ledger = Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), config.ledger_table.clone()));
        let mut ports = Self::from_secret(config, Arc::new(AwsSecretSource::from_sdk_config(sdk)), ledger).await?;
        ports.requeue = config
            .queue_url
            .as_ref()
            .map(|url| Arc::new(crate::sweep::background_queue(sdk, url.clone())) as Arc<dyn EventQueue>);
        Ok(ports)
    }

    /// The bridge, the source APIs and Slack as the worker secret configures them; the secret
    /// is read now, so a broken one fails the cold start.
    pub async fn from_secret(
        config: &WorkerConfig,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
    ) -> Result<Self, StartupError> {
        let secret = WorkerSecret::cached(secrets, &config.secret_id, config.secret_ttl);
        let initial = secret.get().await?;
        let credentials = Arc::new(SecretCredentials::new(secret));
        Ok(Ports {
            ledger,
            directory: Arc::new(ScimClient::new(credentials, config.scim_client())?),
            enricher: Arc::new(SourceApis::new(&initial.sources, config.allow_http_sources)?),
            notifier: initial.slack_notifier(),
            requeue: None,
            clock: Arc::new(SystemClock),
        })
    }
}

#[derive(Clone)]
pub struct WorkerApp {
    applier: Arc<Applier>,
    directory: Arc<dyn Directory>,
    requeue: Option<Arc<dyn EventQueue>>,
    clock: Arc<dyn Clock>,
    max_requeues: u32,
    group_concurrency: usize,
}

/// How long a cold start may spend reading the group catalogue.
const STARTUP_PROBE_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

impl WorkerApp {
    pub fn new(config: WorkerConfig, ports: Ports) -> Self {
        let applier = Applier::new(ports.ledger, ports.enricher, ports.notifier, config.rules);
        WorkerApp {
            applier: Arc::new(applier),
            directory: ports.directory,
            requeue: ports.requeue,
            clock: ports.clock,
            max_requeues: config.max_requeues,
            group_concurrency: config.group_concurrency.max(1),
        }
    }

    /// The Lambda's app: settings from the environment, ports from AWS.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = WorkerConfig::from_env(&Env::from_process())?;
        let ports = Ports::from_aws(&config, &crate::lambda::sdk_config().await).await?;
        let app = Self::new(config, ports);
        app.prepare().await;
        Ok(app)
    }

    /// Reads the group catalogue and probes how the bridge shows memberships once at cold
    /// start, so the choice (and a bridge that shows none) is in the logs before the first
    /// message. A bridge that cannot be reached now is read again with the first message.
    pub async fn prepare(&self) {
        let directory = self.directory.clone().until(Instant::now() + STARTUP_PROBE_BUDGET);
        if let Err(error) = self.applier.prepare(directory.as_ref()).await {
            tracing::warn!(%error, "the group catalogue could not be read at start-up; retried with the first message");
        }
    }

    /// How the bridge shows group memberships, once probed.
    pub fn membership_strategy(&self) -> Option<crate::groups::MembershipStrategy> {
        self.applier.membership_strategy()
    }

    /// Processes a batch; `deadline` is the invocation's deadline.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        tracing::info!(messages = event.records.len(), remaining_ms, "batch received");
        let directory = self.directory.clone().until(deadline);
        let failures: Vec<Vec<String>> = futures::stream::iter(group_in_order(event.records))
            .map(|messages| self.process_group(directory.as_ref(), messages, deadline))
            .buffer_unordered(self.group_concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures.into_iter().flatten().map(batch_item_failure).collect();
        response
    }

    /// Returns the ids of the messages to report as failed.
    async fn process_group(
        &self,
        directory: &dyn Directory,
        messages: Vec<SqsMessage>,
        deadline: Instant,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            // FIFO: a later message must not overtake one that failed.
            if !failed.is_empty() {
                failed.push(id);
                continue;
            }
            let span = tracing::info_span!(
                "message",
                message_id = %id,
                person = tracing::field::Empty,
                kind = tracing::field::Empty,
                event_id = tracing::field::Empty,
            );
            if !self.process_message(directory, &message, deadline).instrument(span).await {
                failed.push(id);
            }
        }
        failed
    }

    /// One message, inside its span: parse, apply, report. True when done.
    async fn process_message(&self, directory: &dyn Directory, message: &SqsMessage, deadline: Instant) -> bool {
        let Some(event) = parse(message) else { return false };
        let span = tracing::Span::current();
        span.record("person", tracing::field::display(&event.person));
        span.record("kind", event.kind.as_str());
        span.record("event_id", event.source_event_id.as_str());
        let started = Instant::now();
        let result = self.applier.process(directory, event.clone(), self.clock.now(), Some(deadline)).await;
        metrics::histogram!("event_latency_ms").record(started.elapsed().as_secs_f64() * 1000.0);
        let kind = event.kind.as_str();
        match result {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.label(), detail = ?outcome, "event processed");
                metrics::counter!("events", "kind" => kind, "outcome" => outcome.label()).increment(1);
                true
            }
            Err(ApplyError::Enrich(throttled @ EnrichError::Throttled { .. })) => {
                self.hand_back(event, throttled).await
            }
            Err(error) => {
                tracing::error!(outcome = error.label(), %error, "event failed; returned to the queue");
                metrics::counter!("events", "kind" => kind, "outcome" => error.label()).increment(1);
                false
            }
        }
    }

    /// A source API throttled the read beyond this invocation's deadline: a copy of the
    /// message goes to the back of the queue (an event is a trigger, so its order no longer
    /// matters) and the original is done, so throttling never spends the receive count that
    /// leads to the DLQ. Bounded by `max_requeues`; without a queue, the message fails back.
    async fn hand_back(&self, mut event: LifecycleEvent, throttled: EnrichError) -> bool {
        let kind = event.kind.as_str();
        let Some(queue) = self.requeue.as_ref().filter(|_| event.requeued < self.max_requeues) else {
            tracing::warn!(%throttled, requeued = event.requeued, "source API throttled; returned to the queue");
            metrics::counter!("events", "kind" => kind, "outcome" => "throttled").increment(1);
            return false;
        };
        event.requeued += 1;
        match queue.send(std::slice::from_ref(&event)).await {
            Ok(()) => {
                tracing::info!(%throttled, requeued = event.requeued, "source API throttled; handed back to the queue");
                metrics::counter!("events", "kind" => kind, "outcome" => "requeued").increment(1);
                true
            }
            Err(error) => {
                tracing::error!(%throttled, %error, "source API throttled and the hand-back failed; returned to the queue");
                false
            }
        }
    }
}

/// The message's event, or `None` (logged and counted) when the body is not one.
fn parse(message: &SqsMessage) -> Option<LifecycleEvent> {
    let body = message.body.as_deref().unwrap_or_default();
    match serde_json::from_str(body) {
        Ok(event) => Some(event),
        Err(error) => {
            // Only the category and position: the body may hold personal data.
            tracing::error!(
                error = json_error_category(&error),
                line = error.line(),
                column = error.column(),
                "malformed message; it will reach the DLQ after the redrive limit"
            );
            metrics::counter!("events", "kind" => "unknown", "outcome" => "malformed").increment(1);
            None
        }
    }
}

fn batch_item_failure(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

/// Splits a batch into message groups, keeping the batch's order within each group.
fn group_in_order(records: Vec<SqsMessage>) -> Vec<Vec<SqsMessage>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<SqsMessage>> = HashMap::new();
    for record in records {
        let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        if !groups.contains_key(&group) {
            order.push(group.clone());
        }
        groups.entry(group).or_default().push(record);
    }
    order.into_iter().filter_map(|g| groups.remove(&g)).collect()
}

fn json_error_category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

/// Why the worker could not start; printed by the binary, which then exits.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Enrich(#[from] crate::enrich::EnrichError),
    #[error(transparent)]
    Scim(#[from] ScimError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: &str) -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some(id.into());
        message.attributes.insert("MessageGroupId".into(), group.into());
        message
    }

    /// A source API that always throttles.
    struct Throttling;

    #[async_trait::async_trait]
    impl Enricher for Throttling {
        async fn fetch(
            &self,
            person: &crate::event::PersonKey,
            _deadline: Option<Instant>,
        ) -> Result<Option<crate::event::Attributes>, EnrichError> {
            let retry_after = Some(std::time::Duration::from_secs(60));
            Err(EnrichError::Throttled { connection: person.source.clone(), retry_after })
        }
    }

    fn throttled_worker(queue: Option<Arc<crate::queue::InMemoryEventQueue>>) -> WorkerApp {
        let env = Env::from_pairs([("WORKER_SECRET_ID", "s"), ("LEDGER_TABLE", "t"), ("MAX_THROTTLE_REQUEUES", "2")]);
        let ports = Ports {
            ledger: Arc::new(crate::ledger::InMemoryLedger::new()),
            directory: Arc::new(crate::scim::InMemoryDirectory::new()),
            enricher: Arc::new(Throttling),
            notifier: None,
            requeue: queue.map(|q| q as Arc<dyn EventQueue>),
            clock: Arc::new(SystemClock),
        };
        WorkerApp::new(WorkerConfig::from_env(&env).unwrap(), ports)
    }

    fn joiner(requeued: u32) -> SqsMessage {
        let body = serde_json::json!({"kind": "joiner", "person": {"source": "hibob-main", "id": "7"},
            "source_kind": "hibob", "source_event_id": "joined-7", "effective_at": "2026-03-02T09:00:00Z",
            "requeued": requeued});
        let mut message = message("m1", "hibob-main:7");
        message.body = Some(body.to_string());
        message
    }

    async fn failures(worker: &WorkerApp, message: SqsMessage) -> Vec<String> {
        let mut batch = SqsEvent::default();
        batch.records = vec![message];
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        worker.handle(batch, deadline).await.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    #[tokio::test]
    async fn a_throttled_message_is_handed_back_without_spending_its_receive_count_until_the_bound() {
        let queue = Arc::new(crate::queue::InMemoryEventQueue::new());
        let worker = throttled_worker(Some(queue.clone()));
        assert!(failures(&worker, joiner(0)).await.is_empty(), "done: a copy went back to the queue");
        let copies = queue.drain();
        assert_eq!(copies.len(), 1);
        assert_eq!((copies[0].event.requeued, copies[0].group_id.as_str()), (1, "hibob-main:7"));
        assert!(failures(&worker, joiner(1)).await.is_empty());
        assert_eq!(queue.drain()[0].event.requeued, 2, "a new deduplication id each time");
        assert_eq!(failures(&worker, joiner(2)).await, vec!["m1"], "the bound: it fails back, towards the DLQ");
        assert!(queue.is_empty());
        assert_eq!(failures(&throttled_worker(None), joiner(0)).await, vec!["m1"], "no queue: fails back");
    }

    #[test]
    fn groups_keep_batch_order() {
        let batch = vec![message("1", "a"), message("2", "b"), message("3", "a"), message("4", "b"), message("5", "c")];
        let ids: Vec<Vec<String>> =
            group_in_order(batch).into_iter().map(|g| g.into_iter().filter_map(|m| m.message_id).collect()).collect();
        assert_eq!(ids, vec![vec!["1", "3"], vec!["2", "4"], vec!["5"]]);
    }
}
