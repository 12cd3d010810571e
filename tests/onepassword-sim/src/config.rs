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

/// What `POST /Groups` does when a group with the same displayName (case-insensitive) is
/// already managed. Unmanaged built-in groups are adopted by name in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateGroupName {
    /// 409 with `scimType: uniqueness` (what RFC 7644 suggests for a uniqueness clash).
    Reject409,
    /// Create a second group with the same name and a new id, as scim2-server and many RFC
    /// servers do. Renaming a group onto a taken name is allowed too.
    Allow,
    /// Answer with the existing group (the oldest by `meta.created` when there are several):
    /// the create status, its original `id` and `meta.created`, and nothing changed (the
    /// request's `members` and `externalId` are ignored). Observed once on hosted provisioning.
    ReturnExisting,
}

/// Where group responses carry `members` (never for an empty group: RFC 7643 treats an empty
/// multi-valued attribute as unassigned, and the recorded empty groups had no `members` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMembers {
    /// In listings, `GET /Groups/{id}` and the answers to POST/PATCH/PUT, unless the request
    /// drops them with `excludedAttributes=members` or leaves them out of `attributes=`.
    Always,
    /// Never: membership is visible only in the users' `groups` (if `user_groups` allows).
    Never,
    /// Only in `GET /Groups/{id}`; never in `GET /Groups` listings or POST/PATCH/PUT answers.
    OnlyById,
}

/// The shape of a user's `groups` attribute. A user in no managed group never carries the key
/// (RFC 7643: an empty multi-valued attribute is unassigned), so one user alone cannot tell a
/// client "in no group" from "groups not supported".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserGroups {
    /// Users never carry `groups`.
    Off,
    /// `[{"value": id, "ref": ".../Groups/id"}]`: key `ref` (not `$ref`), no `display`, as in
    /// 1Password's self-hosted example answer.
    Ref,
    /// RFC 7643 style `[{"value": id, "display": name, "$ref": ".../Groups/id"}]`, as the hosted
    /// `/Schemas` declares it. `$ref` follows `meta_location` like every other reference (off
    /// by default: no recorded answer carries a `$ref`), so the default shape is
    /// `{"value", "display"}`.
    DollarRef,
}

/// What a `filter` query parameter does on `GET /Users` and `GET /Groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMode {
    /// Filters are evaluated (ServiceProviderConfig: `filter.supported: true`).
    Supported,
    /// The filter is not even parsed: the answer is the unfiltered listing page, `totalResults`
    /// counting everything (ServiceProviderConfig still says `supported: true`).
    Ignored,
    /// Every filter is answered with 400 `invalidFilter` (ServiceProviderConfig:
    /// `supported: false`).
    Rejected,
}

impl FilterMode {
    /// What `/ServiceProviderConfig` advertises as `filter.supported`.
    pub fn advertised(self) -> bool {
        self != FilterMode::Rejected
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
    /// [UNK] what `filter` does. Hosted provisioning advertises `filter.supported: true`
    /// (maxResults 10000) [OBS], but no recorded request used a filter; one third party claims
    /// the bridge answers filters with 400 [3RD]; a bridge could also ignore them. Default:
    /// `Supported` (what is advertised).
    pub filters: FilterMode,
    /// [UNK] whether `externalId` is stored, returned and filterable.
    pub store_external_id: bool,
    /// [OBS, low–medium confidence] `POST /Groups` with a displayName already in use. One
    /// recorded hosted create answered 200 with a group created minutes before the request
    /// (older `id` and `meta.created`): the existing group. Self-hosted: unknown; no 409 was
    /// ever recorded. Default: `ReturnExisting`.
    pub duplicate_group_name: DuplicateGroupName,
    /// [UNK] where group responses include `members`. Recorded hosted group answers never have
    /// `members`, but those groups were most likely empty; hosted `/Schemas` declares
    /// `members` as `returned: default`. Default: `Always`.
    pub group_members: GroupMembers,
    /// [UNK] whether and how users carry `groups`. Hosted `/Schemas` declares `groups` with
    /// `value`, `$ref` and `display`, but no recorded user was in a group; 1Password's
    /// self-hosted example shows `{"value", "ref"}` (older bridge) [DOC]. Default: `DollarRef`
    /// (the hosted schema; the simulator models hosted provisioning elsewhere too).
    pub user_groups: UserGroups,
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
    /// [OBS] `filter.maxResults` advertised and enforced as the largest page of `/Users` and
    /// `/Groups`: a larger `count` gets a short page, and only `totalResults` says whether more
    /// pages follow.
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
            filters: FilterMode::Supported,
            store_external_id: true,
            duplicate_group_name: DuplicateGroupName::ReturnExisting,
            group_members: GroupMembers::Always,
            user_groups: UserGroups::DollarRef,
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
