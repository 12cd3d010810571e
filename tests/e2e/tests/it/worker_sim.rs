//! The worker against the 1Password simulator over real HTTP: joiner, mover, leaver,
//! rehire, idempotency, guards, retries and batch semantics.

use async_trait::async_trait;
use e2e::worker_harness::{WorkerHarness, event};
use onepassword_sim::{FaultAction, FaultRule, InvitationKind, Lifecycle, Seed, SeedState, SeedUser};
use provisioning::EventKind::{Joiner, Leaver, Mover, Rehire};
use provisioning::apply::{Applier, Outcome, Rules};
use provisioning::enrich::InMemoryEnricher;
use provisioning::ledger::{InMemoryLedger, Ledger};
use provisioning::mapping::MappingRules;
use provisioning::scim::{
    CreateOutcome, Directory, ListResponse, NewUser, PatchOperation, ScimClient, ScimClientConfig, ScimError,
    ScimGroup, ScimGroupId, ScimUser, ScimUserId, StaticCredentials,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn user_view(h: &WorkerHarness, email: &str) -> onepassword_sim::UserView {
    h.sim.state().user_view(email).unwrap_or_else(|| panic!("{email} not in 1Password"))
}

fn groups_of(h: &WorkerHarness, email: &str) -> Vec<String> {
    let mut groups = user_view(h, email).groups;
    groups.sort();
    groups
}

fn writes(calls: &[onepassword_sim::Operation]) -> usize {
    calls.iter().filter(|c| c.method != "GET").count()
}

#[tokio::test]
async fn joiner_is_invited_once_with_the_mapped_groups() {
    let h = WorkerHarness::start(&[]).await;
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    assert!(h.deliver(std::slice::from_ref(&ada)).await.is_empty());

    let outbox = h.sim.state().outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].email, "ada.lovelace@example.com");
    assert_eq!(outbox[0].kind, InvitationKind::First);
    assert_eq!(groups_of(&h, "ada.lovelace@example.com"), vec!["Employees", "Engineering"]);
    let view = user_view(&h, "ada.lovelace@example.com");
    assert_eq!(view.external_id.as_deref(), Some("hr:1"));
    assert_eq!(view.lifecycle, Lifecycle::Invited);
    let invitation = h.ledger.invitation(&ada.person).await.unwrap().expect("invitation recorded");
    assert_eq!(invitation.user_id, view.id);

    // The same event again: still one invitation, and not a single bridge call.
    h.take_scim_calls();
    assert!(h.deliver(&[ada]).await.is_empty());
    assert_eq!(h.sim.state().outbox().len(), 1);
    let calls = h.take_scim_calls();
    assert!(calls.is_empty(), "duplicate delivery made calls: {calls:?}");
}

#[tokio::test]
async fn a_joiner_with_k_groups_costs_at_most_two_plus_k_calls() {
    let h = WorkerHarness::start(&[]).await;
    // The first joiner creates the groups and warms the group catalogue.
    h.deliver(&[event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)]).await;
    h.take_scim_calls();
    h.deliver(&[event(Joiner, "2", "alan.turing@example.com", "Engineering", 1)]).await;
    let calls = h.take_scim_calls();
    let k = 2;
    assert!(calls.len() <= 2 + k, "{} calls: {calls:?}", calls.len());
    assert_eq!(groups_of(&h, "alan.turing@example.com"), vec!["Employees", "Engineering"]);
}

#[tokio::test]
async fn mover_department_change_moves_only_managed_groups() {
    let h = WorkerHarness::start(&[]).await;
    h.deliver(&[event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)]).await;
    // A human adds her to a group no rule manages.
    let id = user_view(&h, "ada.lovelace@example.com").id;
    h.sim
        .state()
        .seed(Seed {
            users: vec![],
            groups: vec![onepassword_sim::SeedGroup {
                display_name: "Hand Picked".into(),
                members: vec![id],
                ..Default::default()
            }],
        })
        .unwrap();

    assert!(h.deliver(&[event(Mover, "1", "ada.lovelace@example.com", "Finance", 5)]).await.is_empty());
    assert_eq!(groups_of(&h, "ada.lovelace@example.com"), vec!["Employees", "Finance", "Hand Picked"]);
}

