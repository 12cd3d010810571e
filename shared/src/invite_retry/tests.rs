//! The run's decisions with in-memory adapters (the simulator-backed tests are in
//! tests/e2e/tests/invite_retry.rs).

use super::*;
use crate::event::PersonKey;
use crate::events_api::{EventUser, InMemorySignInEvents, Introspection, PageRequest, SignInAttempt, SignInPage};
use crate::ledger::{DueAction, InMemoryLedger, LedgerError};
use crate::notify::InMemoryNotifier;
use crate::scim::{CreateOutcome, ListResponse, NewUser, ScimGroup, ScimGroupId, ScimUser, ScimUserId};
use crate::secrets::InMemorySecretSource;
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc)
}

/// Users by id; records every PATCH; `on_deactivate` runs inside the deactivating call,
/// `on_get_user` inside every user read.
#[derive(Default)]
struct FakeDirectory {
    users: std::sync::Mutex<HashMap<String, ScimUser>>,
    patches: std::sync::Mutex<Vec<(String, bool)>>,
    fail_reactivation: bool,
    on_deactivate: Option<Box<dyn Fn() + Send + Sync>>,
    on_get_user: Option<Box<dyn Fn() + Send + Sync>>,
}

impl FakeDirectory {
    fn with_user(self, id: &str, active: bool) -> Self {
        self.users.lock().unwrap().insert(
            id.into(),
            ScimUser {
                id: id.into(),
                user_name: format!("{id}@example.com"),
                external_id: None,
                active,
                name: None,
                display_name: None,
                emails: vec![],
                groups: None,
            },
        );
        self
    }

    fn patches(&self) -> Vec<(String, bool)> {
        self.patches.lock().unwrap().clone()
    }
}

#[async_trait]
impl Directory for FakeDirectory {
    fn until(self: Arc<Self>, _deadline: Instant) -> Arc<dyn Directory> {
        self
    }

    async fn find_user(&self, _: &str, _: Option<&str>) -> Result<Option<ScimUser>, ScimError> {
        unreachable!("invite-retry looks users up by id only")
    }
    async fn find_user_by_user_name(&self, _: &str) -> Result<Option<ScimUser>, ScimError> {
        unreachable!("invite-retry looks users up by id only")
    }
    async fn get_user(&self, id: &ScimUserId) -> Result<Option<ScimUser>, ScimError> {
        if let Some(hook) = &self.on_get_user {
            hook();
        }
        Ok(self.users.lock().unwrap().get(id.as_str()).cloned())
    }
    async fn create_user(&self, _: &NewUser) -> Result<CreateOutcome, ScimError> {
        unreachable!("invite-retry never creates users")
    }
    async fn patch_user(&self, id: &ScimUserId, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        let active = operations[0].value.as_ref().and_then(|v| v.as_bool()).expect("active patch");
        self.patches.lock().unwrap().push((id.to_string(), active));
        if active && self.fail_reactivation {
            return Err(ScimError::Status { status: 500, scim_type: None, detail: None });
        }
        if !active && let Some(hook) = &self.on_deactivate {
            hook();
        }
        if let Some(user) = self.users.lock().unwrap().get_mut(id.as_str()) {
            user.active = active;
        }
        Ok(())
    }
    async fn delete_user(&self, _: &ScimUserId) -> Result<(), ScimError> {
        unreachable!("invite-retry never deletes users")
    }
    async fn list_users(&self, _: usize, _: usize) -> Result<ListResponse<ScimUser>, ScimError> {
        unreachable!("invite-retry looks users up by id only")
    }
    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        unreachable!()
    }
    async fn get_group(&self, _: &ScimGroupId) -> Result<Option<ScimGroup>, ScimError> {
        unreachable!()
    }
    async fn groups_with_member(&self, _: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError> {
        unreachable!()
    }
    async fn create_group(&self, _: &str) -> Result<ScimGroup, ScimError> {
        unreachable!()
    }
    async fn delete_group(&self, _: &ScimGroupId) -> Result<(), ScimError> {
        unreachable!()
    }
    async fn patch_group(&self, _: &ScimGroupId, _: Vec<PatchOperation>) -> Result<(), ScimError> {
        unreachable!()
    }
}

