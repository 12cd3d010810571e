//! Secrets Manager behind a small port, with an in-memory TTL cache.
//!
//! A warm invocation is served from memory; the secret is read again only when the TTL has
//! passed, when a verification failure asks for it (at most once per TTL window, so a flood
//! of forged requests cannot turn into a flood of Secrets Manager calls), or when a
//! downstream 401 forces it. Concurrent callers share one read.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// What can go wrong reading or decoding a secret. No variant ever carries the secret's
/// value, not even a fragment of it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecretsError {
    #[error("secret {id} does not exist")]
    NotFound { id: String },
    #[error("secret {id} has no string value (binary secrets are not supported)")]
    NotAString { id: String },
    #[error("could not read secret {id}: {reason}")]
    Unavailable { id: String, reason: String },
    /// The value is not the JSON we expect. Only serde's category and position are kept:
    /// serde's own messages may quote the offending value.
    #[error("secret {id} is malformed: {category} error at line {line}, column {column}")]
    Malformed { id: String, category: &'static str, line: usize, column: usize },
}

impl SecretsError {
    fn malformed(id: &str, error: &serde_json::Error) -> Self {
        let category = match error.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "JSON syntax",
            serde_json::error::Category::Data => "data shape",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        SecretsError::Malformed { id: id.to_owned(), category, line: error.line(), column: error.column() }
    }
}

/// Reads the current value of a secret.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError>;
}

/// AWS Secrets Manager, stage `AWSCURRENT`.
pub struct AwsSecretSource {
    client: aws_sdk_secretsmanager::Client,
}

impl AwsSecretSource {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecretSource { client }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(config))
    }
}

#[async_trait]
impl SecretSource for AwsSecretSource {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        use aws_sdk_secretsmanager::error::DisplayErrorContext;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let output =
            self.client.get_secret_value().secret_id(id).version_stage("AWSCURRENT").send().await.map_err(|error| {
                match error.as_service_error() {
                    Some(GetSecretValueError::ResourceNotFoundException(_)) => {
                        SecretsError::NotFound { id: id.to_owned() }
                    }
                    // An SDK error describes the request and the failure, never the value.
                    _ => {
                        SecretsError::Unavailable { id: id.to_owned(), reason: DisplayErrorContext(&error).to_string() }
                    }
                }
            })?;
        output.secret_string.ok_or_else(|| SecretsError::NotAString { id: id.to_owned() })
    }
}

/// Secrets held in memory: the local stack and unit tests. `set` replaces a value, which
/// is how tests rotate a secret.
#[derive(Default)]
pub struct InMemorySecretSource {
    values: std::sync::Mutex<std::collections::HashMap<String, String>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl InMemorySecretSource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, id: &str, value: impl Into<String>) {
        self.lock().insert(id.to_owned(), value.into());
    }

    /// How many times a value was read: lets tests prove the cache works.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.values.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl SecretSource for InMemorySecretSource {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.lock().get(id).cloned().ok_or_else(|| SecretsError::NotFound { id: id.to_owned() })
    }
}

struct Cached<T> {
    value: Arc<T>,
    read_at: Instant,
}

struct RefreshState {
    /// When `refresh_if_allowed` last re-read; bounds those re-reads to one per TTL.
    last_requested_refresh: Option<Instant>,
}

/// A JSON secret decoded into `T` and kept in memory for `ttl`.
pub struct CachedSecret<T> {
    source: Arc<dyn SecretSource>,
    id: String,
    ttl: Duration,
    current: RwLock<Option<Cached<T>>>,
    /// Held while reading from the source, so concurrent callers wait for one read instead
    /// of each starting their own.
    reading: Mutex<RefreshState>,
    /// Bumped on every successful read; a caller that waited for the lock uses it to see
    /// that someone else already read a fresh value.
    generation: std::sync::atomic::AtomicU64,
    _marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for CachedSecret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSecret").field("id", &self.id).field("ttl", &self.ttl).finish()
    }
}

