//! The applier against the in-memory twin of 1Password, the in-memory ledger, source API and
//! notifier: what it leaves behind in each of them when the bridge races, conflicts or goes
//! stale under it. (The same flows over HTTP against the simulator: tests/e2e worker_sim.)

use super::*;
use crate::enrich::InMemoryEnricher;
use crate::event::{Attributes, PersonKey, SourceKind};
use crate::ledger::InMemoryLedger;
use crate::notify::InMemoryNotifier;
use crate::scim::{
    DirectoryOp, DuplicateGroups, InMemoryDirectory, ScimEmail, ScimGroup, ScimName, ScimUserId, TwinBehaviour,
};
use chrono::TimeZone;

/// Everyone is in Employees; Engineering and Finance follow the department.
const RULES: &str = r#"{"default_groups":["Employees"],"rules":[
    {"name":"engineering","when":{"department":["Engineering"]},"groups":["Engineering"]},
    {"name":"finance","when":{"department":["Finance"]},"groups":["Finance"]}]}"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("valid time")
}

/// When the fixtures converge: a day after the events, so every effective time has passed.
fn now() -> DateTime<Utc> {
    t0() + chrono::Duration::days(1)
}

fn person(id: &str) -> PersonKey {
    PersonKey::new("hr", id)
}

/// "ada.lovelace@…" → Ada / Lovelace.
fn names_of(email: &str) -> (String, String) {
    let local = email.split('@').next().unwrap_or_default();
    let (given, family) = local.split_once('.').unwrap_or((local, "Doe"));
    let capitalise = |s: &str| s[..1].to_uppercase() + &s[1..];
    (capitalise(given), capitalise(family))
}

/// A complete event (no source API read needed) for person `hr:{id}`.
fn event(kind: EventKind, id: &str, email: &str, department: &str, minutes: i64) -> LifecycleEvent {
    let (given, family) = names_of(email);
    LifecycleEvent {
        version: 1,
        kind,
        person: person(id),
        source_kind: SourceKind::Generic,
        source_event_id: format!("{kind}-{id}-{minutes}"),
        effective_at: t0() + chrono::Duration::minutes(minutes),
        received_at: t0() + chrono::Duration::minutes(minutes),
        attributes: Attributes {
            work_email: Some(email.to_owned()),
            given_name: Some(given),
            family_name: Some(family),
            department: Some(department.to_owned()),
            ..Default::default()
        },
        immediate: false,
        requeued: 0,
    }
}

/// A 1Password user as someone else made it (an admin, another provisioning).
fn existing_user(email: &str, external_id: Option<&str>, active: bool) -> ScimUser {
    let (given, family) = names_of(email);
    ScimUser {
        id: ScimUserId::new(""),
        user_name: email.to_owned(),
        external_id: external_id.map(str::to_owned),
        active,
        name: Some(ScimName {
            given_name: Some(given.clone()),
            family_name: Some(family.clone()),
            formatted: Some(format!("{given} {family}")),
        }),
        display_name: Some(format!("{given} {family}")),
        emails: vec![ScimEmail { value: email.to_owned(), primary: true }],
        groups: None,
    }
}

struct Fixture {
    directory: InMemoryDirectory,
    ledger: Arc<InMemoryLedger>,
    notifier: Arc<InMemoryNotifier>,
    applier: Applier,
}

impl Fixture {
    fn new(brake: Brake) -> Self {
        Self::on(InMemoryDirectory::new(), brake)
    }

    fn on(directory: InMemoryDirectory, brake: Brake) -> Self {
        let ledger = Arc::new(InMemoryLedger::new());
        let notifier = Arc::new(InMemoryNotifier::default());
        let applier = applier(&ledger, &notifier, brake, false);
        Fixture { directory, ledger, notifier, applier }
    }

    async fn process(&self, event: LifecycleEvent) -> Result<Outcome, ApplyError> {
        self.applier.process(&self.directory, event, now(), None).await
    }

    /// Users with this userName (case-insensitively).
    fn users_named(&self, email: &str) -> Vec<ScimUser> {
        self.directory.users().into_iter().filter(|u| u.user_name.eq_ignore_ascii_case(email)).collect()
    }

    fn user(&self, email: &str) -> ScimUser {
        let mut users = self.users_named(email);
        assert_eq!(users.len(), 1, "exactly one user {email}: {users:?}");
        users.remove(0)
    }

    /// The names of the groups whose members include the user, sorted.
    fn groups_of(&self, user_id: &ScimUserId) -> Vec<String> {
        let mut names: Vec<String> = self
            .directory
            .groups()
            .into_iter()
            .filter(|g| g.has_member(user_id) == Some(true))
            .map(|g| g.display_name)
            .collect();
        names.sort();
        names
    }

