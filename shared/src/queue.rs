//! The SQS FIFO queue between ingest and worker, behind a small port.
//!
//! Every event becomes one message: the body is the event's JSON, the message group is the
//! person key (so one person's events are handled in order) and the deduplication id is a
//! hash of (connection, source event id) (so a sender's retry of something already queued is
//! dropped by SQS within its 5-minute deduplication window).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::event::LifecycleEvent;

/// SQS accepts at most this many entries per `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;
/// Attempts per entry, counting the first: entries a batch reports as failed are re-sent.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// Some events could not be queued; the sender should retry (deduplication makes the
    /// retry safe for the ones that were).
    #[error("{failed} of {total} events could not be queued: {reason}")]
    Unavailable { failed: usize, total: usize, reason: String },
    #[error("event could not be encoded: {0}")]
    Encoding(String),
}

/// One message as it is (or would be) on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub group_id: String,
    pub deduplication_id: String,
    pub event: LifecycleEvent,
}

impl QueuedEvent {
    pub fn new(event: LifecycleEvent) -> Self {
        QueuedEvent {
            group_id: message_group_id(&event),
            deduplication_id: match event.requeued {
                0 => deduplication_id(&event.person.source, &event.source_event_id),
                // A copy handed back by the worker must not be dropped as a duplicate.
                n => deduplication_id(&event.person.source, &format!("{}\0requeued {n}", event.source_event_id)),
            },
            event,
        }
    }
}

/// The person key (`connection:id`) when SQS accepts it as a group id (≤ 128 printable
/// ASCII characters); otherwise a stable hash of it, which still keeps the person's
/// events in one group.
pub fn message_group_id(event: &LifecycleEvent) -> String {
    let key = event.person.to_string();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation();
    if key.len() <= 128 && key.chars().all(allowed) {
        key
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// Hex SHA-256 of `connection`, a NUL and the source event id: 64 characters, within SQS's
/// 128-character limit whatever the source's ids look like. Connection names cannot contain
/// NUL, so two different pairs never share an input.
pub fn deduplication_id(connection: &str, source_event_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(connection.as_bytes());
    hasher.update([0u8]);
    hasher.update(source_event_id.as_bytes());
    hex::encode(hasher.finalize())
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Queues every event or reports how many could not be queued.
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError>;
}

/// Outcome of one `SendMessageBatch` call: the indexes (into the call's slice) that failed.
#[derive(Debug, Default)]
struct BatchOutcome {
    failed: Vec<usize>,
    reason: Option<String>,
    /// The call itself failed (SQS unreachable, after the SDK's own retries): retrying
    /// again here would only keep the sender waiting past its timeout.
    call_failed: bool,
}

/// The part of SQS the retry logic needs; lets the logic be tested without a network.
#[async_trait]
trait BatchSender: Send + Sync {
    async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome;
}

/// Sends `messages` in batches of ≤ 10, re-sending the entries a batch reports as failed.
/// A call that fails outright ends the attempt at once: the sender gets its 503 quickly.
async fn send_all(sender: &dyn BatchSender, messages: Vec<(QueuedEvent, String)>) -> Result<(), QueueError> {
    let total = messages.len();
    let mut pending = messages;
    let mut last_reason = String::new();
    for attempt in 0..ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
        }
        let mut still_failing = Vec::new();
        let mut chunks = pending.chunks(MAX_BATCH);
        while let Some(chunk) = chunks.next() {
            let outcome = sender.send_batch(chunk).await;
            if let Some(reason) = outcome.reason {
                last_reason = reason;
            }
            still_failing.extend(outcome.failed.into_iter().filter_map(|i| chunk.get(i).cloned()));
            if outcome.call_failed {
                let unsent = still_failing.len() + chunks.map(<[_]>::len).sum::<usize>();
                return Err(QueueError::Unavailable { failed: unsent, total, reason: last_reason });
            }
        }
        if !still_failing.is_empty() {
            tracing::warn!(failed = still_failing.len(), attempt = attempt + 1, "queue entries failed");
        }
        pending = still_failing;
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(QueueError::Unavailable { failed: pending.len(), total, reason: last_reason })
    }
}

/// Orders events so each person's go out in effective order (sources such as Okta may
/// deliver a batch out of order), keeping the arrival order otherwise.
fn in_send_order(events: &[LifecycleEvent]) -> Result<Vec<(QueuedEvent, String)>, QueueError> {
    let mut sorted: Vec<&LifecycleEvent> = events.iter().collect();
    sorted.sort_by_key(|event| event.effective_at);
    sorted
        .into_iter()
        .map(|event| {
            let body = serde_json::to_string(event).map_err(|e| QueueError::Encoding(e.to_string()))?;
            Ok((QueuedEvent::new(event.clone()), body))
        })
        .collect()
}

