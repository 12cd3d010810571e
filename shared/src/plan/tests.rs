//! Table tests for the planner: every kind × every account state × the policy switches.

use super::*;
use crate::desired::Phase;
use crate::event::{Attributes, PersonKey};
use crate::scim::{ScimName, ScimUser};

/// The desired state for Ada with this access: the rule's groups for her department, none
/// when her access is revoked (as `desired_as_of` decides).
fn state(access: Access, email: Option<&str>, department: &str) -> DesiredState {
    let groups = match access {
        Access::Revoked => Desired { groups: set(&[]), ..desired_for(department) },
        _ => desired_for(department),
    };
    DesiredState {
        person: PersonKey::new("bamboohr-main", "42"),
        phase: Phase::Employed,
        access,
        attributes: Attributes {
            work_email: email.map(str::to_owned),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            department: Some(department.into()),
            ..Default::default()
        },
        groups,
        next_change: None,
        starts_at: None,
        attribute_only: false,
    }
}

/// Plans `state` with other groups.
fn plan_with(state: &DesiredState, groups: &Desired, actual: &Actual, policy: &PlanPolicy) -> Result<Plan, Refusal> {
    plan(&DesiredState { groups: groups.clone(), ..state.clone() }, actual, policy)
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
        groups: None,
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
        memberships_unknown: false,
        existing_groups: set(&["Employees", "Engineering", "Finance", "Hand Picked", "Owners"]),
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
        Err(Refusal::ProtectedAccount { .. }) => vec!["refused_protected_account"],
        Err(Refusal::UnlinkedAccount { .. }) => vec!["refused_unlinked_account"],
    }
}

