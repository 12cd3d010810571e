//! The planner: a pure function from (desired state as of now, actual state, policy) to the
//! ordered SCIM operations that make 1Password match. No I/O here; [`crate::apply`]
//! executes plans. What the account *should* be is decided in [`crate::desired`]; how to
//! get there from what it is, here, with table tests for both.

use std::collections::BTreeSet;

use crate::desired::{Access, DesiredState};
use crate::event::{Attributes, PersonKey};
use crate::scim::{NewUser, ScimUser};

/// Configuration that shapes plans.
#[derive(Debug, Clone, Default)]
pub struct PlanPolicy {
    /// Leavers also lose the managed groups they are in.
    pub leaver_removes_groups: bool,
    /// Leavers are deleted (after suspension) instead of only suspended. Off by default:
    /// deletion destroys the private vault and cannot be undone.
    pub allow_delete: bool,
    /// Groups never touched: compared case-insensitively.
    pub protected_groups: BTreeSet<String>,
    /// Accounts no path ever touches (break-glass Owners, the integration's own account),
    /// by e-mail, compared case-insensitively. The bridge does not show who is an Owner or
    /// Administrator, so this list is the guard.
    pub protected_accounts: BTreeSet<String>,
}

/// The built-in groups 1Password protects; configuration adds to these.
pub const ALWAYS_PROTECTED: [&str; 4] = ["Owners", "Administrators", "Recovery", "Provision Managers"];

impl PlanPolicy {
    pub fn is_protected_account(&self, email: &str) -> bool {
        self.protected_accounts.iter().any(|a| a.trim().eq_ignore_ascii_case(email.trim()))
    }

    pub fn is_protected(&self, group: &str) -> bool {
        ALWAYS_PROTECTED.iter().any(|g| g.eq_ignore_ascii_case(group.trim()))
            || self.protected_groups.iter().any(|g| g.trim().eq_ignore_ascii_case(group.trim()))
    }
}

/// The groups the mapping rules say the person should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub groups: BTreeSet<String>,
    /// Every group the rules manage; only these are ever added or removed.
    pub managed: BTreeSet<String>,
    /// False when an attribute the rules read is unknown (a thin webhook whose source API
    /// could not fill it): groups are then only added, never removed on a guess.
    pub complete: bool,
}

/// What 1Password says now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actual {
    pub user: Option<ScimUser>,
    /// Names of the groups the user is a member of now.
    pub member_of: BTreeSet<String>,
    /// The bridge shows memberships nowhere: `member_of` means nothing, desired groups are
    /// added (adding a member twice changes nothing) and removals are refused, loudly.
    pub memberships_unknown: bool,
    /// Names of the groups that exist in 1Password.
    pub existing_groups: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Operation {
    /// Invite: `POST /Users`.
    CreateUser(NewUser),
    /// `active=true` on a suspended user (rehire).
    Reactivate,
    /// `active=false` (leaver).
    Suspend,
    /// `DELETE` (leaver, only when allowed by configuration).
    Delete,
    /// Given name, family name and display name, always sent together: the bridge
    /// re-splits a display name sent alone and would overwrite the family name.
    UpdateName {
        given_name: String,
        family_name: String,
        display_name: String,
    },
    /// userName and primary e-mail; only ever planned for an active user.
    UpdateEmail {
        email: String,
    },
    CreateGroup(String),
    AddToGroup(String),
    RemoveFromGroup(String),
}

impl Operation {
    /// `create_user`, `add_to_group`, …: the audit log's and the metrics' name for it.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    fn group(&self) -> Option<&str> {
        match self {
            Operation::CreateGroup(g) | Operation::AddToGroup(g) | Operation::RemoveFromGroup(g) => Some(g),
            _ => None,
        }
    }
}

/// Why an event changes nothing. Each is a normal, expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Skip {
    /// This exact event was converged already (redelivery).
    Duplicate,
    /// Nothing says the person is current, and they have no 1Password account.
    UnknownPerson,
    /// Left (or out of scope), and no 1Password account to suspend.
    NoAccount,
    /// The invitation is due later (the start date is ahead).
    NotYetDue,
    /// Out of scope, report only: the account is left alone.
    OutOfScope,
    /// Already in the desired state.
    NoChange,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Something worth reporting that is not an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The source changed the e-mail of a suspended user; changing it could make 1Password
    /// treat them as a new person on reactivation, so it was left alone.
    EmailChangeSkippedSuspended,
    /// A leaver was already suspended.
    AlreadySuspended,
    /// The bridge shows no memberships, so the groups the person must leave could not be
    /// checked: removals were refused (docs/decisions.md, "Managed groups").
    GroupRemovalsRefused { groups: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Apply { operations: Vec<Operation>, notes: Vec<Note> },
    Skip { reason: Skip, notes: Vec<Note> },
}

