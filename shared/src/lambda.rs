//! What every function binary needs from Lambda besides its handler: the AWS configuration
//! (loaded once per cold start) and the invocation's deadline.

use std::time::{Duration, Instant};

use chrono::Utc;

/// The AWS SDK configuration from Lambda's environment (region, role credentials).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(sdk_https_client()).load().await
}

/// Makes ring rustls' process-wide crypto provider, which reqwest (built with
/// `rustls-no-provider`) uses: the same crypto as [`sdk_config`]'s client. Every reqwest
/// client in this crate is built after calling this. Idempotent; a provider installed
/// earlier stays.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The SDK's own default HTTPS client (hyper, rustls, the system's roots, `HTTPS_PROXY` and
/// `NO_PROXY` from the environment), built as the SDK's `default-https-client` feature builds
/// it, but on ring, the crypto reqwest uses, rather than on aws-lc: one crypto library per
/// binary instead of two, and the smaller one.
fn sdk_https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
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
