//! Table tests for the planner: every kind × every account state × the policy switches.

use super::*;
use crate::event::{Attributes, PersonKey, SourceKind};
use crate::scim::{ScimName, ScimUser};
use chrono::TimeZone;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0).unwrap()
}

fn event(kind: EventKind, email: Option<&str>, department: &str) -> LifecycleEvent {
    LifecycleEvent {
        version: 1,
        kind,
        person: PersonKey::new("bamboohr-main", "42"),
        source_kind: SourceKind::Bamboohr,
        source_event_id: "evt-2".into(),
        effective_at: at(10),
        received_at: at(10),
        attributes: Attributes {
            work_email: email.map(str::to_owned),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            department: Some(department.into()),
            ..Default::default()
        },
        immediate: false,
        requeued: 0,
    }
}

fn user(active: bool, email: &str) -> ScimUser {
    ScimUser {
        id: "U1".into(),
        user_name: email.into(),
        external_id: Some("bamboohr-main:42".into()),
        active,
        name: Some(ScimName {
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            formatted: Some("Ada Lovelace".into()),
        }),
        display_name: Some("Ada Lovelace".into()),
        emails: vec![],
        groups: vec![],
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Engineering → {Employees, Engineering}; Finance → {Employees, Finance}.
fn desired_for(department: &str) -> Desired {
    Desired {
        groups: set(&["Employees", department]),
        managed: set(&["Employees", "Engineering", "Finance"]),
        complete: true,
    }
}

fn actual(user: Option<ScimUser>, member_of: &[&str]) -> Actual {
    Actual {
        user,
        member_of: set(member_of),
        existing_groups: set(&["Employees", "Engineering", "Finance", "Hand Picked", "Owners"]),
        last_applied: None,
    }
}

const ADA: &str = "ada@example.com";

fn ops(plan: Result<Plan, Refusal>) -> Vec<&'static str> {
    match plan {
        Ok(Plan::Apply { operations, .. }) => operations.iter().map(Operation::name).collect(),
        Ok(Plan::Skip { reason, .. }) => vec![reason.as_str()],
        Err(Refusal::ProtectedGroup { .. }) => vec!["refused_protected"],
        Err(Refusal::MissingEmail) => vec!["refused_missing_email"],
        Err(Refusal::AccountOfAnotherPerson { .. }) => vec!["refused_other_person"],
    }
}

#[test]
fn lifecycle_table() {
    let policy = PlanPolicy::default();
    let remove_groups = PlanPolicy { leaver_removes_groups: true, ..Default::default() };
    let delete = PlanPolicy { allow_delete: true, ..Default::default() };
    let in_eng = &["Employees", "Engineering", "Hand Picked"][..];
    #[rustfmt::skip]
    let cases: Vec<(&str, LifecycleEvent, Actual, &PlanPolicy, Vec<&str>)> = vec![
        ("joiner, nobody there: invite and add groups",
            event(EventKind::Joiner, Some(ADA), "Engineering"), actual(None, &[]), &policy,
            vec!["create_user", "add_to_group", "add_to_group"]),
        ("joiner, no e-mail: refused",
            event(EventKind::Joiner, None, "Engineering"), actual(None, &[]), &policy,
            vec!["refused_missing_email"]),
        ("joiner, already there with the right groups: nothing",
            event(EventKind::Joiner, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("joiner, suspended: reactivate (rehire)",
            event(EventKind::Joiner, Some(ADA), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["reactivate"]),
        ("rehire, suspended with an old address: reactivate, then change e-mail",
            event(EventKind::Rehire, Some("ada.new@example.com"), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["reactivate", "update_email"]),
        ("rehire, nobody there: invite",
            event(EventKind::Rehire, Some(ADA), "Finance"), actual(None, &[]), &policy,
            vec!["create_user", "add_to_group", "add_to_group"]),
        ("mover, department change: group diff only within managed groups",
            event(EventKind::Mover, Some(ADA), "Finance"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["add_to_group", "remove_from_group"]),
        ("mover, e-mail change for an active user",
            event(EventKind::Mover, Some("ada.l@example.com"), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["update_email"]),
        ("mover, e-mail change for a suspended user: skipped",
            event(EventKind::Mover, Some("ada.l@example.com"), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("mover, unknown person: nothing",
            event(EventKind::Mover, Some(ADA), "Finance"), actual(None, &[]), &policy,
            vec!["unknown_person"]),
        ("mover, e-mail differs only in case: nothing",
            event(EventKind::Mover, Some("ADA@example.com"), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("leaver, active: suspend only",
            event(EventKind::Leaver, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["suspend"]),
        ("leaver, already suspended: nothing",
            event(EventKind::Leaver, Some(ADA), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("leaver, unknown: nothing",
            event(EventKind::Leaver, None, "Engineering"), actual(None, &[]), &policy,
            vec!["unknown_person"]),
        ("leaver with group removal: suspend, then managed groups only",
            event(EventKind::Leaver, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &remove_groups,
            vec!["suspend", "remove_from_group", "remove_from_group"]),
        ("leaver with delete allowed: suspend then delete",
            event(EventKind::Leaver, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &delete,
            vec!["suspend", "delete"]),
    ];
    for (name, event, actual, policy, expected) in cases {
        let desired = desired_for(event.attributes.department.as_deref().unwrap_or_default());
        assert_eq!(ops(plan(&event, &desired, &actual, policy)), expected, "{name}");
    }
}

#[test]
fn redelivered_and_late_events_change_nothing() {
    let policy = PlanPolicy::default();
    let desired = desired_for("Finance");
    for kind in [EventKind::Joiner, EventKind::Mover, EventKind::Leaver, EventKind::Rehire] {
        let e = event(kind, Some(ADA), "Finance");
        let mut duplicate = actual(Some(user(true, ADA)), &[]);
        duplicate.last_applied =
            Some(LastApplied { event_id: e.source_event_id.clone(), effective_at: e.effective_at });
        assert_eq!(ops(plan(&e, &desired, &duplicate, &policy)), vec!["duplicate"], "{kind}");

        let mut stale = actual(Some(user(true, ADA)), &[]);
        stale.last_applied = Some(LastApplied { event_id: "newer".into(), effective_at: at(11) });
        assert_eq!(ops(plan(&e, &desired, &stale, &policy)), vec!["stale"], "{kind}");

        let mut same_time = actual(None, &[]);
        same_time.last_applied = Some(LastApplied { event_id: "other".into(), effective_at: at(10) });
        assert_ne!(ops(plan(&e, &desired, &same_time, &policy)), vec!["stale"], "{kind}: equal time is not stale");
    }
}

#[test]
fn suspended_email_change_is_reported() {
    let e = event(EventKind::Mover, Some("ada.l@example.com"), "Engineering");
    let result = plan(
        &e,
        &desired_for("Engineering"),
        &actual(Some(user(false, ADA)), &["Employees", "Engineering"]),
        &PlanPolicy::default(),
    );
    assert_eq!(result, Ok(Plan::Skip { reason: Skip::NoChange, notes: vec![Note::EmailChangeSkippedSuspended] }));
}

#[test]
fn missing_groups_are_created_before_members_are_added() {
    let e = event(EventKind::Joiner, Some(ADA), "Research");
    let desired =
        Desired { groups: set(&["Employees", "Research"]), managed: set(&["Employees", "Research"]), complete: true };
    let Ok(Plan::Apply { operations, .. }) = plan(&e, &desired, &actual(None, &[]), &PlanPolicy::default()) else {
        panic!("expected a plan");
    };
    let names: Vec<_> = operations.iter().map(Operation::name).collect();
    assert_eq!(names, vec!["create_user", "add_to_group", "create_group", "add_to_group"]);
    assert_eq!(operations[2], Operation::CreateGroup("Research".into()));
}

#[test]
fn a_protected_group_refuses_the_whole_plan() {
    let policy = PlanPolicy { protected_groups: set(&["Security"]), ..Default::default() };
    for (protected, member_of) in
        [("Owners", vec![]), ("administrators", vec![]), ("Security", vec![]), ("Owners", vec!["Owners"])]
    {
        let desired =
            Desired { groups: set(&["Employees", protected]), managed: set(&["Employees", protected]), complete: true };
        let member_of: Vec<&str> = member_of;
        for kind in [EventKind::Joiner, EventKind::Mover] {
            let result =
                plan(&event(kind, Some(ADA), "x"), &desired, &actual(Some(user(true, ADA)), &member_of), &policy);
            if member_of.is_empty() {
                assert_eq!(result, Err(Refusal::ProtectedGroup { group: protected.into() }), "{kind} {protected}");
            } else {
                // Already a member and still desired: nothing to do, nothing touched.
                assert_eq!(ops(result), vec!["add_to_group"], "{kind} {protected}");
            }
        }
    }
    // A leaver whose group removal would touch a protected group is refused too.
    let remove = PlanPolicy { leaver_removes_groups: true, ..Default::default() };
    let desired = Desired { groups: set(&[]), managed: set(&["Owners"]), complete: true };
    let result =
        plan(&event(EventKind::Leaver, Some(ADA), "x"), &desired, &actual(Some(user(true, ADA)), &["Owners"]), &remove);
    assert_eq!(result, Err(Refusal::ProtectedGroup { group: "Owners".into() }));
}

#[test]
fn unmanaged_groups_are_never_removed() {
    let e = event(EventKind::Mover, Some(ADA), "Finance");
    let result = plan(
        &e,
        &desired_for("Finance"),
        &actual(Some(user(true, ADA)), &["Employees", "Finance", "Hand Picked"]),
        &PlanPolicy::default(),
    );
    assert_eq!(ops(result), vec!["no_change"]);
}

#[test]
fn names_are_derived_and_sent_together() {
    let mut e = event(EventKind::Mover, Some(ADA), "Engineering");
    e.attributes.given_name = None;
    e.attributes.family_name = None;
    e.attributes.display_name = Some("Ada King Lovelace".into());
    assert_eq!(names(&e), Some(("Ada".into(), "King Lovelace".into(), "Ada King Lovelace".into())));
    let Ok(Plan::Apply { operations, .. }) = plan(
        &e,
        &desired_for("Engineering"),
        &actual(Some(user(true, ADA)), &["Employees", "Engineering"]),
        &PlanPolicy::default(),
    ) else {
        panic!("expected an update");
    };
    assert_eq!(
        operations,
        vec![Operation::UpdateName {
            given_name: "Ada".into(),
            family_name: "King Lovelace".into(),
            display_name: "Ada King Lovelace".into()
        }]
    );
}

#[test]
fn new_users_carry_the_person_key_as_external_id() {
    let Ok(Plan::Apply { operations, .. }) = plan(
        &event(EventKind::Joiner, Some(" ada@example.com "), "Finance"),
        &desired_for("Finance"),
        &actual(None, &[]),
        &PlanPolicy::default(),
    ) else {
        panic!("expected a plan");
    };
    let Operation::CreateUser(new_user) = &operations[0] else { panic!("expected create first") };
    assert_eq!(new_user.external_id, "bamboohr-main:42");
    assert_eq!(new_user.user_name, "ada@example.com");
    assert_eq!(new_user.display_name, "Ada Lovelace");
}

#[test]
fn an_account_provisioned_for_someone_else_is_never_adopted() {
    let mut other = user(false, ADA);
    other.external_id = Some("bamboohr-main:7".into());
    let mut unlinked = user(true, ADA);
    unlinked.external_id = None;
    for kind in [EventKind::Joiner, EventKind::Rehire, EventKind::Mover, EventKind::Leaver] {
        let e = event(kind, Some(ADA), "Engineering");
        let result = plan(&e, &desired_for("Engineering"), &actual(Some(other.clone()), &[]), &PlanPolicy::default());
        assert_eq!(ops(result), vec!["refused_other_person"], "{kind}");
        // A member created by hand (no externalId) is matched by e-mail, as 1Password documents;
        // so is one another connection (the IdP, say) provisioned for the same human.
        let mut from_okta = user(true, ADA);
        from_okta.external_id = Some("okta-main:00u1".into());
        for matched in [&unlinked, &from_okta] {
            let result = plan(
                &e,
                &desired_for("Engineering"),
                &actual(Some(matched.clone()), &["Employees", "Engineering"]),
                &PlanPolicy::default(),
            );
            assert_ne!(ops(result), vec!["refused_other_person"], "{kind}");
        }
    }
}

#[test]
fn unknown_attributes_never_remove_groups() {
    let e = event(EventKind::Mover, Some(ADA), "Finance");
    let guessing = Desired { groups: set(&["Employees"]), complete: false, ..desired_for("Finance") };
    let result =
        plan(&e, &guessing, &actual(Some(user(true, ADA)), &["Employees", "Engineering"]), &PlanPolicy::default());
    assert_eq!(ops(result), vec!["no_change"]);
}
