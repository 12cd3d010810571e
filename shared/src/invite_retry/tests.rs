//! The run's decisions with in-memory adapters (the simulator-backed tests are in
//! tests/e2e/tests/invite_retry.rs).

use super::*;
use crate::event::PersonKey;
use crate::events_api::{EventUser, InMemorySignInEvents, Introspection, PageRequest, SignInAttempt, SignInPage};
use crate::ledger::InMemoryLedger;
use crate::notify::InMemoryNotifier;
use crate::scim::{CreateOutcome, NewUser, ScimGroup, ScimGroupId, ScimUser, ScimUserId};
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
                groups: vec![],
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
    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        unreachable!()
    }
    async fn create_group(&self, _: &str) -> Result<ScimGroup, ScimError> {
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
    let mut pairs = vec![("WORKER_SECRET_ID", "s"), ("LEDGER_TABLE", "t")];
    pairs.extend_from_slice(env);
    let config = InviteRetryConfig::from_env(&Env::from_pairs(pairs)).unwrap();
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("s", secret.to_string());
    let ledger = Arc::new(InMemoryLedger::new());
    let notifier = Arc::new(InMemoryNotifier::default());
    let mut ports = Ports::from_secret(&config, secrets, ledger.clone()).await.unwrap();
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
