//! Every behaviour switch of the simulator. `Default` is the most plausible real behaviour:
//! what was observed where something was observed, our best guess elsewhere. The markers below
//! ([DOC], [OBS], [3RD], [UNK]) say how firm each fact is; they and their public sources are
//! explained in docs/external-facts.md ("1Password SCIM bridge").

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Groups 1Password never lets provisioning change (matched case-insensitively).
pub const BUILT_IN_PROTECTED_GROUPS: [&str; 4] = ["Owners", "Administrators", "Recovery", "Provision Managers"];

/// Built-in groups that exist in every account but are not managed by provisioning.
pub const BUILT_IN_UNMANAGED_GROUPS: [&str; 2] = ["Team Members", "Security"];

/// Status code of a successful `POST /Users` or `POST /Groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateStatus {
    /// 200 OK, as recorded against hosted provisioning.
    #[serde(rename = "200")]
    Ok200,
    /// 201 Created, as RFC 7644 asks.
    #[serde(rename = "201")]
    Created201,
}

impl CreateStatus {
    pub fn code(self) -> u16 {
        match self {
            CreateStatus::Ok200 => 200,
            CreateStatus::Created201 => 201,
        }
    }
}

/// What `POST /Users` does when the userName is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictMode {
    /// 409 with `scimType: uniqueness`.
    Reject409,
    /// Quietly return the existing user (no new invitation).
    LinkExisting,
}

/// What happens when a client changes the e-mail/userName of a suspended user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspendedEmailChange {
    /// Apply it and record a violation (what 1Password's docs warn about).
    Record,
    /// Refuse with 400 `invalidValue` and change nothing.
    Reject,
}

/// Status of the SCIM error when a client tries to change a protected group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectedGroupError {
    #[serde(rename = "403")]
    Forbidden403,
    #[serde(rename = "400")]
    BadRequest400,
}

impl ProtectedGroupError {
    pub fn code(self) -> u16 {
        match self {
            ProtectedGroupError::Forbidden403 => 403,
            ProtectedGroupError::BadRequest400 => 400,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Bearer token of the SCIM bridge.
    pub scim_token: String,
    /// Bearer token of the Events API; `None` turns the Events API off (404).
    pub events_token: Option<String>,
    /// Serve the `/_sim/` control API.
    pub control_api: bool,
    /// [UNK] 200 (observed on hosted) or 201.
    pub create_status: CreateStatus,
    /// [UNK] duplicate userName on `POST /Users`.
    pub conflict: ConflictMode,
    /// [DOC says don't; effect UNK] changing a suspended user's e-mail.
    pub suspended_email_change: SuspendedEmailChange,
    /// [UNK] status of the error for changes to protected groups.
    pub protected_group_error: ProtectedGroupError,
    /// More protected group names on top of [`BUILT_IN_PROTECTED_GROUPS`].
    pub extra_protected_groups: Vec<String>,
    /// [UNK] lifetime of a provisioning invitation (ordinary invitations: 5 days, DOC).
    pub invite_ttl: Duration,
    /// [UNK] `active=false` then `active=true` on a not-yet-accepted user sends a new invitation.
    pub reactivate_resends_invite: bool,
    /// [3RD] `false` answers every `filter` with 400 `invalidFilter`, to exercise client fallbacks.
    pub filter_support: bool,
    /// [UNK] whether `externalId` is stored, returned and filterable.
    pub store_external_id: bool,
    /// [UNK] whether group responses include `members`.
    pub group_members_in_responses: bool,
    /// [OBS] a displayName change rewrites name.givenName/familyName (split at the first space).
    pub display_name_rewrites_name: bool,
    /// [OBS] ResourceTypes lists the User endpoint as `/scim/v2/User` and the list has
    /// `startIndex: 0`. Turn off to publish RFC-style relative endpoints (`/Users`, `/Groups`).
    pub observed_discovery_quirks: bool,
    /// [OBS: absent] add `meta.location` to users and groups and `$ref` to member/group
    /// references (RFC 7643 wants them; the recorded bridge sends neither).
    pub meta_location: bool,
    /// [UNK] `PUT /Users/{id}` and `PUT /Groups/{id}` accepted (405 when off).
    pub put_supported: bool,
    /// [DOC] delay between accepting an invitation and the bridge confirming the account
    /// (self-hosted ConfirmationWatcher: 300 s; hosted: immediate). Zero = immediate.
    pub confirmation_delay: Duration,
    /// [UNK] page size when the client sends no `count`; `None` returns everything.
    pub default_page_size: Option<usize>,
    /// [OBS] `filter.maxResults` advertised and enforced as the largest page.
    pub max_results: usize,
    /// `None`: the clock follows real time (plus any advance). `Some(t)`: frozen at `t`,
    /// moving only when advanced.
    pub clock_start: Option<DateTime<Utc>>,
    /// Operations-log entries kept (oldest dropped first).
    pub op_log_capacity: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            scim_token: "sim-scim-token".to_owned(),
            events_token: Some("sim-events-token".to_owned()),
            control_api: true,
            create_status: CreateStatus::Ok200,
            conflict: ConflictMode::Reject409,
            suspended_email_change: SuspendedEmailChange::Record,
            protected_group_error: ProtectedGroupError::Forbidden403,
            extra_protected_groups: Vec::new(),
            invite_ttl: Duration::from_secs(5 * 24 * 3600),
            reactivate_resends_invite: true,
            filter_support: true,
            store_external_id: true,
            group_members_in_responses: true,
            display_name_rewrites_name: true,
            observed_discovery_quirks: true,
            meta_location: false,
            put_supported: true,
            confirmation_delay: Duration::ZERO,
            default_page_size: None,
            max_results: 10_000,
            clock_start: None,
            op_log_capacity: 100_000,
        }
    }
}

impl SimConfig {
    /// Whether `name` is a group provisioning must never change.
    pub fn is_protected_group(&self, name: &str) -> bool {
        BUILT_IN_PROTECTED_GROUPS
            .iter()
            .copied()
            .chain(self.extra_protected_groups.iter().map(String::as_str))
            .any(|protected| protected.eq_ignore_ascii_case(name.trim()))
    }
}