struct FailingEvents;

#[async_trait]
impl SignInEvents for FailingEvents {
    async fn sign_in_attempts(&self, _: &PageRequest, _: Instant) -> Result<SignInPage, EventsApiError> {
        Err(EventsApiError::GaveUp(crate::http_retry::GaveUp::RetriesExhausted { attempts: 5, last: "503".into() }))
    }
    async fn introspect(&self, _: Instant) -> Result<Introspection, EventsApiError> {
        Err(EventsApiError::Unauthorized)
    }
}

struct Fixture {
    ledger: Arc<InMemoryLedger>,
    notifier: Arc<InMemoryNotifier>,
    app: InviteRetryApp,
}

async fn fixture(
    env: &[(&'static str, &'static str)],
    secret: serde_json::Value,
    directory: Arc<FakeDirectory>,
    events: Option<Arc<dyn SignInEvents>>,
    now: DateTime<Utc>,
) -> Fixture {
    let ledger = Arc::new(InMemoryLedger::new());
    fixture_on(ledger.clone(), ledger, env, secret, directory, events, now).await
}

/// A fixture whose app uses `port` as its ledger; `ledger` is what the test inspects (the
/// same, or what `port` wraps, or one shared with another fixture).
async fn fixture_on(
    ledger: Arc<InMemoryLedger>,
    port: Arc<dyn Ledger>,
    env: &[(&'static str, &'static str)],
    secret: serde_json::Value,
    directory: Arc<FakeDirectory>,
    events: Option<Arc<dyn SignInEvents>>,
    now: DateTime<Utc>,
) -> Fixture {
    let mut pairs = vec![("WORKER_SECRET_ID", "s"), ("LEDGER_TABLE", "t")];
    pairs.extend_from_slice(env);
    let config = InviteRetryConfig::from_env(&Env::from_pairs(pairs)).unwrap();
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("s", secret.to_string());
    let notifier = Arc::new(InMemoryNotifier::default());
    let mut ports = Ports::from_secret(&config, secrets, port).await.unwrap();
    ports.directory = directory;
    ports.clock = Arc::new(move || now);
    ports.notifier = Some(notifier.clone());
    if let Some(events) = events {
        ports.sign_ins = SignIns::Fixed(events);
    }
    Fixture { ledger, notifier, app: InviteRetryApp::new(config, ports) }
}

fn bridge_only() -> serde_json::Value {
    serde_json::json!({ "bridge_url": "https://bridge.invalid/scim", "bridge_token": "t" })
}

async fn invite(
    ledger: &InMemoryLedger,
    id: &str,
    user_id: &str,
    email: &str,
    sent: DateTime<Utc>,
    reissues: u32,
) -> PersonKey {
    let person = PersonKey::new("hr", id);
    ledger
        .start_invitation_unless_pending(&Invitation {
            counts_from: None,
            person: person.clone(),
            user_id: user_id.into(),
            email: email.into(),
            invited_at: sent - chrono::Duration::days(6 * i64::from(reissues)),
            last_sent_at: sent,
            reissues,
            status: InvitationStatus::Pending,
        })
        .await
        .unwrap();
    person
}

fn success(user_id: &str, email: &str, at: DateTime<Utc>) -> SignInAttempt {
    SignInAttempt {
        uuid: format!("a-{user_id}"),
        session_uuid: "s".into(),
        timestamp: at,
        category: "success".into(),
        kind: "credentials_ok".into(),
        target_user: EventUser { uuid: user_id.into(), name: "N".into(), email: email.into() },
    }
}

/// The fixture's ledger, for a directory hook built before the fixture exists.
type LedgerSlot = Arc<std::sync::Mutex<Option<Arc<InMemoryLedger>>>>;