#[tokio::test]
async fn mover_email_change_applies_to_active_users_only() {
    let h = WorkerHarness::start(&[]).await;
    h.deliver(&[event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)]).await;
    h.sim.state().accept_invitation("ada.lovelace@example.com").unwrap();
    assert!(h.deliver(&[event(Mover, "1", "ada.king@example.com", "Engineering", 5)]).await.is_empty());
    assert!(h.sim.state().user_view("ada.king@example.com").is_some(), "e-mail of an active user changes");

    h.deliver(&[event(Joiner, "2", "alan.turing@example.com", "Engineering", 0)]).await;
    h.deliver(&[event(Leaver, "2", "alan.turing@example.com", "Engineering", 5)]).await;
    assert!(h.deliver(&[event(Mover, "2", "alan.t@example.com", "Engineering", 10)]).await.is_empty());
    assert!(h.sim.state().user_view("alan.turing@example.com").is_some(), "suspended user's e-mail unchanged");
    assert!(h.sim.state().violations().is_empty(), "{:?}", h.sim.state().violations());
}

#[tokio::test]
async fn leaver_is_suspended_and_still_listed_and_rehire_reactivates_without_duplicate() {
    let h = WorkerHarness::start(&[]).await;
    let ada = "ada.lovelace@example.com";
    h.deliver(&[event(Joiner, "1", ada, "Engineering", 0)]).await;
    h.sim.state().accept_invitation(ada).unwrap();
    assert!(h.deliver(&[event(Leaver, "1", ada, "Engineering", 5)]).await.is_empty());
    let view = user_view(&h, ada);
    assert!(!view.scim_active);
    assert_eq!(view.lifecycle, Lifecycle::Suspended);

    assert!(h.deliver(&[event(Rehire, "1", ada, "Finance", 10)]).await.is_empty());
    let users: Vec<_> = h.sim.state().users().into_iter().filter(|u| u.user_name == ada).collect();
    assert_eq!(users.len(), 1, "no duplicate account");
    assert_eq!(users[0].lifecycle, Lifecycle::Active);
    assert_eq!(groups_of(&h, ada), vec!["Employees", "Finance"]);
    assert_eq!(h.sim.state().outbox().len(), 1, "reactivating an accepted account sends no invitation");
}

#[tokio::test]
async fn leaver_for_unknown_person_and_stale_events_change_nothing() {
    let h = WorkerHarness::start(&[]).await;
    assert!(h.deliver(&[event(Leaver, "9", "nobody@example.com", "Engineering", 0)]).await.is_empty());
    let ada = "ada.lovelace@example.com";
    h.deliver(&[event(Joiner, "1", ada, "Engineering", 0), event(Mover, "1", ada, "Finance", 10)]).await;
    h.take_scim_calls();
    // A late event from before the move arrives: ignored.
    assert!(h.deliver(&[event(Mover, "1", ada, "Engineering", 5)]).await.is_empty());
    assert_eq!(groups_of(&h, ada), vec!["Employees", "Finance"]);
    assert_eq!(writes(&h.take_scim_calls()), 0);
}

#[tokio::test]
async fn a_rule_naming_a_protected_group_is_refused_at_start_up() {
    let rules = r#"{"default_groups":["Employees"],"rules":[{"name":"admins","when":{"department":["IT"]},"groups":["Administrators"]}]}"#;
    let env = provisioning::config::Env::from_pairs([
        ("WORKER_SECRET_ID", "s"),
        ("LEDGER_TABLE", "t"),
        ("MAPPING_RULES", rules),
    ]);
    let error = provisioning::worker::WorkerConfig::from_env(&env).unwrap_err().to_string();
    assert!(error.contains("MAPPING_RULES") && error.contains("Administrators"), "{error}");
}

/// Delegates to the real SCIM client, but lets "someone else" (Okta's own provisioning,
/// say) create the same person in 1Password between our lookup and our create, so the
/// simulator really answers 409.
struct RacingDirectory {
    inner: ScimClient,
    sim: onepassword_sim::SimState,
}

