//! The due-action sweep over real protocols: `DynamoLedger` on moto's DynamoDB (the sparse
//! `due-actions` index) and `SqsEventQueue` on moto's SQS FIFO, whose deduplication ids
//! make repeated sweeps harmless.
//!
//! moto deduplicates a FIFO message only against messages still on the queue (real SQS
//! remembers deleted ones for 5 minutes too), so every test sweeps first and drains after.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use e2e::{FifoQueues, Moto};
use provisioning::clock::FixedClock;
use provisioning::ledger::{
    Due, DueAction, DynamoLedger, Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord,
};
use provisioning::queue::{EventQueue, QueueError, SqsEventQueue, deduplication_id};
use provisioning::scim::ScimUserId;
use provisioning::sweep::{DueSweep, Ports, SweepSettings, SweepSummary, converge_event};
use provisioning::{EventKind, LifecycleEvent, PersonKey, SourceKind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

const TABLE: &str = "ledger";
const CONNECTION: &str = "hibob-main";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 0, 5, 0).unwrap()
}

fn person(n: usize) -> PersonKey {
    PersonKey::new(CONNECTION, format!("{n:03}"))
}

fn record(n: usize, due_at: DateTime<Utc>) -> PersonRecord {
    let mut record = PersonRecord::new(person(n), SourceKind::Hibob, now() - ChronoDuration::days(10));
    record.due = Some(Due { at: due_at, intent: format!("invite {n} ahead of the start date") });
    record
}

struct Stack {
    _moto: Moto,
    dynamo: aws_sdk_dynamodb::Client,
    ledger: Arc<DynamoLedger>,
    queues: FifoQueues,
    queue: Arc<SqsEventQueue>,
}

impl Stack {
    async fn start() -> Stack {
        let moto = Moto::start().expect("moto_server starts (run scripts/setup)");
        let sdk = moto.sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        DynamoLedger::create_table_for_tests(&dynamo, TABLE).await.unwrap();
        // Small Query pages: the ledger follows LastEvaluatedKey within one sweep page.
        let ledger = Arc::new(DynamoLedger::new(dynamo.clone(), TABLE).with_query_page_size(3));
        let queues = FifoQueues::create(&sdk, "events", 5).await.unwrap();
        let queue = Arc::new(SqsEventQueue::new(queues.client.clone(), queues.queue_url.clone()));
        Stack { _moto: moto, dynamo, ledger, queues, queue }
    }

    async fn seed(&self, records: &[PersonRecord]) {
        for record in records {
            self.ledger.save_person(record).await.unwrap();
        }
    }

    fn sweep(&self, ledger: Arc<dyn Ledger>, page_size: usize) -> DueSweep {
        self.sweep_into(ledger, self.queue.clone(), page_size)
    }

    fn sweep_into(&self, ledger: Arc<dyn Ledger>, queue: Arc<dyn EventQueue>, page_size: usize) -> DueSweep {
        let ports = Ports { ledger, queue, clock: Arc::new(FixedClock::new(now())) };
        DueSweep::new(ports, SweepSettings { page_size, ..SweepSettings::default() })
    }

    async fn due_at(&self, n: usize) -> Option<DateTime<Utc>> {
        self.ledger.person(&person(n)).await.unwrap().and_then(|r| r.due).map(|d| d.at)
    }

    /// The person's state item as stored.
    async fn raw_item(&self, n: usize) -> std::collections::HashMap<String, AttributeValue> {
        let key = |v: String| AttributeValue::S(v);
        let output = self.dynamo.get_item().table_name(TABLE).key("pk", key(format!("PERSON#{}", person(n))));
        output.key("sk", key("STATE".into())).send().await.unwrap().item.expect("state item")
    }

