//! The account as 1Password holds it: users with their real (hidden) lifecycle state, groups,
//! and the records tests read back (outbox, violations, account changes, events).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state 1Password keeps internally. SCIM shows only `active` (see [`AccountState::scim_active`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    /// Provisioned, invitation sent, not accepted yet (CLI: TRANSFER_STARTED).
    Invited,
    /// Invitation accepted, waiting for the bridge to confirm the account.
    Pending,
    /// A real account in use.
    Active,
    /// A real account, suspended.
    Suspended,
    /// Deprovisioned before accepting (CLI: TRANSFER_SUSPENDED).
    InviteSuspended,
}

impl AccountState {
    /// The only thing SCIM reveals: invited, pending and active all read `active: true`.
    pub fn scim_active(self) -> bool {
        matches!(self, AccountState::Invited | AccountState::Pending | AccountState::Active)
    }

    /// Whether a person has accepted and owns a real account (suspending it locks them out).
    pub fn is_accepted(self) -> bool {
        matches!(self, AccountState::Pending | AccountState::Active | AccountState::Suspended)
    }

    pub fn is_suspended(self) -> bool {
        matches!(self, AccountState::Suspended | AccountState::InviteSuspended)
    }
}

/// What tests see of a user's lifecycle: the stored state with time applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Invited,
    InvitationExpired,
    Pending,
    Active,
    Suspended,
    InviteSuspended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub formatted: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<Email>,
    pub preferred_language: Option<String>,
    pub state: AccountState,
    pub created_at: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub invitation_sent_at: Option<DateTime<Utc>>,
    pub invitation_expires_at: Option<DateTime<Utc>>,
    pub invitations_sent: u32,
    pub accepted_at: Option<DateTime<Utc>>,
    /// When a `Pending` user becomes `Active`.
    pub confirms_at: Option<DateTime<Utc>>,
    /// Ids of the groups the user is a member of (kept in step with `Group::members`).
    pub group_ids: BTreeSet<String>,
}

impl User {
    /// The stored state with time applied (confirmation and expiry happen lazily).
    pub fn lifecycle(&self, now: DateTime<Utc>) -> Lifecycle {
        match self.effective_state(now) {
            AccountState::Invited if self.invitation_expired(now) => Lifecycle::InvitationExpired,
            AccountState::Invited => Lifecycle::Invited,
            AccountState::Pending => Lifecycle::Pending,
            AccountState::Active => Lifecycle::Active,
            AccountState::Suspended => Lifecycle::Suspended,
            AccountState::InviteSuspended => Lifecycle::InviteSuspended,
        }
    }

    pub fn effective_state(&self, now: DateTime<Utc>) -> AccountState {
        match (self.state, self.confirms_at) {
            (AccountState::Pending, Some(at)) if now >= at => AccountState::Active,
            (state, _) => state,
        }
    }

    pub fn invitation_expired(&self, now: DateTime<Utc>) -> bool {
        self.invitation_expires_at.is_some_and(|at| now >= at)
    }

    /// The e-mail 1Password writes to: the primary one, else the first.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails.iter().find(|e| e.primary == Some(true)).or_else(|| self.emails.first()).map(|e| e.value.as_str())
    }

    pub fn full_name(&self) -> String {
        self.display_name.clone().or_else(|| self.formatted.clone()).unwrap_or_else(|| self.user_name.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Shown through SCIM. Built-in groups are not, until a client creates one by name.
    pub managed: bool,
    pub members: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationKind {
    First,
    Repeat,
}

/// One invitation e-mail 1Password sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationMail {
    pub user_id: String,
    pub email: String,
    pub at: DateTime<Utc>,
    pub kind: InvitationKind,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// The e-mail/userName of a suspended user was changed (1Password may then treat the person
    /// as someone new after reactivation).
    SuspendedUserEmailChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub user_id: String,
    pub at: DateTime<Utc>,
    pub old_value: String,
    pub new_value: String,
    /// `rejected` when the simulator refused the change (switch), `applied` otherwise.
    pub outcome: String,
}

/// How a request reached a user's account state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Patch,
    Put,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountAction {
    Suspend,
    Reactivate,
}

/// A suspension or reactivation of an accepted (real) account. Tests assert these never happen
/// by accident, e.g. while re-sending an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    pub user_id: String,
    pub user_name: String,
    pub action: AccountAction,
    pub via: Via,
    pub at: DateTime<Utc>,
}

/// A sign-in attempt as the Events API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInAttempt {
    pub uuid: String,
    pub session_uuid: String,
    pub timestamp: DateTime<Utc>,
    pub category: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub country: String,
    pub target_user: EventUser,
    pub client: EventClient,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUser {
    pub uuid: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventClient {
    pub app_name: String,
    pub app_version: String,
    pub platform_name: String,
    pub platform_version: String,
    pub os_name: String,
    pub os_version: String,
    pub ip_address: String,
}

/// An audit event as the Events API reports it (provisioning actions only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub uuid: String,
    pub timestamp: DateTime<Utc>,
    pub actor_uuid: String,
    pub action: String,
    pub object_type: String,
    pub object_uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_details: Option<EventUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux_info: Option<String>,
}

/// A user as the control API shows it: SCIM fields plus the hidden lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub lifecycle: Lifecycle,
    /// What SCIM shows as `active`.
    pub scim_active: bool,
    pub created_at: DateTime<Utc>,
    pub invitation_sent_at: Option<DateTime<Utc>>,
    pub invitation_expires_at: Option<DateTime<Utc>>,
    pub invitations_sent: u32,
    pub accepted_at: Option<DateTime<Utc>>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub managed: bool,
    pub protected: bool,
    pub members: Vec<String>,
}

/// A user to put into the account directly (not through SCIM: no invitation mail).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedUser {
    pub id: Option<String>,
    pub user_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub state: Option<SeedState>,
    /// When the invitation went out (invited users); defaults to now.
    pub invited_at: Option<DateTime<Utc>>,
}

impl SeedUser {
    pub fn new(user_name: impl Into<String>, state: SeedState) -> Self {
        SeedUser { user_name: user_name.into(), state: Some(state), ..SeedUser::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedState {
    Invited,
    /// Invited so long ago that the invitation has expired.
    InvitationExpired,
    Active,
    Suspended,
    InviteSuspended,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedGroup {
    pub id: Option<String>,
    pub display_name: String,
    pub external_id: Option<String>,
    /// `false` puts it in the account without exposing it through SCIM. Default `true`.
    pub managed: Option<bool>,
    /// User ids or userNames.
    pub members: Vec<String>,
    /// Add a new group even when one with this name exists (by default the existing one is
    /// updated): how tests get two groups with the same name.
    pub duplicate: bool,
    /// `meta.created` of a new group; default now.
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    pub users: Vec<SeedUser>,
    pub groups: Vec<SeedGroup>,
}

/// SCIM traffic the simulator served (every SCIM bridge request, whatever its prefix; not the
/// Events API, not the `/_sim/` control API). Bytes are response bodies only, no headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub requests: u64,
    pub response_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    pub user_ids: Vec<String>,
    pub group_ids: Vec<String>,
}
