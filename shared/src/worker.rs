//! The `worker` function: turns queued lifecycle events into 1Password changes.
//!
//! Batch semantics (SQS FIFO with `ReportBatchItemFailures`): message groups (one per
//! person) run concurrently, messages within a group strictly in order; once a message of a
//! group fails, it and every later message of that group in the batch are reported failed,
//! so SQS redelivers them in order. An empty failure list means the whole batch succeeded.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::Utc;
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::{Applier, Brake};
use crate::config::{ConfigError, Env};
use crate::enrich::{Enricher, SourceApiConfigs, SourceApis};
use crate::event::LifecycleEvent;
use crate::ledger::{DynamoLedger, Ledger};
use crate::mapping::MappingRules;
use crate::notify::{Notifier, SlackNotifier};
use crate::plan::PlanPolicy;
use crate::scim::{BridgeCredentials, CredentialProvider, ScimClient, ScimClientConfig, ScimError};
use crate::secrets::{AwsSecretSource, CachedSecret, SecretSource};

/// The worker's secret (JSON in Secrets Manager). Shared with invite-retry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSecret {
    /// SCIM base URL including its path, e.g. `https://scim.example.com/scim`.
    pub bridge_url: String,
    pub bridge_token: String,
    /// The 1Password Events API, e.g. `https://events.1password.com`.
    #[serde(default)]
    pub events_api_url: Option<String>,
    #[serde(default)]
    pub events_api_token: Option<String>,
    #[serde(default)]
    pub slack_webhook_url: Option<String>,
    /// Source API credentials for enrichment, by connection name.
    #[serde(default)]
    pub sources: SourceApiConfigs,
}

impl fmt::Debug for WorkerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerSecret")
            .field("bridge_url", &self.bridge_url)
            .field("events_api_url", &self.events_api_url)
            .field("sources", &self.sources.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Bridge credentials read from the worker secret; a 401 forces one re-read (rotation).
pub struct SecretCredentials {
    secret: Arc<CachedSecret<WorkerSecret>>,
}

impl SecretCredentials {
    pub fn new(secret: Arc<CachedSecret<WorkerSecret>>) -> Self {
        SecretCredentials { secret }
    }

    fn credentials(secret: &WorkerSecret) -> Arc<BridgeCredentials> {
        Arc::new(BridgeCredentials { base_url: secret.bridge_url.clone(), token: secret.bridge_token.clone() })
    }
}

#[async_trait]
impl CredentialProvider for SecretCredentials {
    async fn current(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        let secret = self.secret.get().await.map_err(|e| ScimError::Credentials(e.to_string()))?;
        Ok(Self::credentials(&secret))
    }

    async fn refresh(&self) -> Result<Arc<BridgeCredentials>, ScimError> {
        let secret = self.secret.force_refresh().await.map_err(|e| ScimError::Credentials(e.to_string()))?;
        Ok(Self::credentials(&secret))
    }
}

/// Everything the worker reads from its environment.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub secret_id: String,
    pub ledger_table: String,
    pub secret_ttl: Duration,
    pub rules: MappingRules,
    pub policy: PlanPolicy,
    pub brake: Brake,
    pub dry_run: bool,
    pub scim_concurrency: usize,
    /// Retries of a failing bridge call (429, 5xx, timeouts) before the message fails back.
    pub scim_max_retries: u32,
    /// One bridge request's timeout; a timed-out call is retried like a 5xx.
    pub scim_timeout: Duration,
    pub allow_http_bridge: bool,
    /// Message groups processed at once within a batch.
    pub group_concurrency: usize,
}

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let rules_json = env.get("MAPPING_RULES").unwrap_or_else(|| r#"{"default_groups":[],"rules":[]}"#.into());
        let rules = MappingRules::from_json(&rules_json)
            .map_err(|e| ConfigError::Malformed { var: "MAPPING_RULES".into(), reason: e.to_string() })?;
        Ok(WorkerConfig {
            secret_id: env.required("WORKER_SECRET_ID")?,
            ledger_table: env.required("LEDGER_TABLE")?,
            secret_ttl: env.seconds_or("SECRET_CACHE_TTL_SECONDS", Duration::from_secs(300))?,
            rules,
            policy: PlanPolicy {
                leaver_removes_groups: env.flag("LEAVER_REMOVE_GROUPS", false)?,
                allow_delete: env.flag("ALLOW_DELETE", false)?,
                protected_groups: env.list("PROTECTED_GROUPS").into_iter().collect::<BTreeSet<_>>(),
            },
            brake: Brake {
                limit: env.parsed_or("MASS_LEAVER_LIMIT", 10)?,
                window: env.seconds_or("MASS_LEAVER_WINDOW_SECONDS", Duration::from_secs(3600))?,
            },
            dry_run: env.flag("DRY_RUN", false)?,
            scim_concurrency: env.parsed_or("SCIM_CONCURRENCY", 2)?,
            scim_max_retries: env.parsed_or("SCIM_MAX_RETRIES", 5)?,
            scim_timeout: Duration::from_millis(env.parsed_or("SCIM_TIMEOUT_MS", 10_000)?),
            allow_http_bridge: env.flag("ALLOW_HTTP_BRIDGE", false)?,
            group_concurrency: env.parsed_or("GROUP_CONCURRENCY", 10)?,
        })
    }
}