/// A directory hook that plays the worker applying a leaver for person `hr/{id}` at that
/// moment: it clears the pending invitation.
fn worker_clears_invitation(slot: &LedgerSlot, id: &'static str) -> Box<dyn Fn() + Send + Sync> {
    let slot = slot.clone();
    Box::new(move || {
        let ledger = slot.lock().unwrap().clone().expect("the fixture's ledger is in the slot");
        futures::executor::block_on(
            ledger.overwrite_invitation_status(&PersonKey::new("hr", id), InvitationStatus::Cleared),
        )
        .unwrap();
    })
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn a_sign_in_matched_by_email_marks_accepted_and_prevents_the_reissue() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true).with_user("U2", true));
    let events = Arc::new(InMemorySignInEvents::new());
    // 1Password reports a different id (say, re-linked) but the same address, other case.
    events.push(success("ELSEWHERE", "Ada@Example.com", t0() + chrono::Duration::days(1)));
    let f = fixture(&[], bridge_only(), directory.clone(), Some(events.clone()), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    let alan = invite(&f.ledger, "2", "U2", "alan@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.accepted, summary.reinvited, summary.checked), (1, 1, 1), "{summary:?}");
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Accepted);
    assert_eq!(f.ledger.invitation(&alan).await.unwrap().unwrap().reissues, 1);
    assert_eq!(directory.patches(), vec![("U2".to_owned(), false), ("U2".to_owned(), true)]);
    assert!(f.ledger.events_cursor().await.unwrap().is_some(), "cursor stored");
    // The first read starts a little before the oldest pending invitation.
    match &events.requests()[0] {
        PageRequest::Reset { start_time: Some(start), .. } => {
            assert!(*start < t0() && *start > t0() - chrono::Duration::hours(1))
        }
        other => panic!("expected a reset cursor, got {other:?}"),
    }
}

#[tokio::test]
async fn the_cap_escalates_once_and_names_the_person_without_their_address() {
    let now = t0() + chrono::Duration::days(30);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[("MAX_INVITE_ATTEMPTS", "2")], bridge_only(), directory.clone(), Some(events), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada.lovelace@example.com", t0(), 2).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.escalated, summary.reinvited), (1, 0), "{summary:?}");
    assert!(directory.patches().is_empty(), "no re-issue beyond the cap");
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Escalated);
    let sent = f.notifier.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("a***@example.com") && sent[0].contains("3 invitations sent"), "{}", sent[0]);
    assert!(!sent[0].contains("ada.lovelace"), "{}", sent[0]);

    let again = f.app.handle(deadline()).await;
    assert_eq!((again.checked, again.escalated), (0, 0));
    assert_eq!(f.notifier.sent().len(), 1, "escalated once");
}

#[tokio::test]
async fn a_leaver_cleared_while_escalating_stays_cleared_and_nobody_is_told() {
    let now = t0() + chrono::Duration::days(30);
    let ledger_slot = LedgerSlot::default();
    let directory = Arc::new(
        FakeDirectory {
            // The worker applies a leaver between the run's re-read and its decision.
            on_get_user: Some(worker_clears_invitation(&ledger_slot, "1")),
            ..FakeDirectory::default()
        }
        .with_user("U1", true),
    );
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[("MAX_INVITE_ATTEMPTS", "2")], bridge_only(), directory.clone(), Some(events), now).await;
    *ledger_slot.lock().unwrap() = Some(f.ledger.clone());
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 2).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.escalated, 0, "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::NoLongerPending), Some(&1), "{summary:?}");
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Cleared);
    assert!(f.notifier.sent().is_empty(), "{:?}", f.notifier.sent());
}

#[tokio::test]
async fn a_sign_in_after_the_worker_cleared_the_invitation_is_not_an_acceptance() {
    let ledger = Arc::new(InMemoryLedger::new());
    let ada = invite(&ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    invite(&ledger, "2", "U2", "alan@example.com", t0(), 0).await;
    let events = Arc::new(InMemorySignInEvents::new());
    events.push(success("U2", "alan@example.com", t0() + chrono::Duration::hours(1)));
    let mut feed = SignInFeed::new(events.clone(), ledger.clone(), 100);
    let now = t0() + chrono::Duration::days(1);

    let (accepted, _) = feed.catch_up(now, deadline()).await.unwrap();
    assert_eq!(accepted.len(), 1, "the index of pending invitations is now built");
    // Ada leaves; the feed's index still holds her as pending when her sign-in arrives.
    ledger.overwrite_invitation_status(&ada, InvitationStatus::Cleared).await.unwrap();
    events.push(success("U1", "ada@example.com", t0() + chrono::Duration::hours(2)));

    let (accepted, _) = feed.catch_up(now, deadline()).await.unwrap();
    assert!(accepted.is_empty(), "{accepted:?}");
    assert_eq!(ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Cleared);
}

#[tokio::test]
async fn unreadable_sign_ins_mean_no_reissue_and_an_error() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let f = fixture(&[], bridge_only(), directory.clone(), Some(Arc::new(FailingEvents)), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.reinvited, 0);
    assert_eq!(summary.skipped_reasons.get(&SkipReason::AcceptanceUnknown), Some(&1), "{summary:?}");
    assert!(summary.errors.iter().any(|e| e.contains("sign-ins")), "{summary:?}");
    assert!(directory.patches().is_empty());
    assert_eq!(
        f.ledger.invitation(&ada).await.unwrap().unwrap().status,
        InvitationStatus::Pending,
        "left for the next run"
    );
}

