//! Logs as JSON lines for CloudWatch Logs Insights, and metrics in CloudWatch Embedded
//! Metric Format (EMF) through the `metrics` facade, flushed to stdout after each invocation.

use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

pub const DEFAULT_NAMESPACE: &str = "OnePasswordProvisioning";

static METRICS: OnceLock<Option<&'static metrics_cloudwatch_embedded::Collector>> = OnceLock::new();

/// Installs the JSON log subscriber and the EMF metrics recorder. Safe to call more than
/// once (tests do); only the first call has effect.
pub fn init(function: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").or_else(|_| EnvFilter::try_new("info")).unwrap_or_default();
    // A second init (tests) finds a subscriber already set; that is fine.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter)
        .try_init();
    init_metrics(function);
}

fn init_metrics(function: &str) {
    METRICS.get_or_init(|| {
        let namespace = std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        match metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .with_dimension("Function", function.to_owned())
            .init()
        {
            Ok(collector) => Some(collector),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed; metrics are dropped");
                None
            }
        }
    });
}

/// Writes the metrics gathered since the last flush as one EMF document on stdout, where
/// the Lambda log agent turns them into CloudWatch metrics. Call at the end of each
/// invocation.
pub fn flush_metrics() {
    if let Some(Some(collector)) = METRICS.get()
        && let Err(error) = collector.flush(std::io::stdout())
    {
        tracing::warn!(%error, "could not write metrics");
    }
}

/// `j***@example.com`: enough for an operator to recognise a person, not enough to leak a
/// directory into the logs.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// `text` with every e-mail address in it masked: for messages we did not write (a bridge's
/// error detail echoes the userName it refused).
pub fn mask_emails_in(text: &str) -> String {
    let is_separator = |c: char| c.is_whitespace() || "\"'<>(),;:[]{}".contains(c);
    let mut masked = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if is_separator(c) {
            masked.push_str(&if word.contains('@') { mask_email(&word) } else { std::mem::take(&mut word) });
            word.clear();
            masked.push(c);
        } else {
            word.push(c);
        }
    }
    masked.pop();
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_address_in_free_text() {
        let text = r#"User "ada.lovelace@example.com" already exists (bob@x.io); nothing else"#;
        assert_eq!(mask_emails_in(text), r#"User "a***@example.com" already exists (b***@x.io); nothing else"#);
        assert_eq!(mask_emails_in("no address"), "no address");
    }

    #[test]
    fn masks_the_local_part() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("not-an-email"), "***");
        assert_eq!(mask_email("@example.com"), "***@example.com");
    }
}
