//! reconcile's configuration, from environment variables (names fixed by template.yaml).

use super::SweepSettings;
use crate::config::{ConfigError, Env};

/// DynamoDB answers at most 1 MB per Query page; a person's item is far below 10 KB.
const MAX_PAGE_SIZE: usize = 1000;

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub ledger_table: String,
    /// The worker's FIFO queue, where converge events go.
    pub queue_url: String,
    pub settings: SweepSettings,
}

impl SweepConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = SweepSettings::default();
        let page_size: usize = env.parsed_or("DUE_SWEEP_PAGE_SIZE", defaults.page_size)?;
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ConfigError::Malformed {
                var: "DUE_SWEEP_PAGE_SIZE".into(),
                reason: format!("must be between 1 and {MAX_PAGE_SIZE} (got {page_size})"),
            });
        }
        Ok(SweepConfig {
            ledger_table: env.required("LEDGER_TABLE")?,
            queue_url: env.required("QUEUE_URL")?,
            settings: SweepSettings {
                page_size,
                time_margin: env.seconds_or("TIME_BUDGET_MARGIN_SECONDS", defaults.time_margin)?,
                mark_concurrency: defaults.mark_concurrency,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![("LEDGER_TABLE", "t"), ("QUEUE_URL", "https://sqs/q.fifo")];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_and_overrides() {
        let config = SweepConfig::from_env(&env(&[])).unwrap();
        assert_eq!((config.ledger_table.as_str(), config.queue_url.as_str()), ("t", "https://sqs/q.fifo"));
        assert_eq!(config.settings, SweepSettings::default());
        assert_eq!(config.settings.page_size, 100);

        let config =
            SweepConfig::from_env(&env(&[("DUE_SWEEP_PAGE_SIZE", "25"), ("TIME_BUDGET_MARGIN_SECONDS", "3")])).unwrap();
        assert_eq!(config.settings.page_size, 25);
        assert_eq!(config.settings.time_margin, Duration::from_secs(3));
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in
            [("DUE_SWEEP_PAGE_SIZE", "0"), ("DUE_SWEEP_PAGE_SIZE", "5000"), ("TIME_BUDGET_MARGIN_SECONDS", "soon")]
        {
            let error = SweepConfig::from_env(&env(&[(var, value)])).unwrap_err().to_string();
            assert!(error.contains(var), "{var}={value}: {error}");
        }
        let error = SweepConfig::from_env(&Env::from_pairs([("LEDGER_TABLE", "t")])).unwrap_err();
        assert_eq!(error, ConfigError::Missing { var: "QUEUE_URL".into() });
        let error = SweepConfig::from_env(&Env::from_pairs([("QUEUE_URL", "q")])).unwrap_err();
        assert_eq!(error, ConfigError::Missing { var: "LEDGER_TABLE".into() });
    }
}