#[tokio::test]
async fn a_leaver_arriving_mid_reissue_is_not_reactivated() {
    let now = t0() + chrono::Duration::days(6);
    let ledger_slot = LedgerSlot::default();
    let directory = Arc::new(
        FakeDirectory {
            // The worker applies a leaver right now: it clears the pending invitation.
            on_deactivate: Some(worker_clears_invitation(&ledger_slot, "1")),
            ..FakeDirectory::default()
        }
        .with_user("U1", true),
    );
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[], bridge_only(), directory.clone(), Some(events), now).await;
    *ledger_slot.lock().unwrap() = Some(f.ledger.clone());
    invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.skipped_reasons.get(&SkipReason::LeftDuringReissue), Some(&1), "{summary:?}");
    assert_eq!(directory.patches(), vec![("U1".to_owned(), false)], "never reactivated");
}

#[tokio::test]
async fn a_failed_reactivation_is_an_error_not_a_reissue() {
    let now = t0() + chrono::Duration::days(6);
    let directory =
        Arc::new(FakeDirectory { fail_reactivation: true, ..FakeDirectory::default() }.with_user("U1", true));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[], bridge_only(), directory.clone(), Some(events), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.reinvited, 0);
    assert_eq!(summary.skipped_reasons.get(&SkipReason::ReactivationFailed), Some(&1), "{summary:?}");
    assert!(!summary.errors.is_empty());
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().reissues, 0, "not counted as an attempt");
}

#[tokio::test]
async fn no_events_token_reports_each_expired_invitation_once_and_touches_nobody() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true).with_user("U2", false));
    let f = fixture(&[], bridge_only(), directory.clone(), None, now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    invite(&f.ledger, "2", "U2", "alan@example.com", t0(), 0).await;
    invite(&f.ledger, "3", "U3", "gone@example.com", t0(), 0).await;
    invite(&f.ledger, "4", "U4", "fresh@example.com", now - chrono::Duration::hours(1), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.mode, "report-only");
    assert_eq!((summary.checked, summary.reported, summary.reinvited), (3, 1, 0), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::UserSuspended), Some(&1));
    assert_eq!(summary.skipped_reasons.get(&SkipReason::UserGone), Some(&1));
    assert!(directory.patches().is_empty());
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Escalated);
    let sent = f.notifier.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("no Events API token") && sent[0].contains("a***@example.com"), "{}", sent[0]);

    let again = f.app.handle(deadline()).await;
    assert_eq!(again.reported, 0, "reported once");
}

#[tokio::test]
async fn a_half_configured_events_api_fails_the_cold_start() {
    let secret =
        serde_json::json!({ "bridge_url": "https://b/scim", "bridge_token": "t", "events_api_token": "ev-secret" });
    let config =
        InviteRetryConfig::from_env(&Env::from_pairs([("WORKER_SECRET_ID", "s"), ("LEDGER_TABLE", "t")])).unwrap();
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("s", secret.to_string());
    let error = Ports::from_secret(&config, secrets, Arc::new(InMemoryLedger::new()))
        .await
        .err()
        .expect("startup error")
        .to_string();
    assert!(error.contains("events_api_url"), "{error}");
    assert!(!error.contains("ev-secret"), "{error}");
}