    fn calls_of(&self, op: DirectoryOp) -> Vec<String> {
        self.directory.calls().into_iter().filter(|c| c.op == op).map(|c| c.target).collect()
    }

    async fn user_id_in_ledger(&self, id: &str) -> Option<ScimUserId> {
        self.ledger.person(&person(id)).await.unwrap().and_then(|r| r.user_id)
    }
}

fn applier(ledger: &Arc<InMemoryLedger>, notifier: &Arc<InMemoryNotifier>, brake: Brake, dry_run: bool) -> Applier {
    let rules = Rules { mapping: MappingRules::from_json(RULES).unwrap(), brake, dry_run, ..Rules::default() };
    Applier::new(ledger.clone(), Arc::new(InMemoryEnricher::new()), Some(notifier.clone() as Arc<dyn Notifier>), rules)
}

fn applied(outcome: Result<Outcome, ApplyError>) -> Vec<&'static str> {
    match outcome {
        Ok(Outcome::Applied { operations, .. }) => operations,
        other => panic!("expected Applied, got {other:?}"),
    }
}

const NEW_JOINER_OPS: [&str; 5] = ["create_user", "create_group", "add_to_group", "create_group", "add_to_group"];

#[tokio::test]
async fn a_joiner_adopts_the_account_that_has_their_email_instead_of_duplicating_it() {
    enum Appears {
        /// There before the event: the lookup by userName finds it.
        Before,
        /// Made a moment before our create (Okta's own provisioning, say): the create answers
        /// 409 and the applier adopts it.
        JustBeforeCreate,
    }
    let cases = [
        (
            "existing account",
            Appears::Before,
            true,
            vec!["create_group", "add_to_group", "create_group", "add_to_group"],
        ),
        (
            "account made just before our create",
            Appears::JustBeforeCreate,
            true,
            vec!["adopt_existing", "create_group", "add_to_group", "create_group", "add_to_group"],
        ),
    ];
    for (name, appears, active, expected) in cases {
        let f = Fixture::new(Brake::default());
        let email = "ada.lovelace@example.com";
        let seeded = Arc::new(std::sync::Mutex::new(None));
        match appears {
            Appears::Before => {
                *seeded.lock().unwrap() = Some(f.directory.insert_user(existing_user(email, None, active)))
            }
            Appears::JustBeforeCreate => {
                let slot = seeded.clone();
                f.directory.before_next(DirectoryOp::CreateUser, move |d, _| {
                    // Another casing of the same address: still the same account.
                    *slot.lock().unwrap() =
                        Some(d.insert_user(existing_user("Ada.Lovelace@Example.com", None, active)));
                });
            }
        }

        let operations = applied(f.process(event(EventKind::Joiner, "1", email, "Engineering", 0)).await);
        assert_eq!(operations, expected, "{name}");

        let existing = seeded.lock().unwrap().clone().expect("the account was made");
        let ada = f.user(email);
        assert_eq!(ada.id, existing.id, "{name}: adopted, not duplicated");
        assert!(ada.active, "{name}: active");
        assert_eq!(f.groups_of(&ada.id), vec!["Employees", "Engineering"], "{name}");
        assert_eq!(f.user_id_in_ledger("1").await, Some(existing.id.clone()), "{name}: ledger");
        assert_eq!(f.ledger.invitation(&person("1")).await.unwrap(), None, "{name}: we invited nobody");
        let creates = f.calls_of(DirectoryOp::CreateUser).len();
        assert_eq!(creates, matches!(appears, Appears::JustBeforeCreate) as usize, "{name}: creates");
    }
}

#[tokio::test]
async fn a_group_created_by_another_invocation_just_before_ours_is_used() {
    for (name, theirs) in [("same name", "Employees"), ("other case", "EMPLOYEES")] {
        let f = Fixture::new(Brake::default());
        let bob = f.directory.insert_user(existing_user("bob.babbage@example.com", Some("hr:2"), true));
        let their_group = Arc::new(std::sync::Mutex::new(None));
        let slot = their_group.clone();
        let bob_id = bob.id.clone();
        f.directory.before_next(DirectoryOp::CreateGroup, move |d, call| {
            assert_eq!(call.target, "Employees", "the first group created");
            *slot.lock().unwrap() = Some(d.insert_group(theirs, &[bob_id.as_str()]));
        });

        let operations =
            applied(f.process(event(EventKind::Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)).await);
        assert_eq!(operations, NEW_JOINER_OPS, "{name}");

        let theirs = their_group.lock().unwrap().clone().expect("the race happened");
        let ada = f.user("ada.lovelace@example.com");
        let employees: Vec<ScimGroup> =
            f.directory.groups().into_iter().filter(|g| g.display_name.eq_ignore_ascii_case("employees")).collect();
        assert_eq!(employees.len(), 1, "{name}: one Employees group: {employees:?}");
        assert_eq!(employees[0].id, theirs.id, "{name}: theirs is used");
        let members: Vec<&str> = employees[0].members.iter().flatten().map(|m| m.value.as_str()).collect();
        assert_eq!(members, vec![bob.id.as_str(), ada.id.as_str()], "{name}: both members");
        let mut expected = vec!["Engineering".to_owned(), theirs.display_name.clone()];
        expected.sort();
        assert_eq!(f.groups_of(&ada.id), expected, "{name}");
        // Every missing managed group at once, theirs included (409): the catalogue, the
        // listing under the creation lease, and the one after the creates.
        assert_eq!(f.calls_of(DirectoryOp::CreateGroup), vec!["Employees", "Engineering", "Finance"], "{name}");
        assert_eq!(f.calls_of(DirectoryOp::ListGroups).len(), 3, "{name}");
        assert_eq!(f.user_id_in_ledger("1").await, Some(ada.id.clone()), "{name}: ledger");
        let invitation = f.ledger.invitation(&person("1")).await.unwrap().expect("invitation tracked");
        assert_eq!((invitation.user_id, invitation.status), (ada.id, InvitationStatus::Pending), "{name}");
    }
}

