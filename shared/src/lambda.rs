//! What every function binary needs from Lambda besides its handler: the AWS configuration
//! (loaded once per cold start) and the invocation's deadline.

use std::time::{Duration, Instant};

use chrono::Utc;

/// The AWS SDK configuration from Lambda's environment (region, role credentials).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
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