#[tokio::test]
async fn an_invitation_sent_before_the_start_date_is_neither_reissued_nor_escalated_before_it() {
    let start = t0() + chrono::Duration::days(10);
    for (now, expected) in [(t0() + chrono::Duration::days(9), (0, 0)), (start, (1, 0))] {
        let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
        let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
        let f = fixture(&[("MAX_INVITE_ATTEMPTS", "2")], bridge_only(), directory.clone(), Some(events), now).await;
        let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 2).await;
        let mut invitation = f.ledger.invitation(&ada).await.unwrap().unwrap();
        invitation.counts_from = Some(start);
        f.ledger.overwrite_invitation_status(&ada, InvitationStatus::Cleared).await.unwrap();
        assert!(f.ledger.start_invitation_unless_pending(&invitation).await.unwrap());

        let summary = f.app.handle(deadline()).await;
        assert_eq!((summary.escalated, summary.reinvited), expected, "at {now}: {summary:?}");
        let status = f.ledger.invitation(&ada).await.unwrap().unwrap().status;
        let want = if now < start { InvitationStatus::Pending } else { InvitationStatus::Escalated };
        assert_eq!(status, want, "at {now}");
        assert!(directory.patches().is_empty(), "never toggled");
    }
}

#[tokio::test]
async fn an_absurd_invitation_lifetime_means_nothing_expired_not_a_panic() {
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let huge = [("INVITE_TTL_HOURS", "18446744073709551615")];
    let f = fixture(&huge, bridge_only(), directory.clone(), Some(events), t0() + chrono::Duration::days(400)).await;
    invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.checked, summary.reinvited), (0, 0), "{summary:?}");
    assert!(directory.patches().is_empty());
}

/// The in-memory ledger, except that reading an invitation fails while `fail_reads` is set.
struct FlakyLedger {
    inner: Arc<InMemoryLedger>,
    fail_reads: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Ledger for FlakyLedger {
    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError> {
        self.inner.claim_account(user_id, person).await
    }
    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError> {
        self.inner.account_owner(user_id).await
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
    async fn person(&self, person: &PersonKey) -> Result<Option<crate::ledger::PersonRecord>, LedgerError> {
        self.inner.person(person).await
    }
    async fn save_person(&self, record: &crate::ledger::PersonRecord) -> Result<(), LedgerError> {
        self.inner.save_person(record).await
    }
    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError> {
        self.inner.due_actions(due_by, after, limit).await
    }
    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        self.inner.complete_due_action(action).await
    }
    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(LedgerError::Unavailable("throttled".into()));
        }
        self.inner.invitation(person).await
    }
    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError> {
        self.inner.start_invitation_unless_pending(invitation).await
    }
    async fn overwrite_invitation_status(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<(), LedgerError> {
        self.inner.overwrite_invitation_status(person, status).await
    }
    async fn settle_invitation_if_pending(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<bool, LedgerError> {
        self.inner.settle_invitation_if_pending(person, status).await
    }
    async fn record_reissue_if_unchanged(
        &self,
        person: &PersonKey,
        expected_reissues: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        self.inner.record_reissue_if_unchanged(person, expected_reissues, at).await
    }
    async fn pending_invitations(
        &self,
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Invitation>, LedgerError> {
        self.inner.pending_invitations(sent_before, limit).await
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
    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.inner.record_sign_in(user_id, at).await
    }
    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.inner.first_sign_in(user_id).await
    }
    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError> {
        self.inner.reserve_suspension(window_id, limit).await
    }
}

/// Log lines written while the guard from [`LogBuffer::capture`] lives (this thread only).
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines_containing(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().filter(|l| l.contains(needle)).count()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_suspended_user_whose_invitation_is_still_pending_is_never_toggled() {
    let now = t0() + chrono::Duration::days(6);
    // Suspended by the worker (a leaver) whose clearing of the invitation has not landed yet.
    let directory = Arc::new(FakeDirectory::default().with_user("U1", false));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[], bridge_only(), directory.clone(), Some(events), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.mode, "toggle-active");
    assert_eq!((summary.checked, summary.reinvited), (1, 0), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::UserSuspended), Some(&1), "{summary:?}");
    assert!(directory.patches().is_empty(), "never reactivated");
    let stored = f.ledger.invitation(&ada).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.reissues), (InvitationStatus::Pending, 0));
}

