//! The SQS FIFO queue between ingest and worker, behind a small port.
//!
//! Every event becomes one message: the body is the event's JSON, the message group is the
//! person key (so one person's events are handled in order) and the deduplication id is a
//! hash of (connection, source event id) (so a sender's retry of something already queued is
//! dropped by SQS within its 5-minute deduplication window).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
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
pub struct BatchOutcome {
    pub failed: Vec<usize>,
    pub reason: Option<String>,
    /// The call itself failed (SQS unreachable, after the SDK's own retries): retrying
    /// again here would only keep the sender waiting past its timeout.
    pub call_failed: bool,
}

/// One `SendMessageBatch`: the part of SQS the batching and retry logic needs, so that
/// logic can be tested and measured without a network. Entries are (message, body).
#[async_trait]
pub trait BatchSender: Send + Sync {
    async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome;
}

/// `SendMessageBatch` calls in flight at once for one request. A 1 MB BambooHR body holds
/// thousands of employees: one call after another, that is hundreds of round trips.
pub const SEND_CONCURRENCY: usize = 4;

/// Sends `messages` in batches of ≤ 10, up to `concurrency` batches in flight, re-sending
/// the entries a batch reports as failed. Each person's messages stay in one lane, sent
/// one batch after another in their order, so parallel batches never reorder a person.
/// A call that fails outright ends the attempt at once: the sender gets its 503 quickly.
async fn send_all(
    sender: &dyn BatchSender,
    messages: Vec<(QueuedEvent, String)>,
    concurrency: usize,
) -> Result<(), QueueError> {
    let total = messages.len();
    let stop = AtomicBool::new(false);
    let lanes = into_lanes(messages, concurrency);
    let results = futures::future::join_all(lanes.into_iter().map(|lane| send_lane(sender, lane, &stop))).await;
    let mut failed = 0;
    let mut reasons = Vec::new();
    for unsent in results.into_iter().filter_map(Result::err) {
        failed += unsent.count;
        reasons.extend(unsent.reason);
    }
    match failed {
        0 => Ok(()),
        failed => {
            Err(QueueError::Unavailable { failed, total, reason: reasons.into_iter().next().unwrap_or_default() })
        }
    }
}

/// What one lane could not queue.
struct Unsent {
    count: usize,
    /// Why, unless the lane only stopped because another lane's call failed.
    reason: Option<String>,
}

/// Splits `messages` into at most `concurrency` lanes, no more than there are batches to
/// send. A message group goes whole to the lane with the fewest messages so far; each
/// lane keeps the order the messages came in.
fn into_lanes(messages: Vec<(QueuedEvent, String)>, concurrency: usize) -> Vec<Vec<(QueuedEvent, String)>> {
    let count = concurrency.min(messages.len().div_ceil(MAX_BATCH)).max(1);
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for (queued, _) in &messages {
        *sizes.entry(queued.group_id.as_str()).or_default() += 1;
    }
    let mut load = vec![0usize; count];
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    for (queued, _) in &messages {
        if lane_of.contains_key(&queued.group_id) {
            continue;
        }
        let lightest = (0..count).min_by_key(|&lane| load[lane]).unwrap_or(0);
        load[lightest] += sizes.get(queued.group_id.as_str()).copied().unwrap_or(1);
        lane_of.insert(queued.group_id.clone(), lightest);
    }
    let mut lanes: Vec<Vec<(QueuedEvent, String)>> = (0..count).map(|_| Vec::new()).collect();
    for message in messages {
        let lane = lane_of.get(&message.0.group_id).copied().unwrap_or(0);
        lanes[lane].push(message);
    }
    lanes
}

/// One lane: its batches one after another, then its failed entries again (up to
/// [`ATTEMPTS`] in all). Stops before its next call once any lane's call failed outright.
async fn send_lane(
    sender: &dyn BatchSender,
    lane: Vec<(QueuedEvent, String)>,
    stop: &AtomicBool,
) -> Result<(), Unsent> {
    let mut pending = lane;
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
            if stop.load(Ordering::SeqCst) {
                let count = still_failing.len() + chunk.len() + chunks.map(<[_]>::len).sum::<usize>();
                return Err(Unsent { count, reason: None });
            }
            let outcome = sender.send_batch(chunk).await;
            if let Some(reason) = outcome.reason {
                last_reason = reason;
            }
            still_failing.extend(outcome.failed.into_iter().filter_map(|i| chunk.get(i).cloned()));
            if outcome.call_failed {
                stop.store(true, Ordering::SeqCst);
                let count = still_failing.len() + chunks.map(<[_]>::len).sum::<usize>();
                return Err(Unsent { count, reason: Some(last_reason) });
            }
        }
        if !still_failing.is_empty() {
            tracing::warn!(failed = still_failing.len(), attempt = attempt + 1, "queue entries failed");
        }
        pending = still_failing;
    }
    match pending.len() {
        0 => Ok(()),
        count => Err(Unsent { count, reason: Some(last_reason) }),
    }
}

