//! invite-retry's configuration, from environment variables (names fixed by template.yaml).

use serde::Serialize;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{ConfigError, Env};
use crate::events_api::MAX_PAGE_LIMIT;

/// How an expired invitation is re-issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ReissueStrategy {
    /// `PATCH active=false`, then `PATCH active=true`. Unverified against a real bridge
    /// (docs/external-facts.md, "Provisioning invitations", option a): whether reactivation
    /// mails a new invitation is unknown.
    ToggleActive,
    /// Never touch 1Password; report expired invitations once so an admin can resend them.
    ReportOnly,
}

impl ReissueStrategy {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl FromStr for ReissueStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "toggle-active" => Ok(ReissueStrategy::ToggleActive),
            "report-only" => Ok(ReissueStrategy::ReportOnly),
            other => Err(format!("expected toggle-active or report-only, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InviteRetryConfig {
    /// The worker's secret (bridge, Events API, Slack).
    pub secret_id: String,
    pub ledger_table: String,
    /// An invitation not accepted this long after it was (last) sent counts as expired.
    pub invite_ttl: Duration,
    /// Re-issues per invitation before escalating to a human.
    pub max_invite_attempts: u32,
    pub strategy: ReissueStrategy,
    /// Invitations handled at once; also the bound on concurrent bridge requests.
    pub concurrency: usize,
    pub secret_ttl: Duration,
    /// Accept `http://` bridge and Events API URLs (local stack and tests only).
    pub allow_http_bridge: bool,
    /// No new invitation is started when less than this is left before the Lambda deadline.
    pub time_margin: Duration,
    /// Sign-in attempts per Events API page (1–1000). Not an environment variable: tests
    /// lower it to exercise paging.
    pub events_page_limit: u32,
    /// Retries of a failing bridge call (429, 5xx, timeouts).
    pub scim_max_retries: u32,
    /// Sign-ins read at the start of a run are re-polled before a re-issue once they are
    /// older than this, so someone who accepted a minute ago is not re-invited.
    pub acceptance_refresh_after: Duration,
    /// Toggles (suspend, then reactivate) one run may start: a bridge or ledger gone wrong
    /// cannot suspend more people than this before a human looks.
    pub max_reissues_per_run: u32,
    /// The 1Password account the bridge serves, when known: the Events API token must
    /// belong to it, or sign-ins of another account would decide whom we suspend.
    pub events_account_uuid: Option<String>,
}

impl InviteRetryConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ttl_hours: u64 = env.parsed_or("INVITE_TTL_HOURS", 120)?;
        if ttl_hours == 0 {
            return Err(malformed("INVITE_TTL_HOURS", "must be at least 1 hour"));
        }
        let max_invite_attempts: u32 = env.parsed_or("MAX_INVITE_ATTEMPTS", 3)?;
        let concurrency: usize = env.parsed_or("RETRY_CONCURRENCY", 4)?;
        if concurrency == 0 {
            return Err(malformed("RETRY_CONCURRENCY", "must be at least 1"));
        }
        let max_reissues_per_run: u32 = env.parsed_or("MAX_REISSUES_PER_RUN", 50)?;
        if max_reissues_per_run == 0 {
            return Err(malformed(
                "MAX_REISSUES_PER_RUN",
                "must be at least 1 (REISSUE_STRATEGY=report-only re-issues none)",
            ));
        }
        let strategy = match env.get("REISSUE_STRATEGY") {
            None => ReissueStrategy::ToggleActive,
            Some(raw) => raw.parse().map_err(|reason: String| malformed("REISSUE_STRATEGY", &reason))?,
        };
        Ok(InviteRetryConfig {
            secret_id: env.required("WORKER_SECRET_ID")?,
            ledger_table: env.required("LEDGER_TABLE")?,
            invite_ttl: Duration::from_secs(ttl_hours.saturating_mul(3600)),
            max_invite_attempts,
            strategy,
            concurrency,
            secret_ttl: env.seconds_or("SECRET_CACHE_TTL_SECONDS", Duration::from_secs(300))?,
            allow_http_bridge: env.flag("ALLOW_HTTP_BRIDGE", false)?,
            time_margin: env.seconds_or("TIME_BUDGET_MARGIN_SECONDS", Duration::from_secs(20))?,
            events_page_limit: MAX_PAGE_LIMIT,
            scim_max_retries: 3,
            acceptance_refresh_after: Duration::from_secs(30),
            max_reissues_per_run,
            events_account_uuid: env.get("EVENTS_API_ACCOUNT_UUID").map(|uuid| uuid.trim().to_owned()),
        })
    }
}

fn malformed(var: &str, reason: &str) -> ConfigError {
    ConfigError::Malformed { var: var.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![("WORKER_SECRET_ID", "s"), ("LEDGER_TABLE", "t")];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_match_the_template() {
        let config = InviteRetryConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.invite_ttl, Duration::from_secs(120 * 3600));
        assert_eq!(config.max_invite_attempts, 3);
        assert_eq!(config.strategy, ReissueStrategy::ToggleActive);
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.secret_ttl, Duration::from_secs(300));
        assert!(!config.allow_http_bridge);
        assert_eq!(config.time_margin, Duration::from_secs(20));
        assert_eq!(config.max_reissues_per_run, 50);
        assert_eq!(config.events_account_uuid, None);
    }

    #[test]
    fn reads_every_variable() {
        let config = InviteRetryConfig::from_env(&env(&[
            ("INVITE_TTL_HOURS", "48"),
            ("MAX_INVITE_ATTEMPTS", "5"),
            ("REISSUE_STRATEGY", "Report-Only"),
            ("RETRY_CONCURRENCY", "2"),
            ("SECRET_CACHE_TTL_SECONDS", "60"),
            ("ALLOW_HTTP_BRIDGE", "true"),
            ("TIME_BUDGET_MARGIN_SECONDS", "5"),
            ("MAX_REISSUES_PER_RUN", "7"),
            ("EVENTS_API_ACCOUNT_UUID", " VZSYVT2LGHTBWBQGUJAIZVRABM "),
        ]))
        .unwrap();
        assert_eq!(config.invite_ttl, Duration::from_secs(48 * 3600));
        assert_eq!(config.max_invite_attempts, 5);
        assert_eq!(config.strategy, ReissueStrategy::ReportOnly);
        assert_eq!(config.concurrency, 2);
        assert_eq!(config.secret_ttl, Duration::from_secs(60));
        assert!(config.allow_http_bridge);
        assert_eq!(config.time_margin, Duration::from_secs(5));
        assert_eq!(config.max_reissues_per_run, 7);
        assert_eq!(config.events_account_uuid.as_deref(), Some("VZSYVT2LGHTBWBQGUJAIZVRABM"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("REISSUE_STRATEGY", "delete-and-recreate"),
            ("INVITE_TTL_HOURS", "0"),
            ("INVITE_TTL_HOURS", "five days"),
            ("MAX_INVITE_ATTEMPTS", "-1"),
            ("RETRY_CONCURRENCY", "0"),
            ("TIME_BUDGET_MARGIN_SECONDS", "1.5"),
            ("MAX_REISSUES_PER_RUN", "0"),
            ("MAX_REISSUES_PER_RUN", "many"),
        ] {
            let error = InviteRetryConfig::from_env(&env(&[(var, value)])).unwrap_err().to_string();
            assert!(error.contains(var), "{var}={value}: {error}");
        }
        let error = InviteRetryConfig::from_env(&Env::from_pairs([("LEDGER_TABLE", "t")])).unwrap_err();
        assert_eq!(error, ConfigError::Missing { var: "WORKER_SECRET_ID".into() });
    }
}
