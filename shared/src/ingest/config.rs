//! `ingest`'s settings.

use std::time::Duration;

use crate::config::{ConfigError, Env};

/// `ingest`'s settings; the variable names are the ones template.yaml sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// `CONNECTIONS_SECRET_ID`: the Secrets Manager secret holding the connections.
    pub connections_secret_id: String,
    /// `SECRET_CACHE_TTL_SECONDS` (300).
    pub secret_cache_ttl: Duration,
    /// `MAX_BODY_BYTES` (1 MiB).
    pub max_body_bytes: usize,
    /// `TIMESTAMP_TOLERANCE_SECONDS` (300).
    pub timestamp_tolerance: Duration,
}

impl IngestConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(IngestConfig {
            connections_secret_id: env.required("CONNECTIONS_SECRET_ID")?,
            secret_cache_ttl: env.seconds_or("SECRET_CACHE_TTL_SECONDS", Duration::from_secs(300))?,
            max_body_bytes: env.parsed_or("MAX_BODY_BYTES", 1_048_576usize)?,
            timestamp_tolerance: env.seconds_or("TIMESTAMP_TOLERANCE_SECONDS", Duration::from_secs(300))?,
        })
    }
}
