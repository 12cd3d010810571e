//! The due-action sweep at scale: 10,000 due actions in moto's DynamoDB (seeded with batch
//! writes), one sweep into a moto SQS FIFO queue, as the `reconcile` function runs it.
//! Prints wall time and peak memory (VmHWM) before and after the sweep: the sweep holds one
//! page (100 actions) at a time, so its memory does not grow with the number of actions.
//! moto runs in its own process; its memory is not counted.
//!
//! Consumers drain the queue while the sweep runs, as the worker would: moto 5.2.5 counts
//! every queued message again for each attribute it reads per message sent, so sending
//! into a queue that keeps 10,000 messages is quadratic there (hours), unlike SQS.
//!
//! `cargo bench -p e2e --bench due_sweep` (target: under 30 s); `DUE_SWEEP_PAGE_SIZE=1000`
//! compares another page size.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, TimeZone, Utc};
use e2e::{FifoQueues, Moto};
use provisioning::clock::FixedClock;
use provisioning::ledger::{
    Due, DueAction, DynamoLedger, Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord,
};
use provisioning::queue::{EventQueue, QueueError, SqsEventQueue};
use provisioning::scim::ScimUserId;
use provisioning::sweep::{DueSweep, Ports, SweepSettings, background_queue};
use provisioning::{EventKind, LifecycleEvent};
use provisioning::{PersonKey, SourceKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ACTIONS: usize = 10_000;
const TABLE: &str = "ledger";
/// BatchWriteItem takes at most 25 items.
const BATCH: usize = 25;
const SEEDERS: usize = 8;
/// Consumers draining the queue during the sweep.
const CONSUMERS: usize = 2;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux 4.0+), so the peak after the sweep is the
/// sweep's own, not the seeding's.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 0, 5, 0).single().expect("valid date")
}

fn record(n: usize) -> PersonRecord {
    let mut record = PersonRecord::new(PersonKey::new("hibob-main", format!("{n:05}")), SourceKind::Hibob, now());
    // Spread over the past day, many sharing a minute (as start dates share a midnight).
    let due_at = now() - ChronoDuration::minutes((n % 1440) as i64);
    record.due = Some(Due { at: due_at, intent: "invite ahead of the start date".into() });
    record
}

/// The person item exactly as `DynamoLedger::save_person` writes it (checked after seeding
/// by reading one back through the ledger).
fn item(record: &PersonRecord) -> HashMap<String, AttributeValue> {
    let s = |v: String| AttributeValue::S(v);
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let due = record.due.as_ref().expect("due set");
    HashMap::from([
        ("pk".to_owned(), s(format!("PERSON#{}", record.person))),
        ("sk".to_owned(), s("STATE".into())),
        ("person_source".to_owned(), s(record.person.source.clone())),
        ("person_id".to_owned(), s(record.person.id.clone())),
        ("source_kind".to_owned(), s("hibob".into())),
        ("known".to_owned(), s("{}".into())),
        ("recent_events".to_owned(), s("[]".into())),
        ("updated_at".to_owned(), s(ts(record.updated_at))),
        ("due_at".to_owned(), s(ts(due.at))),
        ("due_intent".to_owned(), s(due.intent.clone())),
        ("gsi2pk".to_owned(), s("DUE".into())),
        ("gsi2sk".to_owned(), s(format!("{}#{}", ts(due.at), record.person))),
    ])
}

async fn seed(dynamo: &aws_sdk_dynamodb::Client) {
    let batches: Vec<Vec<usize>> = (0..ACTIONS).collect::<Vec<_>>().chunks(BATCH).map(<[usize]>::to_vec).collect();
    let mut seeders = tokio::task::JoinSet::new();
    for share in 0..SEEDERS {
        let dynamo = dynamo.clone();
        let mine: Vec<Vec<usize>> = batches.iter().skip(share).step_by(SEEDERS).cloned().collect();
        seeders.spawn(async move {
            for batch in mine {
                let requests = batch
                    .iter()
                    .map(|&n| {
                        let put = PutRequest::builder().set_item(Some(item(&record(n)))).build().expect("put");
                        WriteRequest::builder().put_request(put).build()
                    })
                    .collect();
                let output = dynamo.batch_write_item().request_items(TABLE, requests).send().await.expect("seed");
                assert!(output.unprocessed_items.is_none_or(|u| u.is_empty()), "moto left items unprocessed");
            }
        });
    }
    while let Some(done) = seeders.join_next().await {
        done.expect("seeder");
    }
}

