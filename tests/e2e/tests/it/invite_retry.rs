//! invite-retry against the 1Password simulator over real HTTP (SCIM bridge and Events API),
//! after the real worker has invited people into the same ledger. Time moves with the
//! simulator's clock, which is also invite-retry's "now".

use e2e::invite_retry_harness::{pass_ttl, patches_of, retry_app, retry_secret, run};
use e2e::worker_harness::{WorkerHarness, event};
use onepassword_sim::{FaultAction, FaultRule, InvitationKind, Lifecycle};
use provisioning::EventKind::{Joiner, Leaver};
use provisioning::invite_retry::SkipReason;
use provisioning::ledger::{InvitationStatus, Ledger};
use provisioning::notify::{InMemoryNotifier, Notifier};
use provisioning::scim::{Directory, PatchOperation, ScimClient, ScimClientConfig, StaticCredentials};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADA: &str = "ada.lovelace@example.com";
const ALAN: &str = "alan.turing@example.com";

fn mails(h: &WorkerHarness, email: &str, kind: InvitationKind) -> usize {
    h.sim.state().outbox().iter().filter(|m| m.email == email && m.kind == kind).count()
}

fn user_id(h: &WorkerHarness, email: &str) -> String {
    h.sim.state().user_view(email).expect("user in 1Password").id
}

async fn join(h: &WorkerHarness, id: &str, email: &str) -> provisioning::PersonKey {
    let joiner = event(Joiner, id, email, "Engineering", 0);
    assert!(h.deliver(std::slice::from_ref(&joiner)).await.is_empty(), "joiner applied");
    joiner.person
}

#[tokio::test]
async fn accepted_before_the_ttl_is_never_reinvited() {
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    h.sim.state().accept_invitation(ADA).unwrap();
    pass_ttl(&h);
    let app = retry_app(&h, &[], retry_secret(&h.sim, true, None), None, |_| {}).await;
    h.sim.state().clear_operations();

    let summary = run(&app).await;
    assert_eq!((summary.accepted, summary.checked, summary.reinvited), (1, 0, 0), "{summary:?}");
    assert_eq!(h.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Accepted);
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 0);
    assert_eq!(patches_of(&h.sim.state().operations(), &user_id(&h, ADA)), 0);
    assert!(h.sim.state().account_changes().is_empty());
}

#[tokio::test]
async fn an_expired_invitation_gets_exactly_one_new_invitation() {
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    let app = retry_app(&h, &[], retry_secret(&h.sim, true, None), None, |_| {}).await;

    let early = run(&app).await;
    assert_eq!((early.checked, early.reinvited), (0, 0), "not expired yet: {early:?}");
    pass_ttl(&h);
    assert_eq!(h.sim.state().user_view(ADA).unwrap().lifecycle, Lifecycle::InvitationExpired);

    let summary = run(&app).await;
    assert_eq!((summary.checked, summary.reinvited, summary.skipped), (1, 1, 0), "{summary:?}");
    assert_eq!(mails(&h, ADA, InvitationKind::First), 1);
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 1);
    let view = h.sim.state().user_view(ADA).unwrap();
    assert_eq!(view.lifecycle, Lifecycle::Invited, "a fresh, acceptable invitation");
    let recorded = h.ledger.invitation(&ada).await.unwrap().unwrap();
    assert_eq!((recorded.reissues, recorded.status), (1, InvitationStatus::Pending));
    assert_eq!(recorded.last_sent_at.timestamp(), h.sim.state().now().timestamp(), "attempt time recorded");

    // The next run, straight after: nothing more to do.
    let again = run(&app).await;
    assert_eq!((again.checked, again.reinvited), (0, 0), "{again:?}");
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 1, "no duplicate invitation");
    assert!(h.sim.state().account_changes().is_empty());
    h.sim.state().accept_invitation(ADA).expect("the re-issued invitation can be accepted");
}

#[tokio::test]
async fn never_accepted_is_reissued_up_to_the_cap_then_escalated_to_slack() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/XXXX"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&slack)
        .await;
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    let first_invited = h.ledger.invitation(&ada).await.unwrap().unwrap().invited_at;
    let webhook = format!("{}/services/T000/B000/XXXX", slack.uri());
    let app =
        retry_app(&h, &[("MAX_INVITE_ATTEMPTS", "2")], retry_secret(&h.sim, true, Some(&webhook)), None, |_| {}).await;

    for attempt in 1..=2 {
        pass_ttl(&h);
        let summary = run(&app).await;
        assert_eq!((summary.reinvited, summary.escalated), (1, 0), "attempt {attempt}: {summary:?}");
    }
    assert!(slack.received_requests().await.unwrap().is_empty(), "no Slack before the cap");
    pass_ttl(&h);
    let summary = run(&app).await;
    assert_eq!((summary.reinvited, summary.escalated), (0, 1), "{summary:?}");
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 2, "exactly the cap");
    assert_eq!(h.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Escalated);

    let requests = slack.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    let text = body["text"].as_str().expect("Slack text");
    assert!(text.contains("a***@example.com") && text.contains("hr:1"), "{text}");
    assert!(text.contains("after 2 re-issues") && text.contains("3 invitations sent"), "{text}");
    assert!(text.contains(&format!("first invited {}", first_invited.format("%Y-%m-%d"))), "{text}");
    assert!(!text.contains(ADA), "unmasked e-mail in Slack: {text}");

    pass_ttl(&h);
    let after = run(&app).await;
    assert_eq!((after.checked, after.escalated), (0, 0), "escalated invitations are left alone");
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 2);
    slack.verify().await;
}