#[async_trait]
impl Directory for RacingDirectory {
    fn until(self: Arc<Self>, _deadline: std::time::Instant) -> Arc<dyn Directory> {
        self
    }
    async fn find_user(&self, e: &str, u: Option<&str>) -> Result<Option<ScimUser>, ScimError> {
        self.inner.find_user(e, u).await
    }
    async fn find_user_by_user_name(&self, u: &str) -> Result<Option<ScimUser>, ScimError> {
        self.inner.find_user_by_user_name(u).await
    }
    async fn get_user(&self, id: &ScimUserId) -> Result<Option<ScimUser>, ScimError> {
        self.inner.get_user(id).await
    }
    async fn create_user(&self, user: &NewUser) -> Result<CreateOutcome, ScimError> {
        self.sim
            .seed(Seed { users: vec![SeedUser::new(user.user_name.clone(), SeedState::Active)], groups: vec![] })
            .unwrap();
        self.inner.create_user(user).await
    }
    async fn patch_user(&self, id: &ScimUserId, ops: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.inner.patch_user(id, ops).await
    }
    async fn delete_user(&self, id: &ScimUserId) -> Result<(), ScimError> {
        self.inner.delete_user(id).await
    }
    async fn list_users(&self, start_index: usize, count: usize) -> Result<ListResponse<ScimUser>, ScimError> {
        self.inner.list_users(start_index, count).await
    }
    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        self.inner.list_groups().await
    }
    async fn get_group(&self, id: &ScimGroupId) -> Result<Option<ScimGroup>, ScimError> {
        self.inner.get_group(id).await
    }
    async fn groups_with_member(&self, user: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError> {
        self.inner.groups_with_member(user).await
    }
    async fn create_group(&self, name: &str) -> Result<ScimGroup, ScimError> {
        self.inner.create_group(name).await
    }
    async fn delete_group(&self, id: &ScimGroupId) -> Result<(), ScimError> {
        self.inner.delete_group(id).await
    }
    async fn patch_group(&self, id: &ScimGroupId, ops: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.inner.patch_group(id, ops).await
    }
}

#[tokio::test]
async fn conflict_on_create_adopts_the_existing_user() {
    let h = WorkerHarness::start(&[]).await;
    let client = ScimClient::new(
        Arc::new(StaticCredentials::new(h.sim.scim_url(), onepassword_sim::SimConfig::default().scim_token)),
        ScimClientConfig { allow_http: true, ..Default::default() },
    )
    .unwrap();
    let racing = RacingDirectory { inner: client, sim: h.sim.state() };
    let rules = Rules { mapping: MappingRules::from_json(e2e::worker_harness::RULES).unwrap(), ..Rules::default() };
    let applier = Applier::new(Arc::new(InMemoryLedger::new()), Arc::new(InMemoryEnricher::new()), None, rules);
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    let outcome = applier.process(&racing, ada, chrono::Utc::now(), None).await.unwrap();
    let Outcome::Applied { operations, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(operations[0], "adopt_existing", "{operations:?}");
    let users: Vec<_> =
        h.sim.state().users().into_iter().filter(|u| u.user_name == "ada.lovelace@example.com").collect();
    assert_eq!(users.len(), 1, "adopted, not duplicated");
    assert_eq!(groups_of(&h, "ada.lovelace@example.com"), vec!["Employees", "Engineering"]);
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_500_then_success_succeeds() {
    let h = WorkerHarness::start(&[]).await;
    h.sim
        .state()
        .add_fault(FaultRule {
            times: Some(1),
            ..FaultRule::new(Some("POST"), "*/Users", FaultAction::Status { status: 429, retry_after: Some(1) })
        })
        .unwrap();
    h.sim
        .state()
        .add_fault(FaultRule {
            times: Some(1),
            ..FaultRule::new(Some("PATCH"), "*/Groups/*", FaultAction::Status { status: 500, retry_after: None })
        })
        .unwrap();
    let started = Instant::now();
    assert!(h.deliver(&[event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)]).await.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not waited for");
    let posts: Vec<_> =
        h.take_scim_calls().into_iter().filter(|c| c.method == "POST" && c.path.ends_with("/Users")).collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[0].status, Some(429));
    assert!(matches!(posts[1].status, Some(200 | 201)), "{posts:?}");
    assert!((posts[1].at - posts[0].at).num_milliseconds() >= 1000);
    assert_eq!(h.sim.state().outbox().len(), 1);
    assert_eq!(groups_of(&h, "ada.lovelace@example.com"), vec!["Employees", "Engineering"]);
}

#[tokio::test]
async fn bridge_down_past_the_time_budget_fails_the_message_back() {
    let h = WorkerHarness::start(&[]).await;
    h.sim
        .state()
        .add_fault(FaultRule::new(None, "/scim/*", FaultAction::Status { status: 503, retry_after: None }))
        .unwrap();
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    let message = h.message(&ada);
    let started = Instant::now();
    let failed = h.deliver_messages(vec![message], Duration::from_secs(3)).await;
    assert_eq!(failed, vec!["m0".to_owned()]);
    assert!(started.elapsed() < Duration::from_secs(3), "stopped before the deadline: {:?}", started.elapsed());
    assert!(h.ledger.person(&ada.person).await.unwrap().is_none(), "nothing recorded as applied");
}

#[tokio::test]
async fn fifo_failure_fails_the_rest_of_its_group_only() {
    let h = WorkerHarness::start(&[]).await;
    let batch = vec![
        h.message(&event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)),
        e2e::worker_harness::sqs_message("bad", "hr:2", "{not json"),
        h.message(&event(Joiner, "3", "alan.turing@example.com", "Finance", 0)),
        e2e::worker_harness::sqs_message("after-bad", "hr:2", "{}"),
        h.message(&event(Mover, "1", "ada.lovelace@example.com", "Finance", 5)),
    ];
    let mut failed = h.deliver_messages(batch, Duration::from_secs(30)).await;
    failed.sort();
    assert_eq!(failed, vec!["after-bad".to_owned(), "bad".to_owned()]);
    assert_eq!(groups_of(&h, "ada.lovelace@example.com"), vec!["Employees", "Finance"]);
    assert!(h.sim.state().user_view("alan.turing@example.com").is_some());
}