/// The catalogue of groups is cached for new joiners. A group deleted by hand leaves a stale
/// id there: the next new joiner's event fails on it, and its retry (the person now exists,
/// so the applier reads the groups fresh) re-creates the group and succeeds. The catalogue is
/// then right again for everyone after.
#[tokio::test]
async fn a_stale_group_catalogue_fails_one_attempt_and_the_retry_repairs_it() {
    let f = Fixture::new(Brake::default());
    assert_eq!(
        applied(f.process(event(EventKind::Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)).await),
        NEW_JOINER_OPS
    );
    let engineering = f.directory.groups().into_iter().find(|g| g.display_name == "Engineering").unwrap();
    f.directory.remove_group(&engineering.id).expect("deleted by hand");
    f.directory.clear_calls();

    let bob_joins = event(EventKind::Joiner, "2", "bob.babbage@example.com", "Engineering", 1);
    let error = f.process(bob_joins.clone()).await.expect_err("the cached group is gone");
    assert!(
        matches!(&error, ApplyError::Scim(ScimError::Status { status: 404, .. })),
        "a 404 from the bridge: {error:?}"
    );
    assert_eq!(error.label(), "scim_error");
    assert!(error.to_string().contains(engineering.id.as_str()), "the error names the missing group: {error}");
    assert!(f.calls_of(DirectoryOp::ListGroups).is_empty(), "the cached catalogue was used");
    assert_eq!(
        f.calls_of(DirectoryOp::PatchGroup).last(),
        Some(&engineering.id.to_string()),
        "the stale id was patched"
    );
    let bob = f.user("bob.babbage@example.com");
    assert_eq!(f.groups_of(&bob.id), vec!["Employees"], "half applied: invited, in Employees only");
    assert_eq!(f.ledger.person(&person("2")).await.unwrap(), None, "not recorded: the message is retried");

    // The redelivery.
    f.directory.clear_calls();
    assert_eq!(applied(f.process(bob_joins).await), vec!["create_group", "add_to_group"]);
    // Read fresh (Engineering is missing), listed under the creation lease, and after.
    assert_eq!(f.calls_of(DirectoryOp::ListGroups).len(), 3, "read fresh");
    let recreated = f.directory.groups().into_iter().find(|g| g.display_name == "Engineering").expect("re-created");
    assert_ne!(recreated.id, engineering.id);
    assert_eq!(f.groups_of(&bob.id), vec!["Employees", "Engineering"]);
    assert_eq!(f.user("bob.babbage@example.com").id, bob.id, "no second invitation");
    assert_eq!(f.user_id_in_ledger("2").await, Some(bob.id));

    // The next new joiner uses the (repaired) cached catalogue and succeeds at once.
    f.directory.clear_calls();
    let carol_joins = event(EventKind::Joiner, "3", "carol.shaw@example.com", "Engineering", 2);
    assert_eq!(applied(f.process(carol_joins).await), vec!["create_user", "add_to_group", "add_to_group"]);
    assert!(f.calls_of(DirectoryOp::ListGroups).is_empty(), "cached");
    let carol = f.user("carol.shaw@example.com");
    assert_eq!(f.groups_of(&carol.id), vec!["Employees", "Engineering"]);
}

