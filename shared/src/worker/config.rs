//! The worker's settings; the variable names are the ones template.yaml sets.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::apply::{Brake, Rules};
use crate::config::{ConfigError, Env};
use crate::desired::TimingRules;
use crate::http_retry::RetryPolicy;
use crate::mapping::MappingRules;
use crate::plan::PlanPolicy;
use crate::scim::ScimClientConfig;

/// Everything the worker reads from its environment.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub secret_id: String,
    pub ledger_table: String,
    pub secret_ttl: Duration,
    /// Mapping rules, time settings, plan policy, the brake, dry run.
    pub rules: Rules,
    /// The queue the worker reads; a message throttled by a source API is handed back here.
    pub queue_url: Option<String>,
    /// How often a message may be handed back for throttling before it fails normally
    /// (and, after the redrive limit, reaches the DLQ).
    pub max_requeues: u32,
    pub scim_concurrency: usize,
    /// Retries of a failing bridge call (429, 5xx, timeouts) before the message fails back.
    pub scim_max_retries: u32,
    /// One bridge request's timeout; a timed-out call is retried like a 5xx.
    pub scim_timeout: Duration,
    pub allow_http_bridge: bool,
    /// Accept `http://` source API URLs (tests only).
    pub allow_http_sources: bool,
    /// Message groups processed at once within a batch.
    pub group_concurrency: usize,
}

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let rules_json = env.get("MAPPING_RULES").unwrap_or_else(|| r#"{"default_groups":[],"rules":[]}"#.into());
        let rules = MappingRules::from_json(&rules_json)
            .map_err(|e| ConfigError::Malformed { var: "MAPPING_RULES".into(), reason: e.to_string() })?;
        let ttl_hours: u32 = env.parsed_or("INVITE_TTL_HOURS", 120)?;
        let timing = TimingRules::from_json(&env.get("TIMING").unwrap_or_else(|| "{}".into()), ttl_hours / 24)
            .map_err(|e| ConfigError::Malformed { var: "TIMING".into(), reason: e.to_string() })?;
        let policy = PlanPolicy {
            leaver_removes_groups: env.flag("LEAVER_REMOVE_GROUPS", false)?,
            allow_delete: env.flag("ALLOW_DELETE", false)?,
            protected_groups: env.list("PROTECTED_GROUPS").into_iter().collect::<BTreeSet<_>>(),
            protected_accounts: env.list("PROTECTED_ACCOUNTS").into_iter().collect::<BTreeSet<_>>(),
        };
        // A rule naming a protected group would fail every event it applies to: refuse it now.
        if let Some(group) = rules.managed_groups().into_iter().find(|g| policy.is_protected(g)) {
            let reason = format!("names the protected group {group:?}, which the worker never touches");
            return Err(ConfigError::Malformed { var: "MAPPING_RULES".into(), reason });
        }
        Ok(WorkerConfig {
            secret_id: env.required("WORKER_SECRET_ID")?,
            ledger_table: env.required("LEDGER_TABLE")?,
            secret_ttl: env.seconds_or("SECRET_CACHE_TTL_SECONDS", Duration::from_secs(300))?,
            rules: Rules {
                attribute_only_connections: env.list("ATTRIBUTE_ONLY_CONNECTIONS").into_iter().collect(),
                mapping: rules,
                timing,
                policy,
                brake: Brake {
                    limit: env.parsed_or("MASS_LEAVER_LIMIT", 10)?,
                    window: env.seconds_or("MASS_LEAVER_WINDOW_SECONDS", Duration::from_secs(3600))?,
                },
                dry_run: env.flag("DRY_RUN", false)?,
            },
            queue_url: env.get("QUEUE_URL"),
            max_requeues: env.parsed_or("MAX_THROTTLE_REQUEUES", 20)?,
            scim_concurrency: env.parsed_or("SCIM_CONCURRENCY", 2)?,
            scim_max_retries: env.parsed_or("SCIM_MAX_RETRIES", 5)?,
            scim_timeout: Duration::from_millis(env.parsed_or("SCIM_TIMEOUT_MS", 10_000)?),
            allow_http_bridge: env.flag("ALLOW_HTTP_BRIDGE", false)?,
            allow_http_sources: env.flag("ALLOW_HTTP_SOURCES", false)?,
            group_concurrency: env.parsed_or("GROUP_CONCURRENCY", 10)?,
        })
    }
}

impl WorkerConfig {
    /// How the worker talks to the bridge.
    pub fn scim_client(&self) -> ScimClientConfig {
        ScimClientConfig {
            concurrency: self.scim_concurrency,
            retry: RetryPolicy {
                max_retries: self.scim_max_retries,
                request_timeout: self.scim_timeout,
                ..RetryPolicy::default()
            },
            allow_http: self.allow_http_bridge,
            ..ScimClientConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