#[tokio::test]
async fn an_invitation_that_cannot_be_re_read_mid_toggle_leaves_the_user_deactivated() {
    let now = t0() + chrono::Duration::days(6);
    let inner = Arc::new(InMemoryLedger::new());
    let flaky = Arc::new(FlakyLedger { inner: inner.clone(), fail_reads: Default::default() });
    let trip = flaky.clone();
    let directory = Arc::new(
        FakeDirectory {
            // The ledger stops answering between the two PATCHes: a leaver might be hidden.
            on_deactivate: Some(Box::new(move || trip.fail_reads.store(true, Ordering::SeqCst))),
            ..FakeDirectory::default()
        }
        .with_user("U1", true)
        .with_user("U2", true),
    );
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let env = [("RETRY_CONCURRENCY", "1")];
    let f = fixture_on(inner.clone(), flaky, &env, bridge_only(), directory.clone(), Some(events), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!(directory.patches(), vec![("U1".to_owned(), false)], "not reactivated without the ledger's word");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::ReactivationFailed), Some(&1), "{summary:?}");
    assert!(summary.errors.iter().any(|e| e.contains("hr:1") && e.contains("not reactivated")), "{summary:?}");
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().reissues, 0, "not counted as an attempt");
}

#[tokio::test]
async fn an_events_token_of_another_account_reads_no_sign_ins_and_reissues_nothing() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true).with_user("U2", true));
    let events = Arc::new(InMemorySignInEvents::new().with_account_uuid("OTHERACCOUNT"));
    events.push(success("U1", "ada@example.com", t0() + chrono::Duration::days(1)));
    let env = [("EVENTS_API_ACCOUNT_UUID", "BRIDGEACCOUNT")];
    let f = fixture(&env, bridge_only(), directory.clone(), Some(events.clone()), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    invite(&f.ledger, "2", "U2", "alan@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.accepted, summary.reinvited, summary.escalated), (0, 0, 0), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::AcceptanceUnknown), Some(&2), "{summary:?}");
    assert!(directory.patches().is_empty());
    assert!(events.requests().is_empty(), "another account's sign-ins are not even read");
    let named = summary.errors.iter().filter(|e| e.contains("OTHERACCOUNT") && e.contains("BRIDGEACCOUNT")).count();
    assert_eq!(named, 1, "{summary:?}");
    assert_eq!(f.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Pending);
    assert_eq!(f.ledger.events_cursor().await.unwrap(), None);
}

#[tokio::test]
async fn the_expected_account_in_any_case_lets_the_run_proceed_and_an_unconfirmed_one_does_not() {
    let now = t0() + chrono::Duration::days(6);
    let env = [("EVENTS_API_ACCOUNT_UUID", "BRIDGEACCOUNT")];
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new().with_account_uuid("bridgeaccount"));
    let f = fixture(&env, bridge_only(), directory.clone(), Some(events), now).await;
    invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.reinvited, summary.errors.len()), (1, 0), "{summary:?}");

    // A token that cannot be introspected cannot be shown to be the bridge's account.
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let f = fixture(&env, bridge_only(), directory.clone(), Some(Arc::new(FailingEvents)), now).await;
    invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.reinvited, 0, "{summary:?}");
    assert!(summary.errors.iter().any(|e| e.contains("cannot confirm") && e.contains("BRIDGEACCOUNT")), "{summary:?}");
    assert!(directory.patches().is_empty());
}

#[tokio::test]
async fn without_an_expected_account_the_tokens_account_is_logged_once_per_run() {
    let logs = LogBuffer::default();
    let _guard = logs.capture();
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let events: Arc<dyn SignInEvents> =
        Arc::new(InMemorySignInEvents::new().with_account_uuid("VZSYVT2LGHTBWBQGUJAIZVRABM"));
    let f = fixture(&[], bridge_only(), directory, Some(events), now).await;
    invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.reinvited, summary.errors.len()), (1, 0), "{summary:?}");
    assert_eq!(logs.lines_containing("VZSYVT2LGHTBWBQGUJAIZVRABM"), 1);
    f.app.handle(deadline()).await;
    assert_eq!(logs.lines_containing("VZSYVT2LGHTBWBQGUJAIZVRABM"), 2, "once more for the second run");
}