/// When an operation after `create_user` fails, the user has been invited already: the
/// retry finds them existing, so the invitation must have been tracked when it was sent, or
/// invite-retry would never re-issue it.
#[tokio::test]
async fn an_invitation_sent_by_a_failed_attempt_is_still_tracked_after_the_retry() {
    let f = Fixture::new(Brake::default());
    f.directory.fail_next(
        DirectoryOp::PatchGroup,
        ScimError::Status { status: 400, scim_type: None, detail: Some("refused once".into()) },
    );
    let ada_joins = event(EventKind::Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    f.process(ada_joins.clone()).await.expect_err("the first group add fails");
    applied(f.process(ada_joins).await);
    let ada = f.user("ada.lovelace@example.com");
    let invitation = f.ledger.invitation(&person("1")).await.unwrap();
    assert_eq!(invitation.map(|i| (i.user_id, i.status)), Some((ada.id, InvitationStatus::Pending)));
}

#[tokio::test]
async fn the_mass_leaver_brake_stops_the_suspension_after_the_limit() {
    for limit in [1u32, 3] {
        let f = Fixture::new(Brake { limit, window: Duration::from_secs(3600) });
        let people: Vec<(String, ScimUserId)> = (1..=limit + 1)
            .map(|i| {
                let email = format!("leaver.{i}@example.com");
                let user = f.directory.insert_user(existing_user(&email, Some(&format!("hr:{i}")), true));
                (email, user.id)
            })
            .collect();
        let leaver =
            |i: u32| event(EventKind::Leaver, &i.to_string(), &format!("leaver.{i}@example.com"), "Finance", 10);

        for i in 1..=limit {
            assert_eq!(applied(f.process(leaver(i)).await), vec!["suspend"], "limit {limit}: leaver {i}");
        }
        let over = f.process(leaver(limit + 1)).await;
        assert!(matches!(over, Err(ApplyError::BrakeEngaged { limit: l }) if l == limit), "limit {limit}: {over:?}");

        for (i, (email, id)) in people.iter().enumerate() {
            let suspended = i < limit as usize;
            assert_eq!(f.user(email).active, !suspended, "limit {limit}: {email}");
            assert_eq!(f.user_id_in_ledger(&(i + 1).to_string()).await, suspended.then(|| id.clone()), "limit {limit}");
        }
        let (_, last_id) = people.last().unwrap();
        assert!(
            !f.calls_of(DirectoryOp::PatchUser).contains(&last_id.to_string()),
            "limit {limit}: the last one was not touched"
        );
        let sent = f.notifier.sent();
        assert_eq!(sent.len(), 1, "limit {limit}: {sent:?}");
        assert!(sent[0].contains("mass-leaver brake engaged"), "{}", sent[0]);

        // The next window lets the waiting suspension through.
        let later = f.applier.process(&f.directory, leaver(limit + 1), now() + chrono::Duration::hours(1), None).await;
        assert_eq!(applied(later), vec!["suspend"], "limit {limit}: next window");
        assert!(!f.user(&people.last().unwrap().0).active);
        assert_eq!(f.notifier.sent().len(), 1, "limit {limit}: no second message");
    }
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let ada = "ada.lovelace@example.com";
    let cases: [(&str, Vec<LifecycleEvent>, LifecycleEvent, Vec<&str>); 3] = [
        ("new joiner", vec![], event(EventKind::Joiner, "1", ada, "Engineering", 0), NEW_JOINER_OPS.to_vec()),
        (
            "mover",
            vec![event(EventKind::Joiner, "1", ada, "Engineering", 0)],
            event(EventKind::Mover, "1", ada, "Finance", 5),
            // Finance exists: the joiner's first group creation ensured every managed group.
            vec!["add_to_group", "remove_from_group"],
        ),
        (
            // The brake (limit 0) is not consulted: nothing would be suspended.
            "leaver",
            vec![event(EventKind::Joiner, "1", ada, "Engineering", 0)],
            event(EventKind::Leaver, "1", ada, "Engineering", 5),
            vec!["suspend"],
        ),
    ];
    for (name, before, event, expected) in cases {
        let f = Fixture::new(Brake::default());
        for earlier in before {
            applied(f.process(earlier).await);
        }
        f.directory.clear_calls();
        let (users, groups) = (f.directory.users(), f.directory.groups());
        let record = f.ledger.person(&person("1")).await.unwrap();
        let invitation = f.ledger.invitation(&person("1")).await.unwrap();

        let dry = applier(&f.ledger, &f.notifier, Brake { limit: 0, window: Duration::from_secs(3600) }, true);
        let outcome = dry.process(&f.directory, event, now(), None).await;
        assert_eq!(outcome.unwrap(), Outcome::Planned { operations: expected }, "{name}");

        let writes: Vec<_> = f.directory.calls().into_iter().filter(|c| c.is_write()).collect();
        assert!(writes.is_empty(), "{name}: writes in a dry run: {writes:?}");
        assert!(!f.directory.calls().is_empty(), "{name}: the plan was made from what is there");
        assert_eq!((f.directory.users(), f.directory.groups()), (users, groups), "{name}: directory unchanged");
        assert_eq!(f.ledger.person(&person("1")).await.unwrap(), record, "{name}: ledger record unchanged");
        assert_eq!(f.ledger.invitation(&person("1")).await.unwrap(), invitation, "{name}: invitation unchanged");
        assert!(f.notifier.sent().is_empty(), "{name}: nobody notified");
    }
}

// ------------------------------------------------------------------ groups on any bridge

/// Joiner → mover → mover back → leaver (groups removed) → rehire on every kind of bridge:
/// each person ends in exactly their rule's groups, one group per name, wherever the bridge
/// shows memberships. Where it shows them nowhere, additions still happen and every removal
/// is refused with a note instead of being skipped silently.
#[tokio::test]
async fn movers_end_in_exactly_their_groups_on_every_bridge() {
    let nowhere = TwinBehaviour::no_memberships();
    let bridges = [
        ("users carry groups", TwinBehaviour::default()),
        ("member filter", TwinBehaviour { member_filter: true, ..nowhere }),
        ("members on read by id", TwinBehaviour { members_on_get: true, ..nowhere }),
        ("duplicates allowed", TwinBehaviour { duplicate_groups: DuplicateGroups::Allow, ..TwinBehaviour::default() }),
        ("existing returned", TwinBehaviour { duplicate_groups: DuplicateGroups::ReturnExisting, ..nowhere }),
    ];
    let ada = "ada.lovelace@example.com";
    for (name, behaviour) in bridges {
        let f = Fixture::on(InMemoryDirectory::with_behaviour(behaviour), Brake::default());
        let (joins, moves, back) = (
            event(EventKind::Joiner, "1", ada, "Engineering", 0),
            event(EventKind::Mover, "1", ada, "Finance", 1),
            event(EventKind::Mover, "1", ada, "Engineering", 2),
        );
        applied(f.process(joins).await);
        let id = f.user(ada).id;
        assert_eq!(f.groups_of(&id), vec!["Employees", "Engineering"], "{name}: joiner");
        match behaviour.user_groups || behaviour.member_filter || behaviour.members_on_get {
            true => {
                assert_eq!(applied(f.process(moves).await), vec!["add_to_group", "remove_from_group"], "{name}");
                assert_eq!(f.groups_of(&id), vec!["Employees", "Finance"], "{name}: mover");
                applied(f.process(back).await);
                assert_eq!(f.groups_of(&id), vec!["Employees", "Engineering"], "{name}: moved back");
            }
            false => {
                let outcome = f.process(moves).await.unwrap();
                let Outcome::Applied { operations, notes } = outcome else { panic!("{name}: {outcome:?}") };
                assert_eq!(operations, vec!["add_to_group", "add_to_group"], "{name}: re-adds, removes nothing");
                let refused = vec![Note::GroupRemovalsRefused { groups: vec!["Engineering".into()] }];
                assert_eq!(notes, refused, "{name}");
                assert_eq!(f.groups_of(&id), vec!["Employees", "Engineering", "Finance"], "{name}: left as it was");
            }
        }
        for group in ["Employees", "Engineering", "Finance"] {
            let same = f.directory.groups().into_iter().filter(|g| g.display_name.eq_ignore_ascii_case(group)).count();
            assert_eq!(same, 1, "{name}: groups named {group}");
        }
    }
}

// ------------------------------------------------------------------ converge: time and order

/// A fixture whose applier reads `hr` people from an in-memory HR API.
fn with_hr(hr: &Arc<InMemoryEnricher>) -> Fixture {
    let ledger = Arc::new(InMemoryLedger::new());
    let notifier = Arc::new(InMemoryNotifier::default());
    let rules = Rules { mapping: MappingRules::from_json(RULES).unwrap(), ..Rules::default() };
    let applier = Applier::new(ledger.clone(), hr.clone(), Some(notifier.clone() as Arc<dyn Notifier>), rules);
    Fixture { directory: InMemoryDirectory::new(), ledger, notifier, applier }
}

fn converge(id: &str, at: DateTime<Utc>) -> LifecycleEvent {
    LifecycleEvent {
        kind: EventKind::Converge,
        source_event_id: format!("due:{}", at.to_rfc3339()),
        effective_at: at,
        received_at: at,
        attributes: Attributes::default(),
        ..event(EventKind::Mover, id, "x@example.com", "x", 0)
    }
}

#[tokio::test]
async fn a_late_leaver_after_a_later_mover_still_suspends() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    applied(f.process(event(EventKind::Joiner, "1", ada, "Engineering", 0)).await);
    applied(f.process(event(EventKind::Mover, "1", ada, "Finance", 20)).await);
    let late_leaver = f.process(event(EventKind::Leaver, "1", ada, "Finance", 10)).await;
    assert_eq!(applied(late_leaver), vec!["suspend"]);
    assert!(!f.user(ada).active);
    // A mover arriving after the leaver never brings the account back.
    let after = f.process(event(EventKind::Mover, "1", ada, "Engineering", 30)).await.unwrap();
    assert_eq!(after.label(), "no_change");
    assert!(!f.user(ada).active);
}

