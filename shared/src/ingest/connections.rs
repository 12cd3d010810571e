//! The connections secret, held in memory.
//!
//! * Read on the first request and kept for the TTL; concurrent callers share one read.
//! * After the TTL it is read again; if that read fails (Secrets Manager unreachable, a
//!   malformed value), the last good value keeps serving for another TTL, with a warning:
//!   a request the cached key verifies must not fail because of a secret it does not need.
//! * A request for a connection the secret has, whose verification failed with the cached
//!   key, may re-read it early (a key was rotated) -- at most once per TTL per connection.
//!   Unknown connections never cause a read, so forged requests to made-up names cannot
//!   spend anything, and a forger of one connection cannot spend another's re-read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::secrets::{SecretSource, SecretsError};
use crate::sources::Connections;

pub(super) struct ConnectionCache {
    source: Arc<dyn SecretSource>,
    id: String,
    ttl: Duration,
    current: RwLock<Option<Snapshot>>,
    /// Held while reading, so concurrent callers wait for one read instead of each
    /// starting their own; holds when each connection last asked for an early re-read.
    reading: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
struct Snapshot {
    connections: Arc<Connections>,
    /// When this value was read or, after a failed read, kept for another TTL.
    checked_at: Instant,
}

impl ConnectionCache {
    pub(super) fn new(source: Arc<dyn SecretSource>, id: String, ttl: Duration) -> Self {
        ConnectionCache { source, id, ttl, current: RwLock::new(None), reading: Mutex::new(HashMap::new()) }
    }

    /// The connections: from memory within the TTL, else read again, else the last good
    /// value. An error only when there has never been a good value.
    pub(super) async fn get(&self) -> Result<Arc<Connections>, SecretsError> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _reading = self.reading.lock().await;
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        match self.read().await {
            Ok(connections) => Ok(connections),
            Err(error) => match self.snapshot() {
                Some(stale) => {
                    tracing::warn!(%error, "could not re-read the connections secret; the last good value stays in use");
                    self.store(Snapshot { connections: Arc::clone(&stale.connections), checked_at: Instant::now() });
                    Ok(stale.connections)
                }
                None => Err(error),
            },
        }
    }

    /// Re-reads the secret because `connection`, which `seen` has, failed verification
    /// with `seen`'s key. `None` when that is not allowed now (this connection already
    /// re-read within the TTL) or the read failed: keep the answer you have.
    pub(super) async fn refresh_for(&self, connection: &str, seen: &Arc<Connections>) -> Option<Arc<Connections>> {
        let mut last_asked = self.reading.lock().await;
        if let Some(current) = self.snapshot()
            && !Arc::ptr_eq(&current.connections, seen)
        {
            // Someone read a newer value while this request was verifying: use it.
            return Some(current.connections);
        }
        let now = Instant::now();
        last_asked.retain(|_, at| now.duration_since(*at) < self.ttl);
        if last_asked.contains_key(connection) {
            return None;
        }
        last_asked.insert(connection.to_owned(), now);
        match self.read().await {
            Ok(connections) => Some(connections),
            Err(error) => {
                tracing::warn!(%error, "could not re-read the connections secret after a failed verification");
                None
            }
        }
    }

    fn snapshot(&self) -> Option<Snapshot> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn fresh(&self) -> Option<Arc<Connections>> {
        self.snapshot().filter(|s| s.checked_at.elapsed() < self.ttl).map(|s| s.connections)
    }

    fn store(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot);
    }

    /// Must be called with `reading` held.
    async fn read(&self) -> Result<Arc<Connections>, SecretsError> {
        let text = self.source.secret_string(&self.id).await?;
        let connections: Connections = serde_json::from_str(&text).map_err(|error| malformed(&self.id, &error))?;
        for (connection, problem) in connections.disabled() {
            tracing::error!(connection, problem, secret = %self.id, "connection disabled: its entry in the connections secret is malformed");
        }
        let connections = Arc::new(connections);
        self.store(Snapshot { connections: Arc::clone(&connections), checked_at: Instant::now() });
        Ok(connections)
    }
}

/// serde's own message may quote the value; only its category and position are kept.
fn malformed(id: &str, error: &serde_json::Error) -> SecretsError {
    let category = match error.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "JSON syntax",
        serde_json::error::Category::Data => "data shape",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    SecretsError::Malformed { id: id.to_owned(), category, line: error.line(), column: error.column() }
}