#[tokio::test]
async fn an_accepted_user_is_never_suspended_or_reactivated_by_this_job() {
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    let alan = join(&h, "2", ALAN).await;
    let app = retry_app(&h, &[], retry_secret(&h.sim, true, None), None, |_| {}).await;
    pass_ttl(&h);
    assert_eq!(run(&app).await.reinvited, 2);
    // Ada accepts the re-issued invitation; Alan never does.
    h.sim.state().accept_invitation(ADA).unwrap();
    h.sim.state().clear_operations();
    pass_ttl(&h);

    let summary = run(&app).await;
    assert_eq!((summary.accepted, summary.reinvited), (1, 1), "{summary:?}");
    let operations = h.sim.state().operations();
    assert_eq!(patches_of(&operations, &user_id(&h, ADA)), 0, "{operations:?}");
    assert_eq!(patches_of(&operations, &user_id(&h, ALAN)), 2);
    assert!(h.sim.state().account_changes().is_empty(), "{:?}", h.sim.state().account_changes());
    assert_eq!(h.sim.state().user_view(ADA).unwrap().lifecycle, Lifecycle::Active);
    assert_eq!(h.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Accepted);
    assert_eq!(h.ledger.invitation(&alan).await.unwrap().unwrap().reissues, 2);
}

#[tokio::test]
async fn a_leaver_between_invitation_and_retry_is_not_reinvited() {
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    assert!(h.deliver(&[event(Leaver, "1", ADA, "Engineering", 5)]).await.is_empty());
    assert_eq!(h.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Cleared);
    // Alan is suspended in 1Password by someone else while the ledger still holds his
    // invitation as pending: the bridge re-check must catch it.
    let alan = join(&h, "2", ALAN).await;
    let alan_id = user_id(&h, ALAN);
    let other_client = ScimClient::new(
        Arc::new(StaticCredentials::new(h.sim.scim_url(), "sim-scim-token")),
        ScimClientConfig { allow_http: true, ..Default::default() },
    )
    .unwrap();
    other_client
        .patch_user(&alan_id.as_str().into(), vec![PatchOperation::replace("active", false.into())])
        .await
        .unwrap();
    let app = retry_app(&h, &[], retry_secret(&h.sim, true, None), None, |_| {}).await;
    pass_ttl(&h);
    h.sim.state().clear_operations();

    let summary = run(&app).await;
    assert_eq!((summary.checked, summary.reinvited), (1, 0), "{summary:?}");
    assert_eq!(summary.skipped_reasons.get(&SkipReason::UserSuspended), Some(&1), "{summary:?}");
    let operations = h.sim.state().operations();
    assert_eq!(patches_of(&operations, &user_id(&h, ADA)) + patches_of(&operations, &alan_id), 0, "{operations:?}");
    assert_eq!(h.sim.state().outbox().iter().filter(|m| m.kind == InvitationKind::Repeat).count(), 0);
    assert_eq!(h.sim.state().user_view(ADA).unwrap().lifecycle, Lifecycle::InviteSuspended);
    assert_eq!(h.sim.state().user_view(ALAN).unwrap().lifecycle, Lifecycle::InviteSuspended);
    assert_eq!(h.ledger.invitation(&alan).await.unwrap().unwrap().reissues, 0);
}

#[tokio::test]
async fn report_only_mode_reinvites_nobody() {
    let h = WorkerHarness::start(&[]).await;
    let ada = join(&h, "1", ADA).await;
    let notifier = Arc::new(InMemoryNotifier::default());
    // No Events API token in the secret.
    let app =
        retry_app(&h, &[], retry_secret(&h.sim, false, None), Some(notifier.clone() as Arc<dyn Notifier>), |_| {})
            .await;
    pass_ttl(&h);
    h.sim.state().clear_operations();

    let summary = run(&app).await;
    assert_eq!(summary.mode, "report-only");
    assert_eq!((summary.checked, summary.reported, summary.reinvited), (1, 1, 0), "{summary:?}");
    let operations = h.sim.state().operations();
    assert!(operations.iter().all(|op| op.method == "GET"), "only reads: {operations:?}");
    assert!(operations.iter().all(|op| !op.path.starts_with("/api/")), "no Events API without a token");
    assert_eq!(mails(&h, ADA, InvitationKind::Repeat), 0);
    let sent = notifier.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("a***@example.com") && sent[0].contains("no Events API token"), "{}", sent[0]);
    assert_eq!(h.ledger.invitation(&ada).await.unwrap().unwrap().status, InvitationStatus::Escalated);
    pass_ttl(&h);
    assert_eq!(run(&app).await.reported, 0, "each expired invitation is reported once");
}