#[derive(Clone)]
pub struct WorkerApp {
    applier: Arc<Applier>,
    scim: ScimClient,
    group_concurrency: usize,
}

impl WorkerApp {
    pub fn new(applier: Arc<Applier>, scim: ScimClient, group_concurrency: usize) -> Self {
        WorkerApp { applier, scim, group_concurrency: group_concurrency.max(1) }
    }

    /// Builds the real adapters once per cold start: Secrets Manager, DynamoDB, the SCIM
    /// client, source APIs and (when configured) Slack.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = WorkerConfig::from_env(&Env::from_process())?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secrets: Arc<dyn SecretSource> = Arc::new(AwsSecretSource::from_sdk_config(&sdk));
        let ledger: Arc<dyn Ledger> =
            Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), config.ledger_table.clone()));
        Self::with_adapters(config, secrets, ledger).await
    }

    /// Builds the app from a config and the two stateful adapters; the local stack and the
    /// tests pass in-memory or moto-backed ones.
    pub async fn with_adapters(
        config: WorkerConfig,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
    ) -> Result<Self, StartupError> {
        Self::with_all_adapters(config, secrets, ledger, None, None).await
    }

    /// As [`Self::with_adapters`], with the source APIs and the notifier replaced (the local
    /// stack's stand-in HR directory, tests' recording notifier). `None` builds the real
    /// ones from the secret.
    pub async fn with_all_adapters(
        config: WorkerConfig,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
        enricher: Option<Arc<dyn Enricher>>,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Result<Self, StartupError> {
        let secret = Arc::new(CachedSecret::<WorkerSecret>::new(secrets, config.secret_id.clone(), config.secret_ttl));
        let initial = secret.get().await?;
        let enricher: Arc<dyn Enricher> = match enricher {
            Some(enricher) => enricher,
            None => Arc::new(SourceApis::new(&initial.sources)?),
        };
        let notifier: Option<Arc<dyn Notifier>> = notifier.or_else(|| {
            initial.slack_webhook_url.as_ref().map(|url| Arc::new(SlackNotifier::new(url.clone())) as Arc<dyn Notifier>)
        });
        let scim = ScimClient::new(
            Arc::new(SecretCredentials::new(secret)),
            ScimClientConfig {
                concurrency: config.scim_concurrency,
                max_retries: config.scim_max_retries,
                request_timeout: config.scim_timeout,
                allow_http: config.allow_http_bridge,
                ..Default::default()
            },
        )?;
        let applier =
            Applier::new(ledger, enricher, notifier, config.rules, config.policy, config.brake, config.dry_run);
        Ok(Self::new(Arc::new(applier), scim, config.group_concurrency))
    }

    /// Processes a batch; `deadline` is the invocation's deadline.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let remaining_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        tracing::info!(messages = event.records.len(), remaining_ms, "batch received");
        let scim = self.scim.until(deadline);
        let groups = group_in_order(event.records);
        let failures: Vec<Vec<String>> = futures::stream::iter(groups)
            .map(|messages| self.process_group(&scim, messages))
            .buffer_unordered(self.group_concurrency)
            .collect()
            .await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .flatten()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        response
    }

    /// Returns the ids of the messages to report as failed.
    async fn process_group(&self, scim: &ScimClient, messages: Vec<SqsMessage>) -> Vec<String> {
        let mut failed = Vec::new();
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            if !failed.is_empty() {
                // FIFO: a later message must not overtake one that failed.
                failed.push(id);
                continue;
            }
            if !self.process_message(scim, &message).await {
                failed.push(id);
            }
        }
        failed
    }

    async fn process_message(&self, scim: &ScimClient, message: &SqsMessage) -> bool {
        let id = message.message_id.as_deref().unwrap_or("-");
        let body = message.body.as_deref().unwrap_or_default();
        let event: LifecycleEvent = match serde_json::from_str(body) {
            Ok(event) => event,
            Err(error) => {
                // Only the category and position: the body may hold personal data.
                tracing::error!(message_id = id, error = %error.classify_str(), line = error.line(), column = error.column(),
                    "malformed message; it will reach the DLQ after the redrive limit");
                metrics::counter!("events", "kind" => "unknown", "outcome" => "malformed").increment(1);
                return false;
            }
        };
        let started = Instant::now();
        let result = self.applier.process(scim, event.clone(), Utc::now()).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        metrics::histogram!("event_latency_ms").record(latency_ms);
        match result {
            Ok(outcome) => {
                tracing::info!(message_id = id, person = %event.person, kind = %event.kind, event_id = %event.source_event_id,
                    outcome = outcome.label(), detail = ?outcome, "event processed");
                metrics::counter!("events", "kind" => event.kind.as_str(), "outcome" => outcome.label()).increment(1);
                true
            }
            Err(error) => {
                tracing::error!(message_id = id, person = %event.person, kind = %event.kind, event_id = %event.source_event_id,
                    outcome = error.label(), %error, "event failed; returned to the queue");
                metrics::counter!("events", "kind" => event.kind.as_str(), "outcome" => error.label()).increment(1);
                false
            }
        }
    }
}

