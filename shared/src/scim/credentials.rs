//! The worker secret (read by the worker and invite-retry) and the bridge credentials it
//! holds; docs/worker-secret.md documents its shape.

use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use super::{BridgeCredentials, CredentialProvider, ScimError};
use crate::enrich::SourceApiConfigs;
use crate::notify::{Notifier, SlackNotifier};
use crate::secrets::{CachedSecret, SecretSource, SecretString};

/// The worker's secret (JSON in Secrets Manager). Its `Debug` shows no credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSecret {
    /// SCIM base URL including its path, e.g. `https://scim.example.com/scim`.
    pub bridge_url: String,
    pub bridge_token: SecretString,
    /// The 1Password Events API, e.g. `https://events.1password.com`.
    #[serde(default)]
    pub events_api_url: Option<String>,
    #[serde(default)]
    pub events_api_token: Option<SecretString>,
    #[serde(default)]
    pub slack_webhook_url: Option<SecretString>,
    /// Source API credentials for enrichment, by connection name.
    #[serde(default)]
    pub sources: SourceApiConfigs,
}

impl WorkerSecret {
    /// The secret `id`, cached for `ttl` (a 401 from the bridge forces a re-read).
    pub fn cached(secrets: Arc<dyn SecretSource>, id: &str, ttl: Duration) -> Arc<CachedSecret<WorkerSecret>> {
        Arc::new(CachedSecret::new(secrets, id.to_owned(), ttl))
    }

    /// Slack, when the secret names a webhook.
    pub fn slack_notifier(&self) -> Option<Arc<dyn Notifier>> {
        let url = self.slack_webhook_url.as_ref()?;
        Some(Arc::new(SlackNotifier::new(url.expose().to_owned())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_every_credential() {
        let secret: WorkerSecret = serde_json::from_str(
            r#"{"bridge_url":"https://b","bridge_token":"tok-123","events_api_token":"ev-456",
                "slack_webhook_url":"https://hooks.slack.com/x"}"#,
        )
        .unwrap();
        let shown = format!("{secret:?}");
        for secret_value in ["tok-123", "ev-456", "hooks.slack.com"] {
            assert!(!shown.contains(secret_value), "{shown}");
        }
    }
}
