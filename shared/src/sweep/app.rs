//! The `reconcile` function's app: which scheduled task an invocation asks for, and the
//! ports built once per cold start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DueSweep, Ports, SweepConfig, SweepSummary};
use crate::clock::SystemClock;
use crate::config::{ConfigError, Env};
use crate::ledger::DynamoLedger;
use crate::queue::SqsEventQueue;

/// What a scheduled invocation asks for: `{"task": "sweep_due_actions"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    SweepDueActions,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    #[error("unknown task {0:?}: the only task is \"sweep_due_actions\"")]
    Unknown(String),
    #[error("\"task\" must be a string, got {0}")]
    NotAString(String),
}

impl Task {
    /// Reads the task from the invocation's payload. A payload without `task` (EventBridge's
    /// own scheduled-event envelope, a test invoke with `{}`) means the sweep.
    pub fn from_payload(payload: &serde_json::Value) -> Result<Task, TaskError> {
        match payload.get("task") {
            None | Some(serde_json::Value::Null) => Ok(Task::SweepDueActions),
            Some(serde_json::Value::String(task)) if task == "sweep_due_actions" => Ok(Task::SweepDueActions),
            Some(serde_json::Value::String(task)) => Err(TaskError::Unknown(task.clone())),
            Some(other) => Err(TaskError::NotAString(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why an invocation failed (and so raised the function's errors alarm).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("due sweep failed after queueing {enqueued} event(s): {error}")]
    Sweep { enqueued: usize, error: String },
}

/// SQS for senders nobody waits on (the sweep, the worker handing a message back): a call
/// gets more time than ingest's 1.8 s budget (sized for a webhook sender's timeout), so a
/// slow SQS is not mistaken for a failed one.
pub fn background_queue(sdk: &aws_config::SdkConfig, queue_url: impl Into<String>) -> SqsEventQueue {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let config = aws_sdk_sqs::config::Builder::from(sdk).timeout_config(timeouts).build();
    SqsEventQueue::new(aws_sdk_sqs::Client::from_conf(config), queue_url)
}

#[derive(Clone)]
pub struct ReconcileApp {
    sweep: Arc<DueSweep>,
}

impl ReconcileApp {
    pub fn new(sweep: DueSweep) -> Self {
        ReconcileApp { sweep: Arc::new(sweep) }
    }

    /// The Lambda's app: settings from the environment, DynamoDB and SQS from AWS.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = SweepConfig::from_env(&Env::from_process())?;
        let sdk = crate::lambda::sdk_config().await;
        let ports = Ports {
            ledger: Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), config.ledger_table)),
            queue: Arc::new(background_queue(&sdk, config.queue_url)),
            clock: Arc::new(SystemClock),
        };
        Ok(Self::new(DueSweep::new(ports, config.settings)))
    }

    /// One scheduled invocation; `deadline` is the invocation's deadline.
    pub async fn handle(&self, payload: &serde_json::Value, deadline: Instant) -> Result<SweepSummary, ReconcileError> {
        match Task::from_payload(payload)? {
            Task::SweepDueActions => {
                let summary = self.sweep.run(deadline).await;
                match summary.error.clone() {
                    Some(error) => Err(ReconcileError::Sweep { enqueued: summary.enqueued, error }),
                    None => Ok(summary),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sweep_is_asked_for_by_name_or_by_default() {
        for payload in [
            json!({"task": "sweep_due_actions"}),
            json!({}),
            json!({"task": null}),
            json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            json!(null),
        ] {
            assert_eq!(Task::from_payload(&payload), Ok(Task::SweepDueActions), "{payload}");
        }
    }

    #[test]
    fn an_unknown_task_is_refused_by_name() {
        let error = Task::from_payload(&json!({"task": "reconcile_drift"})).unwrap_err();
        assert_eq!(error.to_string(), "unknown task \"reconcile_drift\": the only task is \"sweep_due_actions\"");
        assert_eq!(Task::from_payload(&json!({"task": 7})), Err(TaskError::NotAString("7".into())));
    }
}