/// The invocation's deadline as an `Instant`. Lambda gives milliseconds since the epoch;
/// cargo-lambda's emulator gives a duration (600000): a value too small to be a date is
/// read as one. Never more than Lambda's 15-minute maximum.
pub fn deadline_of(context: &lambda_runtime::Context) -> Instant {
    const NOT_AN_EPOCH_BEFORE_MS: u64 = 1_000_000_000_000; // 2001-09-09
    const LAMBDA_MAX: Duration = Duration::from_secs(15 * 60);
    let remaining = if context.deadline < NOT_AN_EPOCH_BEFORE_MS {
        Duration::from_millis(context.deadline)
    } else {
        let now_ms = Utc::now().timestamp_millis().max(0) as u64;
        Duration::from_millis(context.deadline.saturating_sub(now_ms))
    };
    Instant::now() + remaining.min(LAMBDA_MAX)
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

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        }
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

    #[test]
    fn groups_keep_batch_order() {
        let batch = vec![message("1", "a"), message("2", "b"), message("3", "a"), message("4", "b"), message("5", "c")];
        let ids: Vec<Vec<String>> =
            group_in_order(batch).into_iter().map(|g| g.into_iter().filter_map(|m| m.message_id).collect()).collect();
        assert_eq!(ids, vec![vec!["1", "3"], vec!["2", "4"], vec!["5"]]);
    }

    #[test]
    fn worker_secret_debug_hides_tokens() {
        let secret: WorkerSecret = serde_json::from_str(
            r#"{"bridge_url":"https://b","bridge_token":"tok-123","events_api_token":"ev-456","slack_webhook_url":"https://hooks.slack.com/x"}"#,
        )
        .unwrap();
        let shown = format!("{secret:?}");
        for secret_value in ["tok-123", "ev-456", "hooks.slack.com"] {
            assert!(!shown.contains(secret_value), "{shown}");
        }
    }

    #[test]
    fn config_errors_name_the_variable() {
        let env = Env::from_pairs([
            ("WORKER_SECRET_ID", "s"),
            ("LEDGER_TABLE", "t"),
            ("MAPPING_RULES", r#"{"rules":[{"name":"x","when":{},"groups":["G"]}]}"#),
        ]);
        let error = WorkerConfig::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("MAPPING_RULES") && error.contains("\"x\""), "{error}");
        let error = WorkerConfig::from_env(&Env::from_pairs([("LEDGER_TABLE", "t")])).unwrap_err().to_string();
        assert!(error.contains("WORKER_SECRET_ID"), "{error}");
    }
}