/// Events the planner refuses: nothing of the plan is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the plan would touch the protected group {group:?}; nothing was changed")]
    ProtectedGroup { group: String },
    #[error("cannot invite without a work e-mail")]
    MissingEmail,
    #[error("the 1Password account {email} is protected (PROTECTED_ACCOUNTS); nothing was changed")]
    ProtectedAccount { email: String },
    /// An account nobody linked to this person, found by e-mail, that may not be adopted:
    /// suspended (never reactivated for a stranger), or found by a leaver, mover or rehire.
    #[error("the 1Password account with this e-mail is not linked to this person and is {why}; left alone for a human")]
    UnlinkedAccount { why: &'static str },
    /// The 1Password account with this e-mail was provisioned, from the same connection, for
    /// a different person (an address reused after a leaver, say). Adopting it would hand one person another's
    /// account and vault, so a human decides.
    #[error(
        "the 1Password account with this e-mail belongs to another person (externalId {external_id}); nothing was changed"
    )]
    AccountOfAnotherPerson { external_id: String },
}

pub fn plan(desired: &DesiredState, actual: &Actual, policy: &PlanPolicy) -> Result<Plan, Refusal> {
    if !desired.attribute_only {
        refuse_account_of_another_person(&desired.person, actual)?;
    }
    refuse_protected_account(desired, actual, policy)?;
    let mut operations = Vec::new();
    let mut notes = Vec::new();
    let attributes = &desired.attributes;
    match (desired.access, &actual.user) {
        (Access::Granted, None) => {
            operations.push(Operation::CreateUser(new_user(&desired.person, attributes)?));
            // A new user is in no group, whatever the bridge can show.
            let new = Actual { member_of: BTreeSet::new(), memberships_unknown: false, ..actual.clone() };
            group_changes(&desired.groups, &new, &mut operations, &mut notes);
        }
        (Access::Granted, Some(user)) => {
            if !user.active {
                operations.push(Operation::Reactivate);
            }
            // Reactivated first, so an e-mail change then applies to an active user.
            profile_changes(attributes, user, true, &mut operations, &mut notes);
            group_changes(&desired.groups, actual, &mut operations, &mut notes);
        }
        (Access::Revoked, None) => return Ok(Plan::Skip { reason: Skip::NoAccount, notes }),
        (Access::Revoked, Some(user)) => {
            if user.active {
                operations.push(Operation::Suspend);
            } else {
                notes.push(Note::AlreadySuspended);
            }
            if policy.leaver_removes_groups {
                group_changes(&desired.groups, actual, &mut operations, &mut notes);
            }
            if policy.allow_delete {
                operations.push(Operation::Delete);
            }
        }
        (Access::NotYet, None) => return Ok(Plan::Skip { reason: Skip::NotYetDue, notes }),
        (Access::Keep, None) => return Ok(Plan::Skip { reason: Skip::UnknownPerson, notes }),
        (Access::NotYet | Access::Keep, Some(user)) => {
            profile_changes(attributes, user, user.active, &mut operations, &mut notes);
            group_changes(&desired.groups, actual, &mut operations, &mut notes);
        }
        (Access::Untouched, _) => return Ok(Plan::Skip { reason: Skip::OutOfScope, notes }),
    }

    if let Some(group) = operations.iter().filter_map(Operation::group).find(|g| policy.is_protected(g)) {
        return Err(Refusal::ProtectedGroup { group: group.to_owned() });
    }
    if operations.is_empty() {
        Ok(Plan::Skip { reason: Skip::NoChange, notes })
    } else {
        Ok(Plan::Apply { operations, notes })
    }
}

/// An account whose externalId names another person: the address was reused for someone
/// else, or another connection (HR and Okta describing one human) owns it. The first link
/// wins; the other is refused and reported, never fought over (docs/decisions.md, "Trust").
fn refuse_account_of_another_person(person: &PersonKey, actual: &Actual) -> Result<(), Refusal> {
    let Some(external_id) = actual.user.as_ref().and_then(|u| u.external_id.as_deref()) else { return Ok(()) };
    if !external_id.is_empty() && external_id != person.to_string() {
        return Err(Refusal::AccountOfAnotherPerson { external_id: external_id.to_owned() });
    }
    Ok(())
}