#[tokio::test]
async fn a_redelivery_costs_no_bridge_call_and_a_skip_keeps_nothing_from_a_later_event() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    // A mover for someone we know nothing about is a skip; the joiner after it, even with an
    // older effective time (redriven from the DLQ), still invites.
    let mover = f.process(event(EventKind::Mover, "1", ada, "Finance", 20)).await.unwrap();
    assert_eq!(mover.label(), "unknown_person");
    let joiner = event(EventKind::Joiner, "1", ada, "Engineering", 0);
    let operations = applied(f.process(joiner.clone()).await);
    assert_eq!(operations[0], "create_user");
    assert_eq!(f.groups_of(&f.user(ada).id), vec!["Employees", "Finance"], "the mover's department is newer");
    f.directory.clear_calls();
    assert_eq!(f.process(joiner).await.unwrap().label(), "duplicate");
    assert!(f.directory.calls().is_empty(), "a redelivery reads nothing: {:?}", f.directory.calls());
}

#[tokio::test]
async fn a_leaver_dated_ahead_keeps_access_until_the_cutoff_then_the_due_action_suspends() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    applied(f.process(event(EventKind::Joiner, "1", ada, "Engineering", 0)).await);
    let last_day = now() + chrono::Duration::days(14);
    let leaver = LifecycleEvent { effective_at: last_day, ..event(EventKind::Leaver, "1", ada, "Engineering", 5) };
    assert_eq!(f.process(leaver).await.unwrap().label(), "no_change");
    assert!(f.user(ada).active, "still employed for two weeks");
    let record = f.ledger.person(&person("1")).await.unwrap().unwrap();
    assert_eq!(record.due.as_ref().map(|d| d.at), Some(last_day));

    let early = f.applier.process(&f.directory, converge("1", last_day), last_day - chrono::Duration::minutes(1), None);
    assert_eq!(early.await.unwrap().label(), "no_change", "nothing fires early");
    let due = f.applier.process(&f.directory, converge("1", last_day), last_day, None).await;
    assert_eq!(applied(due), vec!["suspend"]);
    assert!(!f.user(ada).active);
    assert_eq!(f.ledger.person(&person("1")).await.unwrap().unwrap().due, None, "done: no due action left");
}

