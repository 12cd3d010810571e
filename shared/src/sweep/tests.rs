use super::*;
use crate::clock::FixedClock;
use crate::event::{PersonKey, SourceKind};
use crate::ledger::{Due, InMemoryLedger, Invitation, InvitationStatus, PersonRecord};
use crate::queue::{InMemoryEventQueue, QueuedEvent, deduplication_id};
use crate::scim::ScimUserId;
use async_trait::async_trait;
use chrono::{Duration as ChronoDuration, TimeZone};
use std::sync::Mutex;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 5, 0).single().expect("valid date")
}

fn person(id: &str) -> PersonKey {
    PersonKey::new("bamboohr-main", id)
}

fn record(id: &str, due_at: DateTime<Utc>) -> PersonRecord {
    let mut record = PersonRecord::new(person(id), SourceKind::Bamboohr, now() - ChronoDuration::days(3));
    record.due = Some(Due { at: due_at, intent: format!("suspend {id}") });
    record
}

fn action(id: &str, due_at: DateTime<Utc>) -> DueAction {
    let record = record(id, due_at);
    DueAction { person: record.person, source_kind: record.source_kind, due: record.due.expect("due set") }
}

/// An in-memory ledger with hooks: counts page sizes asked for, runs a callback after
/// listing (the worker moving a date meanwhile), and can fail marks.
#[derive(Default)]
struct HookedLedger {
    inner: InMemoryLedger,
    limits: Mutex<Vec<usize>>,
    after_listing: Mutex<Option<PersonRecord>>,
    fail_marks: bool,
}

#[async_trait]
impl Ledger for HookedLedger {
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
        self.limits.lock().unwrap().push(limit);
        let listed = self.inner.due_actions(due_by, after, limit).await?;
        let moved = self.after_listing.lock().unwrap().take();
        if let Some(moved) = moved {
            self.inner.save_person(&moved).await?;
        }
        Ok(listed)
    }
    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        if self.fail_marks {
            return Err(LedgerError::Unavailable("marks switched off".into()));
        }
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

struct Rig {
    ledger: Arc<HookedLedger>,
    queue: Arc<InMemoryEventQueue>,
    clock: Arc<FixedClock>,
    sweep: DueSweep,
}

impl Rig {
    fn new(page_size: usize) -> Self {
        Self::with_ledger(HookedLedger::default(), page_size)
    }

    fn with_ledger(ledger: HookedLedger, page_size: usize) -> Self {
        let ledger = Arc::new(ledger);
        let queue = Arc::new(InMemoryEventQueue::new());
        let clock = Arc::new(FixedClock::new(now()));
        let ports = Ports { ledger: ledger.clone(), queue: queue.clone(), clock: clock.clone() };
        let sweep = DueSweep::new(ports, SweepSettings { page_size, ..SweepSettings::default() });
        Rig { ledger, queue, clock, sweep }
    }

    async fn seed(&self, people: &[(&str, DateTime<Utc>)]) {
        for (id, due_at) in people {
            self.ledger.save_person(&record(id, *due_at)).await.unwrap();
        }
    }

    async fn run(&self) -> SweepSummary {
        self.sweep.run(Instant::now() + Duration::from_secs(60)).await
    }

    async fn due_at(&self, id: &str) -> Option<DateTime<Utc>> {
        self.ledger.person(&person(id)).await.unwrap().and_then(|r| r.due).map(|d| d.at)
    }
}

fn ids(messages: &[QueuedEvent]) -> Vec<String> {
    messages.iter().map(|m| m.event.person.id.clone()).collect()
}