#[tokio::test]
async fn report_only_strategy_with_events_skips_people_who_accepted() {
    let h = WorkerHarness::start(&[]).await;
    join(&h, "1", ADA).await;
    join(&h, "2", ALAN).await;
    h.sim.state().accept_invitation(ADA).unwrap();
    let notifier = Arc::new(InMemoryNotifier::default());
    let app = retry_app(
        &h,
        &[("REISSUE_STRATEGY", "report-only")],
        retry_secret(&h.sim, true, None),
        Some(notifier.clone() as Arc<dyn Notifier>),
        |_| {},
    )
    .await;
    pass_ttl(&h);
    let summary = run(&app).await;
    assert_eq!((summary.accepted, summary.reported, summary.reinvited), (1, 1, 0), "{summary:?}");
    let text = &notifier.sent()[0];
    assert!(text.contains("hr:2") && !text.contains("hr:1"), "only Alan is reported: {text}");
    assert!(text.contains("REISSUE_STRATEGY is report-only"), "{text}");
    assert_eq!(h.sim.state().outbox().iter().filter(|m| m.kind == InvitationKind::Repeat).count(), 0);
}

#[tokio::test]
async fn a_run_cut_short_by_its_time_budget_resumes_without_duplicates() {
    let h = WorkerHarness::start(&[]).await;
    let emails: Vec<String> = (1..=6).map(|n| format!("person.{n}@example.com")).collect();
    for (n, email) in emails.iter().enumerate() {
        join(&h, &n.to_string(), email).await;
    }
    let app = retry_app(
        &h,
        &[("RETRY_CONCURRENCY", "1"), ("TIME_BUDGET_MARGIN_SECONDS", "2")],
        retry_secret(&h.sim, true, None),
        None,
        |_| {},
    )
    .await;
    pass_ttl(&h);
    h.sim.state().add_fault(FaultRule::new(None, "/scim/*", FaultAction::Latency { ms: 100 })).unwrap();

    // Three seconds to the deadline, two of them margin: about one second of work.
    let cut = app.handle(Instant::now() + Duration::from_secs(3)).await;
    assert!(cut.stopped_early, "{cut:?}");
    assert!(cut.reinvited >= 1 && cut.reinvited < 6, "{cut:?}");
    assert!(cut.errors.is_empty(), "{cut:?}");
    h.sim.state().clear_faults();

    let rest = run(&app).await;
    assert!(!rest.stopped_early, "{rest:?}");
    assert_eq!(cut.reinvited + rest.reinvited, 6, "cut {cut:?} then {rest:?}");
    for email in &emails {
        assert_eq!(mails(&h, email, InvitationKind::Repeat), 1, "{email}");
        assert_eq!(h.sim.state().user_view(email).unwrap().lifecycle, Lifecycle::Invited, "{email} left active");
    }
    assert_eq!(run(&app).await.reinvited, 0);
}

#[tokio::test]
async fn sign_ins_are_read_by_cursor_across_several_pages() {
    let h = WorkerHarness::start(&[]).await;
    let emails: Vec<String> = (1..=5).map(|n| format!("person.{n}@example.com")).collect();
    for (n, email) in emails.iter().enumerate() {
        join(&h, &n.to_string(), email).await;
    }
    for email in &emails {
        h.sim.state().record_failed_sign_in(email).unwrap();
        h.sim.state().accept_invitation(email).unwrap();
    }
    // Ten attempts, five successful, two per page: five pages.
    let app = retry_app(&h, &[], retry_secret(&h.sim, true, None), None, |config| config.events_page_limit = 2).await;
    h.sim.state().clear_operations();
    let summary = run(&app).await;
    assert_eq!(summary.accepted, 5, "{summary:?}");
    let pages = |h: &WorkerHarness| {
        h.sim
            .state()
            .operations()
            .iter()
            .filter(|op| op.method == "POST" && op.path == "/api/v2/signinattempts")
            .count()
    };
    assert_eq!(pages(&h), 5);
    assert!(h.ledger.events_cursor().await.unwrap().is_some());

    // The next run continues from the stored cursor: only what is new.
    let late = join(&h, "9", "late.comer@example.com").await;
    h.sim.state().accept_invitation("late.comer@example.com").unwrap();
    h.sim.state().clear_operations();
    let next = run(&app).await;
    assert_eq!(next.accepted, 1, "{next:?}");
    assert_eq!(pages(&h), 1);
    assert_eq!(h.ledger.invitation(&late).await.unwrap().unwrap().status, InvitationStatus::Accepted);
}