/// Receives and deletes until the queue is empty after the sweep has ended; (message id,
/// person id) of what it received.
async fn consume(client: aws_sdk_sqs::Client, url: String, swept: Arc<AtomicBool>) -> Vec<(String, String)> {
    let mut people = Vec::new();
    loop {
        let finished = swept.load(Ordering::SeqCst);
        // Long polling: an idle consumer must not keep moto busy.
        let receive = client.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1);
        let batch = receive.visibility_timeout(300).send().await.expect("receive").messages.unwrap_or_default();
        if batch.is_empty() {
            if finished {
                return people;
            }
            continue;
        }
        let mut deletes = Vec::new();
        for (n, message) in batch.iter().enumerate() {
            let event: LifecycleEvent = serde_json::from_str(message.body().expect("body")).expect("an event");
            assert_eq!(event.kind, EventKind::Converge);
            people.push((message.message_id().unwrap_or_default().to_owned(), event.person.id));
            let handle = message.receipt_handle().expect("receipt handle");
            deletes.push(DeleteMessageBatchRequestEntry::builder().id(n.to_string()).receipt_handle(handle).build());
        }
        let deletes = deletes.into_iter().collect::<Result<Vec<_>, _>>().expect("delete entries");
        client.delete_message_batch().queue_url(&url).set_entries(Some(deletes)).send().await.expect("delete");
    }
}

/// Time spent in the sweep's sequential calls (listing, sending); marking is the rest.
#[derive(Default)]
struct Spent {
    listing_us: AtomicU64,
    sending_us: AtomicU64,
}

impl Spent {
    fn add(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    fn secs(counter: &AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64 / 1e6
    }
}

struct TimedQueue(Arc<SqsEventQueue>, Arc<Spent>);

#[async_trait]
impl EventQueue for TimedQueue {
    async fn send(&self, events: &[LifecycleEvent]) -> Result<(), QueueError> {
        let started = Instant::now();
        let result = self.0.send(events).await;
        Spent::add(&self.1.sending_us, started);
        result
    }
}

struct TimedLedger(Arc<DynamoLedger>, Arc<Spent>);

#[async_trait]
impl Ledger for TimedLedger {
    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.0.record_sign_in(user_id, at).await
    }
    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.0.first_sign_in(user_id).await
    }
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError> {
        self.0.person(person).await
    }
    async fn save_person(&self, record: &PersonRecord) -> Result<(), LedgerError> {
        self.0.save_person(record).await
    }
    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError> {
        let started = Instant::now();
        let result = self.0.due_actions(due_by, after, limit).await;
        Spent::add(&self.1.listing_us, started);
        result
    }
    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        self.0.complete_due_action(action).await
    }
    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError> {
        self.0.claim_account(user_id, person).await
    }
    async fn try_lease(
        &self,
        person: &PersonKey,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.0.try_lease(person, holder, until, now).await
    }
    async fn release_lease(&self, person: &PersonKey, holder: &str) -> Result<(), LedgerError> {
        self.0.release_lease(person, holder).await
    }
    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError> {
        self.0.account_owner(user_id).await
    }
    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError> {
        self.0.invitation(person).await
    }
    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError> {
        self.0.start_invitation_unless_pending(invitation).await
    }
    async fn overwrite_invitation_status(&self, p: &PersonKey, s: InvitationStatus) -> Result<(), LedgerError> {
        self.0.overwrite_invitation_status(p, s).await
    }
    async fn settle_invitation_if_pending(&self, p: &PersonKey, s: InvitationStatus) -> Result<bool, LedgerError> {
        self.0.settle_invitation_if_pending(p, s).await
    }
    async fn record_reissue_if_unchanged(&self, p: &PersonKey, n: u32, at: DateTime<Utc>) -> Result<bool, LedgerError> {
        self.0.record_reissue_if_unchanged(p, n, at).await
    }
    async fn pending_invitations(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Invitation>, LedgerError> {
        self.0.pending_invitations(before, limit).await
    }
    async fn all_pending_invitations(&self) -> Result<Vec<Invitation>, LedgerError> {
        self.0.all_pending_invitations().await
    }
    async fn events_cursor(&self) -> Result<Option<String>, LedgerError> {
        self.0.events_cursor().await
    }
    async fn set_events_cursor(&self, cursor: &str) -> Result<(), LedgerError> {
        self.0.set_events_cursor(cursor).await
    }
    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError> {
        self.0.reserve_suspension(window_id, limit).await
    }
}

async fn queued(queues: &FifoQueues) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let output = queues
        .client
        .get_queue_attributes()
        .queue_url(&queues.queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes");
    output.attributes.and_then(|a| a.get(&A::ApproximateNumberOfMessages)?.parse().ok()).unwrap_or(0)
}