#[tokio::test]
async fn only_what_is_due_by_now_is_queued_as_converge_events_and_marked() {
    let rig = Rig::new(100);
    let later = now() + ChronoDuration::minutes(1);
    rig.seed(&[("late", now() - ChronoDuration::hours(1)), ("exact", now()), ("ahead", later)]).await;

    let summary = rig.run().await;
    assert_eq!((summary.enqueued, summary.completed, summary.moved_meanwhile), (2, 2, 0), "{summary:?}");
    assert_eq!((summary.due_by, summary.error.as_deref(), summary.stopped_early), (now(), None, false));

    let messages = rig.queue.drain();
    assert_eq!(ids(&messages), ["late", "exact"]);
    let exact = &messages[1];
    assert_eq!(exact.event, converge_event(&action("exact", now()), now()));
    assert_eq!(exact.event.kind, EventKind::Converge);
    assert_eq!((exact.event.effective_at, exact.event.received_at), (now(), now()));
    assert_eq!(exact.event.source_event_id, "due:2026-03-02T00:05:00Z#exact");
    assert_eq!(exact.event.attributes, Attributes::default());
    assert_eq!(exact.group_id, "bamboohr-main:exact");

    assert_eq!((rig.due_at("late").await, rig.due_at("exact").await), (None, None));
    assert_eq!(rig.due_at("ahead").await, Some(later), "nothing fires early");
}

#[tokio::test]
async fn two_sweeps_queue_each_action_once_and_a_later_one_when_it_comes_due() {
    let rig = Rig::new(2);
    let later = now() + ChronoDuration::hours(2);
    rig.seed(&[("a", now()), ("b", now()), ("c", now()), ("d", later)]).await;

    assert_eq!(rig.run().await.enqueued, 3);
    let second = rig.run().await;
    assert_eq!((second.enqueued, second.pages), (0, 0), "{second:?}");
    assert_eq!(ids(&rig.queue.drain()), ["a", "b", "c"]);

    rig.clock.set(later);
    assert_eq!(rig.run().await.enqueued, 1);
    assert_eq!(ids(&rig.queue.drain()), ["d"]);
}

#[tokio::test]
async fn people_due_at_the_same_instant_get_distinct_deduplication_ids() {
    let rig = Rig::new(100);
    rig.seed(&[("1", now()), ("2", now())]).await;
    rig.run().await;
    let messages = rig.queue.drain();
    assert_eq!(ids(&messages), ["1", "2"]);
    assert_ne!(messages[0].deduplication_id, messages[1].deduplication_id);
    let event = &messages[0].event;
    assert_eq!(messages[0].deduplication_id, deduplication_id("bamboohr-main", &event.source_event_id));
}

#[tokio::test]
async fn a_crash_between_enqueue_and_mark_queues_nothing_twice() {
    let rig = Rig::new(100);
    rig.seed(&[("a", now()), ("b", now() - ChronoDuration::minutes(5))]).await;
    // What a sweep that died after sending had done: events queued, nothing marked.
    let page = rig.ledger.due_actions(now(), None, 100).await.unwrap();
    let events: Vec<LifecycleEvent> = page.iter().map(|a| converge_event(a, now())).collect();
    rig.queue.send(&events).await.unwrap();

    // The next sweep, a minute later, sends the same ids again; the queue drops them.
    rig.clock.set(now() + ChronoDuration::minutes(1));
    let summary = rig.run().await;
    assert_eq!((summary.enqueued, summary.completed), (2, 2), "{summary:?}");
    assert_eq!(ids(&rig.queue.drain()), ["b", "a"]);
    assert_eq!((rig.due_at("a").await, rig.due_at("b").await), (None, None));
}

#[tokio::test]
async fn an_action_the_worker_moves_meanwhile_is_kept_for_its_new_time() {
    let moved_to = now() + ChronoDuration::days(7);
    let ledger = HookedLedger::default();
    // HR moves b's termination date after the sweep listed b: the worker saves the new date.
    *ledger.after_listing.lock().unwrap() = Some(record("b", moved_to));
    let rig = Rig::with_ledger(ledger, 100);
    rig.seed(&[("a", now()), ("b", now())]).await;

    let summary = rig.run().await;
    assert_eq!((summary.enqueued, summary.completed, summary.moved_meanwhile), (2, 1, 1), "{summary:?}");
    assert_eq!(summary.error, None, "a moved action is not an error");
    assert_eq!(rig.due_at("b").await, Some(moved_to), "the newer date survives");
    rig.queue.drain();

    rig.clock.set(moved_to);
    let summary = rig.run().await;
    assert_eq!(summary.enqueued, 1);
    let messages = rig.queue.drain();
    assert_eq!(messages[0].event, converge_event(&action("b", moved_to), moved_to));
}