/// No path touches a protected account, nor invites someone with its address.
fn refuse_protected_account(desired: &DesiredState, actual: &Actual, policy: &PlanPolicy) -> Result<(), Refusal> {
    let existing = actual.user.as_ref().map(|u| u.user_name.as_str());
    let wanted = desired.attributes.work_email.as_deref();
    match [existing, wanted].into_iter().flatten().find(|email| policy.is_protected_account(email)) {
        Some(email) => Err(Refusal::ProtectedAccount { email: crate::telemetry::mask_email(email) }),
        None => Ok(()),
    }
}

/// Given, family and display name from whatever the source gave.
pub fn names(a: &Attributes) -> Option<(String, String, String)> {
    let trimmed = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (given, family) = match (trimmed(&a.given_name), trimmed(&a.family_name)) {
        (Some(given), family) => (given, family.unwrap_or_default()),
        (None, _) => {
            let display = trimmed(&a.display_name)?;
            // The bridge's own rule: split at the first space.
            match display.split_once(' ') {
                Some((given, family)) => (given.to_owned(), family.trim().to_owned()),
                None => (display, String::new()),
            }
        }
    };
    let display = trimmed(&a.display_name)
        .unwrap_or_else(|| if family.is_empty() { given.clone() } else { format!("{given} {family}") });
    Some((given, family, display))
}

fn email(attributes: &Attributes) -> Option<String> {
    attributes.work_email.as_deref().map(str::trim).filter(|e| e.contains('@')).map(str::to_owned)
}

fn new_user(person: &PersonKey, attributes: &Attributes) -> Result<NewUser, Refusal> {
    let email = email(attributes).ok_or(Refusal::MissingEmail)?;
    let (given, family, display) = names(attributes).unwrap_or_else(|| {
        let local = email.split('@').next().unwrap_or_default().to_owned();
        (local.clone(), String::new(), local)
    });
    Ok(NewUser::new(&email, &person.to_string(), &given, &family, &display))
}

fn profile_changes(
    attributes: &Attributes,
    user: &ScimUser,
    email_change_allowed: bool,
    operations: &mut Vec<Operation>,
    notes: &mut Vec<Note>,
) {
    if let Some((given_name, family_name, display_name)) = names(attributes) {
        let current = user.name.clone().unwrap_or_default();
        let differs = current.given_name.as_deref() != Some(given_name.as_str())
            || current.family_name.as_deref().unwrap_or_default() != family_name
            || user.display_name.as_deref() != Some(display_name.as_str());
        if differs {
            operations.push(Operation::UpdateName { given_name, family_name, display_name });
        }
    }
    if let Some(email) = email(attributes)
        && !email.eq_ignore_ascii_case(&user.user_name)
    {
        if email_change_allowed {
            operations.push(Operation::UpdateEmail { email });
        } else {
            notes.push(Note::EmailChangeSkippedSuspended);
        }
    }
}

/// Adds what is desired and missing, removes what is managed, present and not desired.
/// Groups no rule manages are left exactly as they are. Without memberships, every desired
/// group is added and the removals that may be due are refused with a note.
fn group_changes(desired: &Desired, actual: &Actual, operations: &mut Vec<Operation>, notes: &mut Vec<Note>) {
    let has = |set: &BTreeSet<String>, name: &str| set.iter().any(|g| g.eq_ignore_ascii_case(name));
    let unknown = actual.memberships_unknown;
    for group in &desired.groups {
        if unknown || !has(&actual.member_of, group) {
            if !has(&actual.existing_groups, group) {
                operations.push(Operation::CreateGroup(group.clone()));
            }
            operations.push(Operation::AddToGroup(group.clone()));
        }
    }
    if !desired.complete {
        return;
    }
    let not_desired = |group: &&String| !has(&desired.groups, group);
    if unknown {
        let unchecked: Vec<String> = desired.managed.iter().filter(not_desired).cloned().collect();
        if !unchecked.is_empty() {
            notes.push(Note::GroupRemovalsRefused { groups: unchecked });
        }
        return;
    }
    for group in actual.member_of.iter().filter(|group| has(&desired.managed, group)).filter(not_desired) {
        operations.push(Operation::RemoveFromGroup(group.clone()));
    }
}

#[cfg(test)]
mod tests;