/// SQS FIFO through the AWS SDK.
pub struct SqsEventQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsEventQueue { client, queue_url: queue_url.into() }
    }

    /// A client with timeouts short enough to answer a sender (Okta allows 3 s) even when
    /// SQS cannot be reached.
    pub fn from_sdk_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(Duration::from_millis(800))
            .operation_timeout(Duration::from_millis(1800))
            .build();
        // The SDK retries a failed call itself; a short first backoff keeps three attempts
        // inside the operation timeout.
        let retries = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(100));
        let sqs_config =
            aws_sdk_sqs::config::Builder::from(config).timeout_config(timeouts).retry_config(retries).build();
        Self::new(aws_sdk_sqs::Client::from_conf(sqs_config), queue_url)
    }
}

#[async_trait]
impl BatchSender for SqsEventQueue {
    async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (index, (queued, body)) in entries.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .message_body(body)
                .message_group_id(&queued.group_id)
                .message_deduplication_id(&queued.deduplication_id)
                .build();
            match entry {
                Ok(entry) => request = request.entries(entry),
                Err(error) => {
                    return BatchOutcome {
                        failed: (0..entries.len()).collect(),
                        reason: Some(error.to_string()),
                        call_failed: true,
                    };
                }
            }
        }
        match request.send().await {
            Ok(output) => {
                let reason = output
                    .failed
                    .first()
                    .map(|f| format!("{}: {}", f.code, f.message.as_deref().unwrap_or("no message")));
                BatchOutcome {
                    failed: output.failed.iter().filter_map(|f| f.id.parse().ok()).collect(),
                    reason,
                    call_failed: false,
                }
            }
            Err(error) => BatchOutcome {
                failed: (0..entries.len()).collect(),
                reason: Some(aws_sdk_sqs::error::DisplayErrorContext(&error).to_string()),
                call_failed: true,
            },
        }
    }
}

#[async_trait]
impl EventQueue for SqsEventQueue {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError> {
        send_all(self, in_send_order(events)?).await
    }
}

/// An in-process FIFO queue for the local stack and unit tests. It deduplicates like SQS
/// FIFO (same deduplication id within the window is dropped) and can be switched to
/// "unavailable" to exercise the 503 path.
pub struct InMemoryEventQueue {
    state: std::sync::Mutex<InMemoryState>,
    dedup_window: Duration,
}

#[derive(Default)]
struct InMemoryState {
    messages: VecDeque<QueuedEvent>,
    seen: HashMap<String, std::time::Instant>,
    unavailable: bool,
}

impl Default for InMemoryEventQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventQueue {
    pub fn new() -> Self {
        InMemoryEventQueue {
            state: std::sync::Mutex::new(InMemoryState::default()),
            dedup_window: Duration::from_secs(300),
        }
    }

    /// While unavailable, every `send` fails as SQS would when unreachable.
    pub fn set_available(&self, available: bool) {
        self.lock().unavailable = !available;
    }

    /// Takes up to `max` messages off the front of the queue, in the order they were queued
    /// (so FIFO within each group).
    pub fn receive(&self, max: usize) -> Vec<QueuedEvent> {
        let mut state = self.lock();
        let take = max.min(state.messages.len());
        state.messages.drain(..take).collect()
    }