    async fn queued(&self) -> usize {
        let attributes = self
            .queues
            .client
            .get_queue_attributes()
            .queue_url(&self.queues.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        attributes[&QueueAttributeName::ApproximateNumberOfMessages].parse().unwrap()
    }

    /// Every message on the queue, deleted as received (so a duplicate in the same group
    /// would surface next): (group id, deduplication id, event).
    async fn drain(&self) -> Vec<(String, String, LifecycleEvent)> {
        let mut messages = Vec::new();
        loop {
            let batch = self
                .queues
                .client
                .receive_message()
                .queue_url(&self.queues.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                let attributes = message.attributes.clone().unwrap_or_default();
                let event: LifecycleEvent = serde_json::from_str(message.body().unwrap()).unwrap();
                messages.push((
                    attributes[&MessageSystemAttributeName::MessageGroupId].clone(),
                    attributes[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
                    event,
                ));
                let handle = message.receipt_handle().unwrap();
                self.queues
                    .client
                    .delete_message()
                    .queue_url(&self.queues.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

fn people_of(messages: &[(String, String, LifecycleEvent)]) -> BTreeMap<PersonKey, usize> {
    let mut counts = BTreeMap::new();
    for (_, _, event) in messages {
        *counts.entry(event.person.clone()).or_default() += 1;
    }
    counts
}

async fn run(sweep: &DueSweep) -> SweepSummary {
    sweep.run(Instant::now() + Duration::from_secs(120)).await
}

/// 25 people: the even ones due (in the past, or exactly now), the odd ones not yet.
fn twenty_five() -> Vec<PersonRecord> {
    (0..25)
        .map(|n| match n % 2 {
            0 if n % 4 == 0 => record(n, now()),
            0 => record(n, now() - ChronoDuration::hours(n as i64)),
            _ => record(n, now() + ChronoDuration::minutes(n as i64)),
        })
        .collect()
}

#[tokio::test]
async fn one_background_queues_exactly_the_due_actions_as_converge_events_and_marks_them() {
    let stack = Stack::start().await;
    let records = twenty_five();
    stack.seed(&records).await;

    let summary = run(&stack.sweep(stack.ledger.clone(), 4)).await;
    assert_eq!((summary.enqueued, summary.completed, summary.moved_meanwhile), (13, 13, 0), "{summary:?}");
    assert_eq!((summary.pages, summary.stopped_early, summary.error), (4, false, None));

    let messages = stack.drain().await;
    assert_eq!(messages.len(), 13);
    let due: Vec<&PersonRecord> = records.iter().filter(|r| r.due.as_ref().is_some_and(|d| d.at <= now())).collect();
    for record in &due {
        let action = DueAction {
            person: record.person.clone(),
            source_kind: SourceKind::Hibob,
            due: record.due.clone().unwrap(),
        };
        let expected = converge_event(&action, now());
        let (group, dedup, event) = messages.iter().find(|(_, _, e)| e.person == record.person).expect("queued");
        assert_eq!(event, &expected);
        assert_eq!(event.kind, EventKind::Converge);
        assert_eq!(group, &record.person.to_string());
        assert_eq!(dedup, &deduplication_id(CONNECTION, &expected.source_event_id));
        assert_eq!(stack.due_at(record.person.id.parse().unwrap()).await, None, "{} marked", record.person);
    }
    for n in (1..25).step_by(2) {
        assert_eq!(stack.due_at(n).await, Some(now() + ChronoDuration::minutes(n as i64)), "{n} not yet due");
    }

    // Marked items left the sparse index for real: no index attributes remain.
    let marked = stack.raw_item(0).await;
    assert!(["gsi2pk", "gsi2sk", "due_at"].iter().all(|a| !marked.contains_key(*a)), "{marked:?}");
    assert_eq!(stack.raw_item(1).await.get("gsi2pk"), Some(&AttributeValue::S("DUE".into())));
}

#[tokio::test]
async fn two_overlapping_sweeps_queue_each_person_exactly_once() {
    let stack = Stack::start().await;
    stack.seed(&twenty_five()).await;
    // Both sweeps list every due action before either queues or marks anything.
    let barrier = Arc::new(Barrier::new(2));
    let gated = |barrier: &Arc<Barrier>| Hooked::new(stack.ledger.clone()).gated(barrier.clone());
    let queue: Arc<dyn EventQueue> = Arc::new(OneSendAtATime { inner: stack.queue.clone(), lock: Default::default() });
    let first = stack.sweep_into(Arc::new(gated(&barrier)), queue.clone(), 100);
    let second = stack.sweep_into(Arc::new(gated(&barrier)), queue, 100);

    let (a, b) = tokio::join!(run(&first), run(&second));
    assert_eq!((a.error.clone(), b.error.clone()), (None, None));
    assert_eq!((a.enqueued, b.enqueued), (13, 13), "both sent the whole page: {a:?} {b:?}");
    assert_eq!(a.completed + b.completed, 13, "each action marked once: {a:?} {b:?}");
    assert_eq!(a.moved_meanwhile + b.moved_meanwhile, 13, "the other sweep's marks fail their condition");

    // moto implements FIFO deduplication ids: the second copy of each was dropped.
    assert_eq!(stack.queued().await, 13);
    let messages = stack.drain().await;
    let counts = people_of(&messages);
    assert_eq!(counts.len(), 13);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[tokio::test]
async fn a_crash_between_enqueue_and_mark_leaves_one_message_per_person() {
    let stack = Stack::start().await;
    stack.seed(&twenty_five()).await;
    // The crashed sweep: listed and queued, then died before marking.
    let listed = stack.ledger.due_actions(now(), None, 100).await.unwrap();
    let events: Vec<LifecycleEvent> = listed.iter().map(|a| converge_event(a, now())).collect();
    stack.queue.send(&events).await.unwrap();
    assert_eq!(stack.queued().await, 13);
    assert!(stack.due_at(0).await.is_some(), "nothing marked yet");

    let summary = run(&stack.sweep(stack.ledger.clone(), 5)).await;
    assert_eq!((summary.enqueued, summary.completed, summary.error.clone()), (13, 13, None), "{summary:?}");
    assert_eq!(stack.queued().await, 13, "the re-sent events were deduplicated");
    let counts = people_of(&stack.drain().await);
    assert_eq!(counts.len(), 13);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(stack.ledger.due_actions(now(), None, 100).await.unwrap(), Vec::<DueAction>::new());
}

#[tokio::test]
async fn a_due_action_the_worker_moves_between_listing_and_marking_is_kept() {
    let stack = Stack::start().await;
    stack.seed(&[record(1, now()), record(2, now() - ChronoDuration::minutes(1))]).await;
    let moved_to = now() + ChronoDuration::days(14);
    let hooked = Hooked::new(stack.ledger.clone());
    *hooked.after_listing.lock().unwrap() = Some(record(1, moved_to));

    let summary = run(&stack.sweep(Arc::new(hooked), 100)).await;
    assert_eq!((summary.enqueued, summary.completed, summary.moved_meanwhile), (2, 1, 1), "{summary:?}");
    assert_eq!(summary.error, None);
    assert_eq!(stack.due_at(1).await, Some(moved_to), "the worker's newer date is kept");
    assert_eq!(stack.due_at(2).await, None);
    let later = stack.ledger.due_actions(moved_to, None, 10).await.unwrap();
    assert_eq!(later.iter().map(|a| a.person.clone()).collect::<Vec<_>>(), [person(1)]);
}

/// SQS deduplicates atomically; moto checks for a duplicate and then appends, unlocked, in
/// a threaded server, so two batches sent at the same instant could both pass its check.
/// The sweeps' sends are taken one at a time so the test checks the sweep, not that race.
struct OneSendAtATime {
    inner: Arc<SqsEventQueue>,
    lock: tokio::sync::Mutex<()>,
}

#[async_trait]
impl EventQueue for OneSendAtATime {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError> {
        let _one_at_a_time = self.lock.lock().await;
        self.inner.send(events).await
    }
}

/// The DynamoDB ledger with two hooks between listing and marking: a barrier both
/// overlapping sweeps wait at after their first listing, and a record the "worker" saves
/// right after a listing.
struct Hooked {
    inner: Arc<DynamoLedger>,
    barrier: Option<Arc<Barrier>>,
    listings: AtomicUsize,
    after_listing: Mutex<Option<PersonRecord>>,
}

impl Hooked {
    fn new(inner: Arc<DynamoLedger>) -> Self {
        Hooked { inner, barrier: None, listings: AtomicUsize::new(0), after_listing: Mutex::new(None) }
    }

    fn gated(self, barrier: Arc<Barrier>) -> Self {
        Hooked { barrier: Some(barrier), ..self }
    }
}

#[async_trait]
impl Ledger for Hooked {
    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.inner.record_sign_in(user_id, at).await
    }
    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.inner.first_sign_in(user_id).await
    }
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError> {
        self.inner.person(person).await
    }
    async fn save_person(&self, record: &PersonRecord) -> Result<(), LedgerError> {
        self.inner.save_person(record).await
    }
    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError> {
        let listed = self.inner.due_actions(due_by, after, limit).await?;
        if self.listings.fetch_add(1, Ordering::SeqCst) == 0
            && let Some(barrier) = &self.barrier
        {
            barrier.wait().await;
        }
        let moved = self.after_listing.lock().unwrap().take();
        if let Some(moved) = moved {
            self.inner.save_person(&moved).await?;
        }
        Ok(listed)
    }
    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        self.inner.complete_due_action(action).await
    }
    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError> {
        self.inner.claim_account(user_id, person).await
    }
    async fn try_lease(
        &self,
        person: &PersonKey,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.inner.try_lease(person, holder, until, now).await
    }
    async fn release_lease(&self, person: &PersonKey, holder: &str) -> Result<(), LedgerError> {
        self.inner.release_lease(person, holder).await
    }
    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError> {
        self.inner.account_owner(user_id).await
    }
    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError> {
        self.inner.invitation(person).await
    }
    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError> {
        self.inner.start_invitation_unless_pending(invitation).await
    }
    async fn overwrite_invitation_status(&self, p: &PersonKey, s: InvitationStatus) -> Result<(), LedgerError> {
        self.inner.overwrite_invitation_status(p, s).await
    }
    async fn settle_invitation_if_pending(&self, p: &PersonKey, s: InvitationStatus) -> Result<bool, LedgerError> {
        self.inner.settle_invitation_if_pending(p, s).await
    }
    async fn record_reissue_if_unchanged(&self, p: &PersonKey, n: u32, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        self.inner.record_reissue_if_unchanged(p, n, at).await
    }
    async fn pending_invitations(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Invitation>, LedgerError> {
        self.inner.pending_invitations(before, limit).await
    }
    async fn all_pending_invitations(&self) -> Result<Vec<Invitation>, LedgerError> {
        self.inner.all_pending_invitations().await
    }
    async fn events_cursor(&self) -> Result<Option<String>, LedgerError> {
        self.inner.events_cursor().await
    }
    async fn set_events_cursor(&self, cursor: &str) -> Result<(), LedgerError> {
        self.inner.set_events_cursor(cursor).await
    }
    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError> {
        self.inner.reserve_suspension(window_id, limit).await
    }
}