#[tokio::test]
async fn hr_moving_or_cancelling_a_termination_date_moves_or_cancels_the_due_action() {
    let hr = Arc::new(InMemoryEnricher::new());
    let f = with_hr(&hr);
    let ada = "ada.lovelace@example.com";
    let record = |termination: Option<&str>| Attributes {
        work_email: Some(ada.into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        department: Some("Engineering".into()),
        employment_status: Some("Active".into()),
        termination_date: termination.map(|d| d.parse().unwrap()),
        ..Default::default()
    };
    async fn due_at(f: &Fixture) -> Option<DateTime<Utc>> {
        f.ledger.person(&person("1")).await.unwrap().unwrap().due.map(|d| d.at)
    }
    hr.insert(person("1"), record(None));
    applied(f.process(event(EventKind::Joiner, "1", ada, "Engineering", 0)).await);
    assert_eq!(due_at(&f).await, None);

    hr.insert(person("1"), record(Some("2026-03-20")));
    f.process(event(EventKind::Mover, "1", ada, "Engineering", 1)).await.unwrap();
    assert_eq!(due_at(&f).await, Some(Utc.with_ymd_and_hms(2026, 3, 20, 0, 0, 0).unwrap()));

    hr.insert(person("1"), record(Some("2026-04-10")));
    f.process(event(EventKind::Mover, "1", ada, "Engineering", 2)).await.unwrap();
    let moved = Utc.with_ymd_and_hms(2026, 4, 10, 0, 0, 0).unwrap();
    assert_eq!(due_at(&f).await, Some(moved), "moved later");

    hr.insert(person("1"), record(None));
    f.process(event(EventKind::Mover, "1", ada, "Engineering", 3)).await.unwrap();
    assert_eq!(due_at(&f).await, None, "cancelled");
    let after = f.applier.process(&f.directory, converge("1", moved), moved, None).await.unwrap();
    assert_eq!(after.label(), "no_change", "a stale trigger changes nothing");
    assert!(f.user(ada).active);
}

#[tokio::test]
async fn a_joiner_starting_in_30_days_is_invited_at_start_minus_lead_and_counted_from_the_start() {
    let hr = Arc::new(InMemoryEnricher::new());
    let f = with_hr(&hr);
    let ada = "ada.lovelace@example.com";
    let start = now().date_naive() + chrono::Days::new(30);
    hr.insert(
        person("1"),
        Attributes {
            work_email: Some(ada.into()),
            given_name: Some("Ada".into()),
            department: Some("Engineering".into()),
            employment_status: Some("Active".into()),
            start_date: Some(start),
            ..Default::default()
        },
    );
    let outcome = f.process(event(EventKind::Joiner, "1", ada, "Engineering", 0)).await.unwrap();
    assert_eq!(outcome.label(), "not_yet_due");
    assert!(f.users_named(ada).is_empty(), "not invited 30 days ahead");
    let start_at = start.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let invite_at = start_at - chrono::Duration::days(3);
    let due = f.ledger.person(&person("1")).await.unwrap().unwrap().due.unwrap();
    assert_eq!(due.at, invite_at);
    assert!(due.intent.starts_with("invite (3 days before the start date"), "{}", due.intent);

    let invited = f.applier.process(&f.directory, converge("1", invite_at), invite_at, None).await;
    assert_eq!(applied(invited)[0], "create_user");
    let invitation = f.ledger.invitation(&person("1")).await.unwrap().unwrap();
    assert_eq!(invitation.counts_from, Some(start_at), "escalation counts from the start date");
}

mod permutations {
    use super::*;
    use proptest::prelude::*;

    /// Ada's history, in effective-time order: joins, moves twice (one e-mail change), leaves,
    /// comes back, moves.
    fn history() -> Vec<LifecycleEvent> {
        let ada = "ada.lovelace@example.com";
        vec![
            event(EventKind::Joiner, "1", ada, "Engineering", 0),
            event(EventKind::Mover, "1", ada, "Finance", 10),
            event(EventKind::Mover, "1", "ada.king@example.com", "Finance", 20),
            event(EventKind::Leaver, "1", "ada.king@example.com", "Finance", 30),
            event(EventKind::Rehire, "1", "ada.king@example.com", "Engineering", 40),
            event(EventKind::Mover, "1", "ada.king@example.com", "Research", 50),
        ]
    }

    /// (userName, active, groups) of every account, after processing `order`.
    fn final_state(order: &[usize]) -> Vec<(String, bool, Vec<String>)> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let f = Fixture::new(Brake::default());
            let events = history();
            let mut last = Ok(Outcome::Skipped { reason: Skip::NoChange, notes: vec![] });
            for &i in order {
                last = f.process(events[i].clone()).await;
            }
            // A failure would be redelivered by SQS; none is expected.
            assert!(last.is_ok(), "{last:?}");
            let mut users: Vec<_> = f
                .directory
                .users()
                .into_iter()
                .map(|u| {
                    let groups = f.groups_of(&u.id);
                    (u.user_name.to_lowercase(), u.active, groups)
                })
                .collect();
            users.sort();
            users
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn any_order_with_duplicates_converges_to_the_in_order_state(
            order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
            duplicates in prop::collection::vec((0usize..6, 0usize..7), 0..4),
        ) {
            let mut delivered = order;
            for (event, position) in duplicates {
                delivered.insert(position.min(delivered.len()), event);
            }
            let in_order = final_state(&[0, 1, 2, 3, 4, 5]);
            prop_assert_eq!(in_order.len(), 1);
            prop_assert_eq!(final_state(&delivered), in_order);
        }
    }
}