    /// Takes every message off the queue, in the order they were queued.
    pub fn drain(&self) -> Vec<QueuedEvent> {
        self.lock().messages.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InMemoryState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl EventQueue for InMemoryEventQueue {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError> {
        let messages = in_send_order(events)?;
        let mut state = self.lock();
        if state.unavailable {
            return Err(QueueError::Unavailable {
                failed: events.len(),
                total: events.len(),
                reason: "in-memory queue switched off".into(),
            });
        }
        let now = std::time::Instant::now();
        let window = self.dedup_window;
        state.seen.retain(|_, at| now.duration_since(*at) < window);
        for (queued, _) in messages {
            if state.seen.contains_key(&queued.deduplication_id) {
                continue;
            }
            state.seen.insert(queued.deduplication_id.clone(), now);
            state.messages.push_back(queued);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Attributes, EventKind, PersonKey, SourceKind};
    use chrono::{TimeZone, Utc};

    fn event(person: &str, id: &str, minute: u32) -> LifecycleEvent {
        LifecycleEvent {
            version: 1,
            kind: EventKind::Mover,
            person: PersonKey::new("conn", person),
            source_kind: SourceKind::Okta,
            source_event_id: id.into(),
            effective_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, minute, 0).unwrap(),
            received_at: Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap(),
            attributes: Attributes::default(),
            immediate: false,
            requeued: 0,
        }
    }

    #[test]
    fn deduplication_id_depends_on_connection_and_event_id() {
        let a = deduplication_id("conn-a", "e1");
        assert_eq!(a.len(), 64);
        assert_eq!(a, deduplication_id("conn-a", "e1"));
        assert_ne!(a, deduplication_id("conn-b", "e1"));
        assert_ne!(a, deduplication_id("conn-a", "e2"));
        assert_ne!(deduplication_id("ab", "c"), deduplication_id("a", "bc"));
    }

    #[test]
    fn group_id_is_the_person_key_or_its_hash_when_sqs_would_refuse_it() {
        assert_eq!(message_group_id(&event("00u1", "e", 0)), "conn:00u1");
        let odd = message_group_id(&event("Dana Kim ✓", "e", 0));
        assert!(odd.starts_with("sha256:") && odd.len() == 71, "{odd}");
        assert_eq!(odd, message_group_id(&event("Dana Kim ✓", "other", 5)));
        let long = message_group_id(&event(&"x".repeat(200), "e", 0));
        assert!(long.len() <= 128);
    }

    #[tokio::test]
    async fn in_memory_queue_is_fifo_per_person_and_deduplicates() {
        let queue = InMemoryEventQueue::new();
        queue.send(&[event("p1", "b", 2), event("p1", "a", 1), event("p2", "c", 0)]).await.unwrap();
        queue.send(&[event("p1", "a", 1)]).await.unwrap();
        let ids: Vec<_> = queue.drain().into_iter().map(|q| q.event.source_event_id).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn in_memory_queue_can_be_switched_off() {
        let queue = InMemoryEventQueue::new();
        queue.set_available(false);
        assert!(matches!(
            queue.send(&[event("p1", "a", 0)]).await,
            Err(QueueError::Unavailable { failed: 1, total: 1, .. })
        ));
        queue.set_available(true);
        queue.send(&[event("p1", "a", 0)]).await.unwrap();
        assert_eq!(queue.receive(10).len(), 1);
    }

    /// Fails the entries whose event ids are listed, a given number of times each.
    struct FlakySqs {
        failures: std::sync::Mutex<HashMap<String, usize>>,
        calls: std::sync::Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl BatchSender for FlakySqs {
        async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
            let ids: Vec<String> = entries.iter().map(|(q, _)| q.event.source_event_id.clone()).collect();
            self.calls.lock().unwrap().push(ids.clone());
            let mut failures = self.failures.lock().unwrap();
            let failed = ids
                .iter()
                .enumerate()
                .filter_map(|(i, id)| match failures.get_mut(id) {
                    Some(left) if *left > 0 => {
                        *left -= 1;
                        Some(i)
                    }
                    _ => None,
                })
                .collect();
            let call_failed = ids.iter().any(|id| id == "unreachable");
            BatchOutcome { failed, reason: Some("InternalError".into()), call_failed }
        }
    }

    fn flaky(failures: &[(&str, usize)]) -> FlakySqs {
        FlakySqs {
            failures: std::sync::Mutex::new(failures.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            calls: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_hold_at_most_ten_and_failed_entries_are_resent() {
        let events: Vec<_> = (0..23).map(|i| event(&format!("p{i}"), &format!("e{i}"), 0)).collect();
        let sqs = flaky(&[("e3", 1), ("e15", 2)]);
        send_all(&sqs, in_send_order(&events).unwrap()).await.unwrap();
        let calls = sqs.calls.lock().unwrap();
        let sizes: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3, 2, 1]);
        assert_eq!(calls[3], ["e3", "e15"]);
        assert_eq!(calls[4], ["e15"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_fails_outright_is_not_retried_and_counts_every_unsent_entry() {
        let mut events: Vec<_> = (0..25).map(|i| event(&format!("p{i}"), &format!("e{i}"), 0)).collect();
        events[3].source_event_id = "unreachable".into();
        let sqs = flaky(&[("unreachable", 99)]);
        let error = send_all(&sqs, in_send_order(&events).unwrap()).await.unwrap_err();
        assert_eq!(error, QueueError::Unavailable { failed: 16, total: 25, reason: "InternalError".into() });
        assert_eq!(sqs.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_that_keep_failing_make_the_send_fail() {
        let events: Vec<_> = (0..4).map(|i| event(&format!("p{i}"), &format!("e{i}"), 0)).collect();
        let sqs = flaky(&[("e1", 99)]);
        let error = send_all(&sqs, in_send_order(&events).unwrap()).await.unwrap_err();
        assert_eq!(error, QueueError::Unavailable { failed: 1, total: 4, reason: "InternalError".into() });
        assert_eq!(sqs.calls.lock().unwrap().len(), ATTEMPTS);
    }
}