impl<T: DeserializeOwned + Send + Sync> CachedSecret<T> {
    pub fn new(source: Arc<dyn SecretSource>, id: impl Into<String>, ttl: Duration) -> Self {
        CachedSecret {
            source,
            id: id.into(),
            ttl,
            current: RwLock::new(None),
            reading: Mutex::new(RefreshState { last_requested_refresh: None }),
            generation: std::sync::atomic::AtomicU64::new(0),
            _marker: PhantomData,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The value, from memory while it is younger than the TTL.
    pub async fn get(&self) -> Result<Arc<T>, SecretsError> {
        if let Some(value) = self.fresh().await {
            return Ok(value);
        }
        let _reading = self.reading.lock().await;
        // Someone may have read it while we waited for the lock.
        if let Some(value) = self.fresh().await {
            return Ok(value);
        }
        self.read().await
    }

    /// Re-reads the secret unless that was already done within the current TTL window;
    /// `None` means "not allowed now: keep the answer you have". Call it when a credential
    /// failed to verify, so a rotated secret is picked up without waiting for the TTL.
    pub async fn refresh_if_allowed(&self) -> Result<Option<Arc<T>>, SecretsError> {
        let seen = self.generation();
        let mut reading = self.reading.lock().await;
        if self.generation() != seen {
            // A read finished while we waited: that value is as fresh as ours would be.
            return Ok(self.current.read().await.as_ref().map(|c| Arc::clone(&c.value)));
        }
        let now = Instant::now();
        if let Some(last) = reading.last_requested_refresh
            && now.duration_since(last) < self.ttl
        {
            return Ok(None);
        }
        reading.last_requested_refresh = Some(now);
        self.read().await.map(Some)
    }

    /// Re-reads the secret now (e.g. the credential was answered with 401). Callers that
    /// arrive while a read is in flight share its result.
    pub async fn force_refresh(&self) -> Result<Arc<T>, SecretsError> {
        let seen = self.generation();
        let _reading = self.reading.lock().await;
        if self.generation() != seen
            && let Some(cached) = self.current.read().await.as_ref()
        {
            return Ok(Arc::clone(&cached.value));
        }
        self.read().await
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn fresh(&self) -> Option<Arc<T>> {
        let current = self.current.read().await;
        current.as_ref().filter(|cached| cached.read_at.elapsed() < self.ttl).map(|cached| Arc::clone(&cached.value))
    }

    /// Must be called with `reading` held.
    async fn read(&self) -> Result<Arc<T>, SecretsError> {
        let text = self.source.secret_string(&self.id).await?;
        let value: T = serde_json::from_str(&text).map_err(|error| SecretsError::malformed(&self.id, &error))?;
        let value = Arc::new(value);
        *self.current.write().await = Some(Cached { value: Arc::clone(&value), read_at: Instant::now() });
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(value)
    }
}

/// A string that must not be printed: `Debug` and `Display` show `***`. Deserializes from a
/// plain JSON string.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Creds {
        token: String,
    }

    fn cache(source: &Arc<InMemorySecretSource>, ttl: Duration) -> CachedSecret<Creds> {
        CachedSecret::new(Arc::clone(source) as Arc<dyn SecretSource>, "creds", ttl)
    }

    #[tokio::test(start_paused = true)]
    async fn warm_reads_come_from_memory_until_the_ttl_passes() {
        let source = Arc::new(InMemorySecretSource::new());
        source.set("creds", r#"{"token":"one"}"#);
        let cached = cache(&source, Duration::from_secs(300));
        assert_eq!(cached.get().await.unwrap().token, "one");
        source.set("creds", r#"{"token":"two"}"#);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(cached.get().await.unwrap().token, "one");
        assert_eq!(source.reads(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cached.get().await.unwrap().token, "two");
        assert_eq!(source.reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_if_allowed_reads_at_most_once_per_ttl_window() {
        let source = Arc::new(InMemorySecretSource::new());
        source.set("creds", r#"{"token":"one"}"#);
        let cached = cache(&source, Duration::from_secs(300));
        cached.get().await.unwrap();
        source.set("creds", r#"{"token":"rotated"}"#);
        let refreshed = cached.refresh_if_allowed().await.unwrap().unwrap();
        assert_eq!(refreshed.token, "rotated");
        assert_eq!(cached.get().await.unwrap().token, "rotated");
        for _ in 0..5 {
            assert!(cached.refresh_if_allowed().await.unwrap().is_none());
        }
        assert_eq!(source.reads(), 2);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(cached.refresh_if_allowed().await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn force_refresh_always_rereads() {
        let source = Arc::new(InMemorySecretSource::new());
        source.set("creds", r#"{"token":"one"}"#);
        let cached = cache(&source, Duration::from_secs(300));
        cached.get().await.unwrap();
        source.set("creds", r#"{"token":"two"}"#);
        assert_eq!(cached.force_refresh().await.unwrap().token, "two");
        source.set("creds", r#"{"token":"three"}"#);
        assert_eq!(cached.force_refresh().await.unwrap().token, "three");
        assert_eq!(source.reads(), 3);
    }

    #[tokio::test]
    async fn concurrent_cold_callers_share_one_read() {
        let source = Arc::new(InMemorySecretSource::new());
        source.set("creds", r#"{"token":"one"}"#);
        let cached = Arc::new(cache(&source, Duration::from_secs(300)));
        let calls = (0..32).map(|_| {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move { cached.get().await.unwrap().token.clone() })
        });
        for token in futures::future::join_all(calls).await {
            assert_eq!(token.unwrap(), "one");
        }
        assert_eq!(source.reads(), 1);
    }

    #[tokio::test]
    async fn concurrent_refresh_requests_share_one_read() {
        let source = Arc::new(InMemorySecretSource::new());
        source.set("creds", r#"{"token":"one"}"#);
        let cached = Arc::new(cache(&source, Duration::from_secs(300)));
        cached.get().await.unwrap();
        source.set("creds", r#"{"token":"two"}"#);
        let calls = (0..16).map(|_| {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move { cached.refresh_if_allowed().await.unwrap() })
        });
        futures::future::join_all(calls).await;
        assert_eq!(source.reads(), 2);
        assert_eq!(cached.get().await.unwrap().token, "two");
    }

    #[tokio::test]
    async fn malformed_secret_errors_never_quote_the_value() {
        let source = Arc::new(InMemorySecretSource::new());
        let cached = cache(&source, Duration::from_secs(300));
        // Each shape makes serde produce a message that would quote part of the value.
        let values = [
            r#"{"token": 12345678901234567}"#,
            r#"{"tokn":"hunter2-super-secret"}"#,
            r#"{"token":"hunter2-super-secret""#,
            r#"hunter2-super-secret"#,
            r#"{"token":["hunter2-super-secret"]}"#,
        ];
        for value in values {
            source.set("creds", value);
            let error = cached.force_refresh().await.unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(matches!(error, SecretsError::Malformed { .. }), "{text}");
            for fragment in ["hunter2", "super-secret", "12345678901234567", "tokn"] {
                assert!(!text.contains(fragment), "error text leaks {fragment:?}: {text}");
            }
            assert!(text.contains("creds"), "error should name the secret id: {text}");
        }
    }

    #[tokio::test]
    async fn missing_secret_is_not_found() {
        let source = Arc::new(InMemorySecretSource::new());
        let cached = cache(&source, Duration::from_secs(300));
        assert_eq!(cached.get().await.unwrap_err(), SecretsError::NotFound { id: "creds".into() });
    }

    #[test]
    fn secret_strings_do_not_print() {
        let secret = SecretString::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2");
    }
}