#[test]
fn lifecycle_table() {
    let policy = PlanPolicy::default();
    let remove_groups = PlanPolicy { leaver_removes_groups: true, ..Default::default() };
    let delete = PlanPolicy { allow_delete: true, ..Default::default() };
    let in_eng = &["Employees", "Engineering", "Hand Picked"][..];
    #[rustfmt::skip]
    let cases: Vec<(&str, DesiredState, Actual, &PlanPolicy, Vec<&str>)> = vec![
        ("joiner, nobody there: invite and add groups",
            state(Access::Granted, Some(ADA), "Engineering"), actual(None, &[]), &policy,
            vec!["create_user", "add_to_group", "add_to_group"]),
        ("joiner, no e-mail: refused",
            state(Access::Granted, None, "Engineering"), actual(None, &[]), &policy,
            vec!["refused_missing_email"]),
        ("joiner, already there with the right groups: nothing",
            state(Access::Granted, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("joiner, suspended: reactivate (rehire)",
            state(Access::Granted, Some(ADA), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["reactivate"]),
        ("rehire, suspended with an old address: reactivate, then change e-mail",
            state(Access::Granted, Some("ada.new@example.com"), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["reactivate", "update_email"]),
        ("rehire, nobody there: invite",
            state(Access::Granted, Some(ADA), "Finance"), actual(None, &[]), &policy,
            vec!["create_user", "add_to_group", "add_to_group"]),
        ("mover, department change: group diff only within managed groups",
            state(Access::Keep, Some(ADA), "Finance"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["add_to_group", "remove_from_group"]),
        ("mover, e-mail change for an active user",
            state(Access::Keep, Some("ada.l@example.com"), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["update_email"]),
        ("mover, e-mail change for a suspended user: skipped",
            state(Access::Keep, Some("ada.l@example.com"), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("mover, unknown person: nothing",
            state(Access::Keep, Some(ADA), "Finance"), actual(None, &[]), &policy,
            vec!["unknown_person"]),
        ("mover, e-mail differs only in case: nothing",
            state(Access::Keep, Some("ADA@example.com"), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("leaver, active: suspend only",
            state(Access::Revoked, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["suspend"]),
        ("leaver, already suspended: nothing",
            state(Access::Revoked, Some(ADA), "Engineering"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["no_change"]),
        ("leaver, no account: nothing",
            state(Access::Revoked, None, "Engineering"), actual(None, &[]), &policy,
            vec!["no_account"]),
        ("start date ahead, invitation not due yet: nothing",
            state(Access::NotYet, Some(ADA), "Engineering"), actual(None, &[]), &policy,
            vec!["not_yet_due"]),
        ("start date ahead, account already there: kept as it is, profile and groups follow",
            state(Access::NotYet, Some(ADA), "Finance"), actual(Some(user(false, ADA)), in_eng), &policy,
            vec!["add_to_group", "remove_from_group"]),
        ("out of scope, report only: untouched",
            state(Access::Untouched, Some(ADA), "Finance"), actual(Some(user(true, ADA)), in_eng), &policy,
            vec!["out_of_scope"]),
        ("leaver with group removal: suspend, then managed groups only",
            state(Access::Revoked, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &remove_groups,
            vec!["suspend", "remove_from_group", "remove_from_group"]),
        ("leaver with delete allowed: suspend then delete",
            state(Access::Revoked, Some(ADA), "Engineering"), actual(Some(user(true, ADA)), in_eng), &delete,
            vec!["suspend", "delete"]),
    ];
    for (name, state, actual, policy, expected) in cases {
        assert_eq!(ops(plan(&state, &actual, policy)), expected, "{name}");
    }
}

#[test]
fn suspended_email_change_is_reported() {
    let e = state(Access::Keep, Some("ada.l@example.com"), "Engineering");
    let result = plan_with(
        &e,
        &desired_for("Engineering"),
        &actual(Some(user(false, ADA)), &["Employees", "Engineering"]),
        &PlanPolicy::default(),
    );
    assert_eq!(result, Ok(Plan::Skip { reason: Skip::NoChange, notes: vec![Note::EmailChangeSkippedSuspended] }));
}

#[test]
fn missing_groups_are_created_before_members_are_added() {
    let e = state(Access::Granted, Some(ADA), "Research");
    let desired =
        Desired { groups: set(&["Employees", "Research"]), managed: set(&["Employees", "Research"]), complete: true };
    let Ok(Plan::Apply { operations, .. }) = plan_with(&e, &desired, &actual(None, &[]), &PlanPolicy::default()) else {
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
        for kind in [Access::Granted, Access::Keep] {
            let result =
                plan_with(&state(kind, Some(ADA), "x"), &desired, &actual(Some(user(true, ADA)), &member_of), &policy);
            if member_of.is_empty() {
                assert_eq!(result, Err(Refusal::ProtectedGroup { group: protected.into() }), "{kind:?} {protected}");
            } else {
                // Already a member and still desired: nothing to do, nothing touched.
                assert_eq!(ops(result), vec!["add_to_group"], "{kind:?} {protected}");
            }
        }
    }
    // A leaver whose group removal would touch a protected group is refused too.
    let remove = PlanPolicy { leaver_removes_groups: true, ..Default::default() };
    let desired = Desired { groups: set(&[]), managed: set(&["Owners"]), complete: true };
    let result = plan_with(
        &state(Access::Revoked, Some(ADA), "x"),
        &desired,
        &actual(Some(user(true, ADA)), &["Owners"]),
        &remove,
    );
    assert_eq!(result, Err(Refusal::ProtectedGroup { group: "Owners".into() }));
}

#[test]
fn unmanaged_groups_are_never_removed() {
    let e = state(Access::Keep, Some(ADA), "Finance");
    let result = plan_with(
        &e,
        &desired_for("Finance"),
        &actual(Some(user(true, ADA)), &["Employees", "Finance", "Hand Picked"]),
        &PlanPolicy::default(),
    );
    assert_eq!(ops(result), vec!["no_change"]);
}

#[test]
fn names_are_derived_and_sent_together() {
    let mut e = state(Access::Keep, Some(ADA), "Engineering");
    e.attributes.given_name = None;
    e.attributes.family_name = None;
    e.attributes.display_name = Some("Ada King Lovelace".into());
    assert_eq!(names(&e.attributes), Some(("Ada".into(), "King Lovelace".into(), "Ada King Lovelace".into())));
    let Ok(Plan::Apply { operations, .. }) = plan_with(
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
    let Ok(Plan::Apply { operations, .. }) = plan_with(
        &state(Access::Granted, Some(" ada@example.com "), "Finance"),
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
    for kind in [Access::Granted, Access::NotYet, Access::Keep, Access::Revoked] {
        let e = state(kind, Some(ADA), "Engineering");
        let result =
            plan_with(&e, &desired_for("Engineering"), &actual(Some(other.clone()), &[]), &PlanPolicy::default());
        assert_eq!(ops(result), vec!["refused_other_person"], "{kind:?}");
        // One another connection (the IdP, say) provisioned for the same human: the first link
        // wins, the other is refused and reported, never fought over.
        let mut from_okta = user(true, ADA);
        from_okta.external_id = Some("okta-main:00u1".into());
        let result =
            plan_with(&e, &desired_for("Engineering"), &actual(Some(from_okta.clone()), &[]), &PlanPolicy::default());
        assert_eq!(ops(result), vec!["refused_other_person"], "{kind:?}");
        // ... unless that connection only describes attributes.
        let attributes_only = DesiredState { attribute_only: true, ..e.clone() };
        let result = plan_with(
            &attributes_only,
            &desired_for("Engineering"),
            &actual(Some(from_okta), &[]),
            &PlanPolicy::default(),
        );
        assert_ne!(ops(result), vec!["refused_other_person"], "{kind:?}");
        // A member created by hand (no externalId), vetted by the applier, is planned for.
        let result = plan_with(
            &e,
            &desired_for("Engineering"),
            &actual(Some(unlinked.clone()), &["Employees", "Engineering"]),
            &PlanPolicy::default(),
        );
        assert_ne!(ops(result), vec!["refused_other_person"], "{kind:?}");
    }
}

#[test]
fn a_protected_account_is_never_touched_nor_its_address_invited() {
    let policy = PlanPolicy { protected_accounts: set(&["Owner@Example.com"]), ..Default::default() };
    for access in [Access::Granted, Access::Revoked, Access::Keep] {
        let mut owner = user(true, "owner@example.com");
        owner.external_id = None;
        let result = plan(&state(access, Some("owner@example.com"), "Finance"), &actual(Some(owner), &[]), &policy);
        assert_eq!(ops(result), vec!["refused_protected_account"], "{access:?}");
    }
    let invite = plan(&state(Access::Granted, Some("OWNER@example.com"), "Finance"), &actual(None, &[]), &policy);
    assert_eq!(ops(invite), vec!["refused_protected_account"]);
    let other = plan(&state(Access::Granted, Some(ADA), "Finance"), &actual(None, &[]), &policy);
    assert_eq!(ops(other)[0], "create_user");
}

#[test]
fn unknown_attributes_never_remove_groups() {
    let e = state(Access::Keep, Some(ADA), "Finance");
    let guessing = Desired { groups: set(&["Employees"]), complete: false, ..desired_for("Finance") };
    let result =
        plan_with(&e, &guessing, &actual(Some(user(true, ADA)), &["Employees", "Engineering"]), &PlanPolicy::default());
    assert_eq!(ops(result), vec!["no_change"]);
}