// ------------------------------------------------------------------ trust

#[tokio::test]
async fn an_unlinked_account_is_adopted_only_by_a_joiner_and_never_when_suspended() {
    let ada = "ada.lovelace@example.com";
    // A leaver, a mover or a rehire naming the e-mail of an account nobody linked: left alone.
    for kind in [EventKind::Leaver, EventKind::Mover, EventKind::Rehire] {
        let f = Fixture::new(Brake::default());
        let owner = f.directory.insert_user(existing_user(ada, None, true));
        let outcome = f.process(event(kind, "1", ada, "Finance", 0)).await;
        // (A rehire may try to invite; the bridge's 409 is then refused, not adopted.)
        let writes: Vec<_> =
            f.directory.calls().into_iter().filter(|c| c.is_write() && c.op != DirectoryOp::CreateUser).collect();
        assert!(writes.is_empty(), "{kind}: touched {writes:?} ({outcome:?})");
        assert!(f.user(ada).active, "{kind}");
        assert_eq!(f.ledger.account_owner(&owner.id).await.unwrap(), None, "{kind}: not linked");
    }
    // A suspended account is never reactivated for a joiner it is not linked to.
    let f = Fixture::new(Brake::default());
    f.directory.insert_user(existing_user(ada, None, false));
    let outcome = f.process(event(EventKind::Joiner, "1", ada, "Finance", 0)).await;
    assert!(matches!(outcome, Err(ApplyError::Refused(Refusal::UnlinkedAccount { .. }))), "{outcome:?}");
    assert!(!f.user(ada).active);
    // An active one is adopted by a joiner, and linked: nobody else can take it afterwards.
    let f = Fixture::new(Brake::default());
    let existing = f.directory.insert_user(existing_user(ada, None, true));
    applied(f.process(event(EventKind::Joiner, "1", ada, "Finance", 0)).await);
    assert_eq!(f.ledger.account_owner(&existing.id).await.unwrap(), Some(person("1")));
    let mallory = f.process(event(EventKind::Joiner, "2", ada, "Engineering", 1)).await;
    assert!(matches!(mallory, Err(ApplyError::Refused(Refusal::AccountOfAnotherPerson { .. }))), "{mallory:?}");
    assert_eq!(f.groups_of(&existing.id), vec!["Employees", "Finance"], "untouched by the second person");
}