/// Any [`BatchSender`] as an [`EventQueue`], with SQS's batching, retries and
/// `concurrency` calls in flight (benchmarks and tests: a sender with a set latency).
pub struct BatchingQueue<S> {
    sender: S,
    concurrency: usize,
}

impl<S: BatchSender> BatchingQueue<S> {
    pub fn new(sender: S, concurrency: usize) -> Self {
        BatchingQueue { sender, concurrency }
    }
}

#[async_trait]
impl<S: BatchSender> EventQueue for BatchingQueue<S> {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError> {
        send_all(&self.sender, in_send_order(events)?, self.concurrency).await
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
        send_all(self, in_send_order(events)?, SEND_CONCURRENCY).await
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

impl InMemoryState {
    /// Appends the messages, dropping those whose deduplication id was seen within the window.
    fn push(&mut self, messages: impl IntoIterator<Item = QueuedEvent>, window: Duration) {
        let now = std::time::Instant::now();
        self.seen.retain(|_, at| now.duration_since(*at) < window);
        for queued in messages {
            if self.seen.contains_key(&queued.deduplication_id) {
                continue;
            }
            self.seen.insert(queued.deduplication_id.clone(), now);
            self.messages.push_back(queued);
        }
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
        state.push(messages.into_iter().map(|(queued, _)| queued), self.dedup_window);
        Ok(())
    }
}

/// One batch straight into the queue, so [`BatchingQueue`] can stand in front of it.
#[async_trait]
impl BatchSender for InMemoryEventQueue {
    async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
        let mut state = self.lock();
        if state.unavailable {
            return BatchOutcome {
                failed: (0..entries.len()).collect(),
                reason: Some("in-memory queue switched off".into()),
                call_failed: true,
            };
        }
        state.push(entries.iter().map(|(queued, _)| queued.clone()), self.dedup_window);
        BatchOutcome::default()
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
        send_all(&sqs, in_send_order(&events).unwrap(), 1).await.unwrap();
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
        let error = send_all(&sqs, in_send_order(&events).unwrap(), 1).await.unwrap_err();
        assert_eq!(error, QueueError::Unavailable { failed: 16, total: 25, reason: "InternalError".into() });
        assert_eq!(sqs.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_that_keep_failing_make_the_send_fail() {
        let events: Vec<_> = (0..4).map(|i| event(&format!("p{i}"), &format!("e{i}"), 0)).collect();
        let sqs = flaky(&[("e1", 99)]);
        let error = send_all(&sqs, in_send_order(&events).unwrap(), 1).await.unwrap_err();
        assert_eq!(error, QueueError::Unavailable { failed: 1, total: 4, reason: "InternalError".into() });
        assert_eq!(sqs.calls.lock().unwrap().len(), ATTEMPTS);
    }

    /// Takes `latency` per call and records what was in flight and in which order each
    /// group's messages arrived.
    #[derive(Default)]
    struct SlowSqs {
        latency: Duration,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
        batches: std::sync::Mutex<Vec<Vec<String>>>,
        unreachable_after: Option<usize>,
    }

    #[async_trait]
    impl BatchSender for SlowSqs {
        async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut batches = self.batches.lock().unwrap();
            if self.unreachable_after.is_some_and(|calls| batches.len() >= calls) {
                return BatchOutcome {
                    failed: (0..entries.len()).collect(),
                    reason: Some("unreachable".into()),
                    call_failed: true,
                };
            }
            batches.push(entries.iter().map(|(q, _)| q.event.source_event_id.clone()).collect());
            BatchOutcome::default()
        }
    }