#[tokio::test]
async fn pages_are_bounded_by_the_page_size() {
    let rig = Rig::new(3);
    let people: Vec<(String, DateTime<Utc>)> =
        (0..10).map(|n| (format!("p{n:02}"), now() - ChronoDuration::minutes(n))).collect();
    let borrowed: Vec<(&str, DateTime<Utc>)> = people.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    rig.seed(&borrowed).await;

    let summary = rig.run().await;
    assert_eq!((summary.pages, summary.enqueued, summary.completed), (4, 10, 10), "{summary:?}");
    assert!(rig.ledger.limits.lock().unwrap().iter().all(|&limit| limit == 3));
    let queued = ids(&rig.queue.drain());
    let expected: Vec<String> = (0..10).rev().map(|n| format!("p{n:02}")).collect();
    assert_eq!(queued, expected, "earliest first");
}

#[tokio::test]
async fn a_failed_send_marks_nothing_and_the_next_sweep_catches_up() {
    let rig = Rig::new(100);
    rig.seed(&[("a", now()), ("b", now())]).await;
    rig.queue.set_available(false);
    let summary = rig.run().await;
    assert_eq!((summary.enqueued, summary.completed), (0, 0));
    assert!(summary.error.as_deref().is_some_and(|e| e.starts_with("queueing converge events")), "{summary:?}");
    assert_eq!(rig.due_at("a").await, Some(now()), "nothing marked");

    rig.queue.set_available(true);
    let summary = rig.run().await;
    assert_eq!((summary.enqueued, summary.completed, summary.error), (2, 2, None));
}

#[tokio::test]
async fn a_failed_mark_stops_the_run_with_an_error() {
    let rig = Rig::with_ledger(HookedLedger { fail_marks: true, ..HookedLedger::default() }, 1);
    rig.seed(&[("a", now()), ("b", now())]).await;
    let summary = rig.run().await;
    assert_eq!((summary.pages, summary.enqueued, summary.completed), (1, 1, 0), "{summary:?}");
    assert!(summary.error.as_deref().is_some_and(|e| e.contains("marks switched off")), "{summary:?}");
    assert_eq!(rig.due_at("a").await, Some(now()), "swept again next run");
}

#[tokio::test]
async fn no_page_is_started_within_the_time_margin() {
    let rig = Rig::new(100);
    rig.seed(&[("a", now())]).await;
    let summary = rig.sweep.run(Instant::now() + Duration::from_secs(5)).await;
    assert!(summary.stopped_early, "{summary:?}");
    assert_eq!((summary.pages, summary.enqueued, summary.error), (0, 0, None));
    assert!(rig.queue.is_empty());
    assert_eq!(rig.due_at("a").await, Some(now()));
}

#[tokio::test]
async fn the_app_runs_the_sweep_and_fails_the_invocation_on_errors() {
    let rig = Rig::new(100);
    rig.seed(&[("a", now())]).await;
    let Rig { ledger, queue, clock, .. } = rig;
    let ports = Ports { ledger: ledger.clone(), queue: queue.clone(), clock };
    let app = ReconcileApp::new(DueSweep::new(ports, SweepSettings::default()));
    let deadline = Instant::now() + Duration::from_secs(60);

    let unknown = app.handle(&serde_json::json!({"task": "drift"}), deadline).await.unwrap_err();
    assert!(matches!(unknown, ReconcileError::Task(TaskError::Unknown(_))), "{unknown}");
    assert!(queue.is_empty(), "an unknown task does nothing");

    queue.set_available(false);
    let failed = app.handle(&serde_json::json!({"task": "sweep_due_actions"}), deadline).await.unwrap_err();
    assert!(failed.to_string().starts_with("due sweep failed after queueing 0 event(s)"), "{failed}");

    queue.set_available(true);
    let summary = app.handle(&serde_json::json!({}), deadline).await.unwrap();
    assert_eq!(summary.enqueued, 1);
}