#[tokio::test]
async fn mass_leaver_brake_trips_at_limit_plus_one() {
    let h = WorkerHarness::start(&[("MASS_LEAVER_LIMIT", "3")]).await;
    let joiners: Vec<_> =
        (1..=4).map(|i| event(Joiner, &i.to_string(), &format!("p.n{i}@example.com"), "Finance", 0)).collect();
    assert!(h.deliver(&joiners).await.is_empty());
    let leavers: Vec<_> =
        (1..=4).map(|i| event(Leaver, &i.to_string(), &format!("p.n{i}@example.com"), "Finance", 5)).collect();
    let failed = h.deliver(&leavers).await;
    assert_eq!(failed.len(), 1, "the 4th suspension waits: {failed:?}");
    let suspended = h.sim.state().users().into_iter().filter(|u| !u.scim_active).count();
    assert_eq!(suspended, 3);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let h = WorkerHarness::start(&[("DRY_RUN", "true")]).await;
    assert!(h.deliver(&[event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)]).await.is_empty());
    assert_eq!(writes(&h.take_scim_calls()), 0);
    assert!(h.sim.state().users().is_empty());
    assert!(h.sim.state().outbox().is_empty());
}

#[tokio::test]
async fn a_thin_status_leaver_is_confirmed_with_the_source_before_suspending() {
    let hr = Arc::new(InMemoryEnricher::new());
    let h = WorkerHarness::start_with_source(&[], hr.clone()).await;
    let joiner = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    let record = joiner.attributes.clone();
    h.deliver(std::slice::from_ref(&joiner)).await;
    let thin_leaver = |minutes: i64| {
        let mut e = event(Leaver, "1", "ada.lovelace@example.com", "Engineering", minutes);
        e.attributes = Default::default();
        e
    };

    // BambooHR said "status changed", and the record says Active: a reactivation, not a leaver.
    hr.insert(
        joiner.person.clone(),
        provisioning::Attributes { employment_status: Some("Active".into()), ..record.clone() },
    );
    assert!(h.deliver(&[thin_leaver(5)]).await.is_empty());
    assert!(user_view(&h, "ada.lovelace@example.com").scim_active, "an active employee is never suspended");

    hr.insert(
        joiner.person.clone(),
        provisioning::Attributes { employment_status: Some("Terminated".into()), ..record },
    );
    assert!(h.deliver(&[thin_leaver(10)]).await.is_empty());
    assert!(!user_view(&h, "ada.lovelace@example.com").scim_active, "a confirmed termination suspends");
}