#[tokio::test]
async fn a_leaver_clears_the_pending_invitation_before_suspending() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    applied(f.process(event(EventKind::Joiner, "1", ada, "Finance", 0)).await);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (slot, ledger) = (seen.clone(), f.ledger.clone());
    f.directory.before_next(DirectoryOp::PatchUser, move |_, _| {
        let status = futures::executor::block_on(ledger.invitation(&person("1"))).unwrap().map(|i| i.status);
        *slot.lock().unwrap() = status;
    });
    assert_eq!(applied(f.process(event(EventKind::Leaver, "1", ada, "Finance", 5)).await), vec!["suspend"]);
    assert_eq!(*seen.lock().unwrap(), Some(InvitationStatus::Cleared), "cleared before the suspension was sent");
}

#[tokio::test]
async fn a_redelivered_joiner_whose_invitation_was_never_recorded_gets_one() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    // We created her (externalId = her key), but the invitation write was lost.
    f.directory.insert_user(existing_user(ada, Some("hr:1"), true));
    f.process(event(EventKind::Joiner, "1", ada, "Finance", 0)).await.unwrap();
    let invitation = f.ledger.invitation(&person("1")).await.unwrap();
    assert_eq!(invitation.map(|i| i.status), Some(InvitationStatus::Pending));
}

#[tokio::test]
async fn a_wave_of_reactivations_meets_the_brake_too() {
    let f = Fixture::new(Brake { limit: 1, window: Duration::from_secs(3600) });
    for i in 1..=2 {
        f.directory.insert_user(existing_user(&format!("back.{i}@example.com"), Some(&format!("hr:{i}")), false));
    }
    let rehire = |i: u32| event(EventKind::Rehire, &i.to_string(), &format!("back.{i}@example.com"), "Finance", 0);
    assert_eq!(applied(f.process(rehire(1)).await)[0], "reactivate");
    assert!(matches!(f.process(rehire(2)).await, Err(ApplyError::BrakeEngaged { limit: 1 })));
    assert!(!f.user("back.2@example.com").active, "the second waits");
    assert!(f.notifier.sent()[0].contains("reactivations"), "{:?}", f.notifier.sent());
}

#[tokio::test]
async fn the_worker_waits_while_invite_retry_holds_the_persons_lease() {
    let f = Fixture::new(Brake::default());
    let ada = "ada.lovelace@example.com";
    applied(f.process(event(EventKind::Joiner, "1", ada, "Finance", 0)).await);
    let until = now() + chrono::Duration::minutes(1);
    assert!(f.ledger.try_lease(&person("1"), "invite-retry", until, now()).await.unwrap());
    let leaver = event(EventKind::Leaver, "1", ada, "Finance", 5);
    assert!(matches!(f.process(leaver.clone()).await, Err(ApplyError::Busy)));
    assert!(f.user(ada).active, "nothing written while the lease is held");
    f.ledger.release_lease(&person("1"), "invite-retry").await.unwrap();
    assert_eq!(applied(f.process(leaver).await), vec!["suspend"]);
    assert!(f.ledger.try_lease(&person("1"), "invite-retry", until, now()).await.unwrap(), "released by the worker");
}

#[tokio::test]
async fn a_leaver_the_source_contradicts_is_a_no_op_for_someone_without_an_account() {
    let hr = Arc::new(InMemoryEnricher::new());
    let f = with_hr(&hr);
    let ada = "ada.lovelace@example.com";
    // BambooHR's thin "status changed" for an employee who is still active, with no account.
    let active = Attributes {
        work_email: Some(ada.into()),
        given_name: Some("Ada".into()),
        department: Some("Finance".into()),
        employment_status: Some("Active".into()),
        ..Default::default()
    };
    hr.insert(person("1"), active);
    for kind in [EventKind::Leaver, EventKind::Mover] {
        let outcome = f.process(event(kind, "1", ada, "Finance", 0)).await.unwrap();
        assert_eq!(outcome.label(), "unknown_person", "{kind}");
    }
    assert!(f.users_named(ada).is_empty(), "never an invitation");
}