async fn bench() {
    let moto = Moto::start().expect("moto_server starts (run scripts/setup)");
    let sdk = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoLedger::create_table_for_tests(&dynamo, TABLE).await.expect("table");
    let queues = FifoQueues::create(&sdk, "events", 5).await.expect("queues");
    let ledger = Arc::new(DynamoLedger::new(dynamo.clone(), TABLE));

    let seeding = Instant::now();
    seed(&dynamo).await;
    let seeded_in = seeding.elapsed();
    let sample = ledger.person(&record(42).person).await.expect("read back");
    assert_eq!(sample, Some(record(42)), "seeded items must match the ledger's layout");

    // As reconcile reads it (default 100), so other page sizes can be compared.
    let page_size = std::env::var("DUE_SWEEP_PAGE_SIZE").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let settings = SweepSettings { page_size, ..SweepSettings::default() };
    let spent = Arc::new(Spent::default());
    let queue = Arc::new(TimedQueue(Arc::new(background_queue(&sdk, queues.queue_url.clone())), spent.clone()));
    let timed_ledger = Arc::new(TimedLedger(ledger.clone(), spent.clone()));
    let ports = Ports { ledger: timed_ledger, queue, clock: Arc::new(FixedClock::new(now())) };
    let sweep = DueSweep::new(ports, settings);
    let swept = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| tokio::spawn(consume(queues.client.clone(), queues.queue_url.clone(), swept.clone())))
        .collect();
    let reset = reset_hwm();
    let baseline = vm_hwm_kib();

    let started = Instant::now();
    let summary = sweep.run(Instant::now() + Duration::from_secs(15 * 60)).await;
    let wall = started.elapsed();
    let peak = vm_hwm_kib();
    swept.store(true, Ordering::SeqCst);
    let mut received = Vec::new();
    for consumer in consumers {
        received.extend(consumer.await.expect("consumer"));
    }
    let drained = started.elapsed();

    assert_eq!((summary.enqueued, summary.completed, summary.error.clone()), (ACTIONS, ACTIONS, None), "{summary:?}");
    let people: HashSet<&String> = received.iter().map(|(_, person)| person).collect();
    assert_eq!(people.len(), ACTIONS, "every person queued");
    // Copies moto handed to two consumers at once (its receive is not atomic) have one
    // message id; a copy queued twice has two.
    let messages: HashSet<&String> = received.iter().map(|(id, _)| id).collect();
    let (delivered_twice, queued_twice) = (received.len() - messages.len(), messages.len() - people.len());
    assert_eq!(queued(&queues).await, 0);
    assert_eq!(ledger.due_actions(now(), None, 10).await.expect("index"), Vec::<DueAction>::new());

    println!("due-sweep benchmark: {ACTIONS} due actions in moto DynamoDB, one sweep into moto SQS FIFO");
    println!("  seeding (BatchWriteItem x {SEEDERS}): {:.1} s", seeded_in.as_secs_f64());
    println!(
        "  sweep wall time:  {:.2} s ({:.0} actions/s, {} pages of {page_size})",
        wall.as_secs_f64(),
        ACTIONS as f64 / wall.as_secs_f64(),
        summary.pages
    );
    let (listing, sending) = (Spent::secs(&spent.listing_us), Spent::secs(&spent.sending_us));
    println!(
        "  of which:         {listing:.2} s listing (Query), {sending:.2} s queueing (SendMessageBatch), {:.2} s marking (UpdateItem, {} at once)",
        wall.as_secs_f64() - listing - sending,
        SweepSettings::default().mark_concurrency
    );
    println!("  summary:          {}", serde_json::to_string(&summary).unwrap_or_default());
    println!(
        "  all {ACTIONS} received by {CONSUMERS} consumers after {:.2} s (moto: {delivered_twice} delivered twice, {queued_twice} queued twice)",
        drained.as_secs_f64()
    );
    match (baseline, peak) {
        (Some(base), Some(peak)) => println!(
            "  peak RSS (VmHWM): {:.1} MiB before the sweep{}, {:.1} MiB after (+{:.1} MiB)",
            base as f64 / 1024.0,
            if reset { " (peak reset after seeding)" } else { " (includes seeding)" },
            peak as f64 / 1024.0,
            peak.saturating_sub(base) as f64 / 1024.0
        ),
        _ => println!("  peak RSS: /proc/self/status not available"),
    }
    println!("  target: under 30 s: {}", if wall < Duration::from_secs(30) { "met" } else { "MISSED" });
}