    /// 40 people with 10 events each, one person's events spread through the request.
    fn many_people() -> Vec<LifecycleEvent> {
        (0..400)
            .map(|i| event(&format!("p{}", i % 40), &format!("p{}-{:02}", i % 40, i / 40), (i / 40) as u32))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn batches_go_out_in_parallel_and_each_persons_events_stay_in_order() {
        let sqs = SlowSqs { latency: Duration::from_millis(20), ..Default::default() };
        let started = tokio::time::Instant::now();
        send_all(&sqs, in_send_order(&many_people()).unwrap(), SEND_CONCURRENCY).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(sqs.most_in_flight.load(Ordering::SeqCst), SEND_CONCURRENCY);
        // 40 batches, 4 at a time: 10 round trips of 20 ms, not 40.
        assert_eq!(elapsed, Duration::from_millis(200), "{elapsed:?}");
        let batches = sqs.batches.lock().unwrap();
        assert!(batches.iter().all(|batch| batch.len() <= MAX_BATCH));
        let arrived: Vec<&String> = batches.iter().flatten().collect();
        assert_eq!(arrived.len(), 400);
        for person in 0..40 {
            let prefix = format!("p{person}-");
            let own: Vec<&&String> = arrived.iter().filter(|id| id.starts_with(&prefix)).collect();
            let expected: Vec<String> = (0..10).map(|n| format!("p{person}-{n:02}")).collect();
            assert_eq!(own.iter().map(|id| id.as_str()).collect::<Vec<_>>(), expected, "person {person}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn small_requests_are_one_call_and_one_persons_batches_never_overlap() {
        let sqs = SlowSqs { latency: Duration::from_millis(20), ..Default::default() };
        let three: Vec<_> = (0..3).map(|i| event(&format!("p{i}"), &format!("e{i}"), 0)).collect();
        send_all(&sqs, in_send_order(&three).unwrap(), SEND_CONCURRENCY).await.unwrap();
        assert_eq!(sqs.batches.lock().unwrap().len(), 1);

        // One person's 35 events: four batches, one after another.
        let sqs = SlowSqs { latency: Duration::from_millis(20), ..Default::default() };
        let one: Vec<_> = (0..35).map(|i| event("p1", &format!("e{i:02}"), i)).collect();
        send_all(&sqs, in_send_order(&one).unwrap(), SEND_CONCURRENCY).await.unwrap();
        assert_eq!(sqs.most_in_flight.load(Ordering::SeqCst), 1);
        let arrived: Vec<String> = sqs.batches.lock().unwrap().concat();
        assert_eq!(arrived, (0..35).map(|i| format!("e{i:02}")).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_lanes_still_resend_failed_entries_and_stop_when_a_call_fails() {
        let events = many_people();
        let sqs = flaky(&[("p3-04", 1), ("p17-09", 2)]);
        send_all(&sqs, in_send_order(&events).unwrap(), SEND_CONCURRENCY).await.unwrap();
        let sent = |id: &str| sqs.calls.lock().unwrap().iter().flatten().filter(|sent| *sent == id).count();
        assert_eq!((sent("p17-09"), sent("p3-04")), (3, 2));

        // The fifth call fails outright: every lane stops before its next call.
        let sqs = SlowSqs { latency: Duration::from_millis(20), unreachable_after: Some(4), ..Default::default() };
        let error = send_all(&sqs, in_send_order(&events).unwrap(), SEND_CONCURRENCY).await.unwrap_err();
        let sent = sqs.batches.lock().unwrap().iter().map(Vec::len).sum::<usize>();
        assert_eq!(error, QueueError::Unavailable { failed: 400 - sent, total: 400, reason: "unreachable".into() });
        assert!(sent < 100, "{sent} sent after the failure");
    }

    #[tokio::test]
    async fn a_batching_queue_in_front_of_the_in_memory_queue_queues_everything_once() {
        let memory = std::sync::Arc::new(InMemoryEventQueue::new());
        struct Shared(std::sync::Arc<InMemoryEventQueue>);
        #[async_trait]
        impl BatchSender for Shared {
            async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
                self.0.send_batch(entries).await
            }
        }
        let queue = BatchingQueue::new(Shared(memory.clone()), SEND_CONCURRENCY);
        queue.send(&many_people()).await.unwrap();
        queue.send(&many_people()).await.unwrap();
        assert_eq!(memory.len(), 400);
        memory.set_available(false);
        assert!(matches!(queue.send(&many_people()).await, Err(QueueError::Unavailable { failed: 400, .. })));
    }
}