#[tokio::test]
async fn a_failed_reactivation_stops_re_issuing_for_the_rest_of_the_run() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(
        FakeDirectory { fail_reactivation: true, ..FakeDirectory::default() }
            .with_user("U1", true)
            .with_user("U2", true)
            .with_user("U3", true),
    );
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[("RETRY_CONCURRENCY", "1")], bridge_only(), directory.clone(), Some(events), now).await;
    for (n, id) in ["1", "2", "3"].into_iter().enumerate() {
        let sent = t0() + chrono::Duration::minutes(n as i64);
        invite(&f.ledger, id, &format!("U{id}"), &format!("p{id}@example.com"), sent, 0).await;
    }

    let summary = f.app.handle(deadline()).await;
    assert_eq!(directory.patches(), vec![("U1".to_owned(), false), ("U1".to_owned(), true)], "only the first");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::ReactivationFailed), Some(&1), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::StoppedAfterFailure), Some(&2), "{summary:?}");
    assert_eq!(summary.reinvited, 0);
    for id in ["2", "3"] {
        let stored = f.ledger.invitation(&PersonKey::new("hr", id)).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.reissues), (InvitationStatus::Pending, 0), "hr:{id} left for the next run");
    }
    let sent = f.notifier.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("could not be reactivated") && sent[0].contains("2 expired invitations left"),
        "{}",
        sent[0]
    );
}

#[tokio::test]
async fn the_toggle_brake_bounds_re_issues_per_run_but_not_escalations() {
    let now = t0() + chrono::Duration::days(30);
    let mut directory = FakeDirectory::default();
    for n in 1..=5 {
        directory = directory.with_user(&format!("U{n}"), true);
    }
    let directory = Arc::new(directory);
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let env = [("MAX_REISSUES_PER_RUN", "2"), ("MAX_INVITE_ATTEMPTS", "3")];
    let f = fixture(&env, bridge_only(), directory.clone(), Some(events), now).await;
    for n in 1..=4 {
        let sent = t0() + chrono::Duration::minutes(n);
        invite(&f.ledger, &n.to_string(), &format!("U{n}"), &format!("p{n}@example.com"), sent, 0).await;
    }
    // Last in line and at the cap: escalated even though the brake has engaged.
    invite(&f.ledger, "5", "U5", "p5@example.com", t0() + chrono::Duration::minutes(9), 3).await;

    let summary = f.app.handle(deadline()).await;
    assert_eq!((summary.reinvited, summary.escalated), (2, 1), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::ReissueBrake), Some(&2), "{summary:?}");
    assert_eq!(directory.patches().len(), 4, "two toggles");
    assert!(summary.errors.is_empty(), "{summary:?}");
    let sent = f.notifier.sent();
    let brake = sent.iter().find(|m| m.contains("brake")).expect("the brake is announced");
    assert!(brake.contains("MAX_REISSUES_PER_RUN") && brake.contains("left 2 expired invitations"), "{brake}");

    let next = f.app.handle(deadline()).await;
    assert_eq!((next.reinvited, next.skipped), (2, 0), "the rest in the next run: {next:?}");
}

/// One run at `now` of an app on these shared adapters.
async fn run_at(
    ledger: &Arc<InMemoryLedger>,
    directory: &Arc<FakeDirectory>,
    events: &Arc<InMemorySignInEvents>,
    now: DateTime<Utc>,
) -> RunSummary {
    let events: Arc<dyn SignInEvents> = events.clone();
    let f = fixture_on(ledger.clone(), ledger.clone(), &[], bridge_only(), directory.clone(), Some(events), now).await;
    f.app.handle(deadline()).await
}

