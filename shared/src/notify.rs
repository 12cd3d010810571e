//! Telling a human: a Slack incoming webhook when configured, else only the error log and
//! the metric that every notification is accompanied by.

use async_trait::async_trait;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("notification not delivered: {0}")]
pub struct NotifyError(String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, text: &str) -> Result<(), NotifyError>;
}

/// Posts `{"text": ...}` to a Slack incoming-webhook URL (which is itself a secret: it is
/// never logged).
pub struct SlackNotifier {
    http: reqwest::Client,
    webhook_url: String,
}

impl SlackNotifier {
    pub fn new(webhook_url: impl Into<String>) -> Self {
        crate::lambda::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        SlackNotifier { http, webhook_url: webhook_url.into() }
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn notify(&self, text: &str) -> Result<(), NotifyError> {
        let response = self
            .http
            .post(&self.webhook_url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .map_err(|e| NotifyError(if e.is_timeout() { "timed out".into() } else { "request failed".into() }))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(NotifyError(format!("Slack answered {}", response.status())))
        }
    }
}

/// Keeps what would have been sent; for unit tests and the local stack.
#[derive(Default)]
pub struct InMemoryNotifier {
    sent: Mutex<Vec<String>>,
}

impl InMemoryNotifier {
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Notifier for InMemoryNotifier {
    async fn notify(&self, text: &str) -> Result<(), NotifyError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(text.to_owned());
        }
        Ok(())
    }
}