#[tokio::test]
async fn a_user_who_accepted_after_the_escalation_is_never_toggled_for_a_later_invitation() {
    let ledger = Arc::new(InMemoryLedger::new());
    let events = Arc::new(InMemorySignInEvents::new());
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let ada = invite(&ledger, "1", "U1", "ada@example.com", t0(), 3).await;
    let escalated = run_at(&ledger, &directory, &events, t0() + chrono::Duration::days(6)).await;
    assert_eq!(escalated.escalated, 1, "{escalated:?}");
    // Ada accepts once a human reached her: no pending invitation matches her sign-in.
    events.push(success("U1", "ada@example.com", t0() + chrono::Duration::days(7)));
    let summary = run_at(&ledger, &directory, &events, t0() + chrono::Duration::days(8)).await;
    assert_eq!((summary.checked, summary.accepted), (0, 0), "{summary:?}");

    // She leaves and is rehired; the worker, seeing no acceptance, starts a new invitation.
    let rehired = t0() + chrono::Duration::days(9);
    let invitation = Invitation {
        invited_at: rehired,
        last_sent_at: rehired,
        reissues: 0,
        status: InvitationStatus::Pending,
        ..ledger.invitation(&ada).await.unwrap().unwrap()
    };
    assert!(ledger.start_invitation_unless_pending(&invitation).await.unwrap());
    let summary = run_at(&ledger, &directory, &events, rehired + chrono::Duration::days(6)).await;

    assert!(directory.patches().is_empty(), "an account in use is never suspended: {:?}", directory.patches());
    assert_eq!((summary.accepted, summary.reinvited), (1, 0), "{summary:?}");
    assert_eq!(ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Accepted);
}

#[tokio::test]
async fn a_sign_in_matched_after_the_leaver_cleared_it_still_protects_that_user_later() {
    let ledger = Arc::new(InMemoryLedger::new());
    let ada = invite(&ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    invite(&ledger, "2", "U2", "alan@example.com", t0(), 0).await;
    let events = Arc::new(InMemorySignInEvents::new());
    events.push(success("U2", "alan@example.com", t0() + chrono::Duration::hours(1)));
    let mut feed = SignInFeed::new(events.clone(), ledger.clone(), 100);
    feed.catch_up(t0() + chrono::Duration::days(1), deadline()).await.unwrap();
    // Ada accepts (1Password reports her under another id) just as she leaves.
    ledger.overwrite_invitation_status(&ada, InvitationStatus::Cleared).await.unwrap();
    events.push(success("ELSEWHERE", "ada@example.com", t0() + chrono::Duration::hours(2)));
    let (accepted, _) = feed.catch_up(t0() + chrono::Duration::days(1), deadline()).await.unwrap();
    assert!(accepted.is_empty(), "{accepted:?}");
    assert!(ledger.first_sign_in(&"U1".into()).await.unwrap().is_some(), "the matched user is remembered");

    // Rehired: a new pending invitation for the same 1Password user, expired by now.
    let rehired = t0() + chrono::Duration::days(2);
    let invitation = Invitation {
        invited_at: rehired,
        last_sent_at: rehired,
        status: InvitationStatus::Pending,
        ..ledger.invitation(&ada).await.unwrap().unwrap()
    };
    assert!(ledger.start_invitation_unless_pending(&invitation).await.unwrap());
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let summary = run_at(&ledger, &directory, &events, rehired + chrono::Duration::days(6)).await;

    assert!(directory.patches().is_empty(), "{:?}", directory.patches());
    assert_eq!(summary.accepted, 1, "{summary:?}");
    assert_eq!(ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Accepted);
}

#[tokio::test]
async fn an_invitation_of_someone_the_worker_is_changing_waits_for_the_next_run() {
    let now = t0() + chrono::Duration::days(6);
    let directory = Arc::new(FakeDirectory::default().with_user("U1", true));
    let events: Arc<dyn SignInEvents> = Arc::new(InMemorySignInEvents::new());
    let f = fixture(&[], bridge_only(), directory.clone(), Some(events), now).await;
    let ada = invite(&f.ledger, "1", "U1", "ada@example.com", t0(), 0).await;
    let until = now + chrono::Duration::minutes(1);
    assert!(f.ledger.try_lease(&ada, crate::apply::LEASE_HOLDER, until, now).await.unwrap());
    let summary = f.app.handle(deadline()).await;
    assert_eq!(summary.reinvited, 0, "{summary:?}");
    assert!(directory.patches().is_empty(), "never toggled under the worker's lease");
    f.ledger.release_lease(&ada, crate::apply::LEASE_HOLDER).await.unwrap();
    assert_eq!(f.app.handle(deadline()).await.reinvited, 1);
}
