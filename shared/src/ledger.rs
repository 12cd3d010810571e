//! The ledger: what the SCIM bridge cannot tell us. The bridge shows an invited person as
//! `active: true`, exactly like one who accepted, so we remember whom we invited and when.
//! Per person we also keep the link to their 1Password account, their last known state
//! folded from events (the truth of senders without an API), the event ids recently
//! converged (a redelivery costs no bridge call) and the next due action (a date HR set);
//! besides, the Events API cursor and the mass-leaver brake's counters.
//!
//! One DynamoDB table (pk/sk) with a sparse index over pending invitations, and an
//! in-memory twin with the same semantics for unit tests and the local stack.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{PersonKey, SourceKind};
use crate::scim::ScimUserId;
use crate::truth::KnownState;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod dynamo;
mod memory;

pub use dynamo::{DUE_INDEX, DynamoLedger, PENDING_INDEX};
pub use memory::InMemoryLedger;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("ledger record for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// How many converged event ids a person's record remembers: enough for any burst of
/// redeliveries; an older id arriving again only costs a converge that changes nothing.
pub const RECENT_EVENTS: usize = 20;

/// What we know about a person. Written only by the worker, and the worker handles one
/// person at a time (the FIFO group is the person), so a plain overwrite is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    pub person: PersonKey,
    pub source_kind: SourceKind,
    /// The 1Password user id, once known: the link the trust rules rely on.
    pub user_id: Option<ScimUserId>,
    /// The person's last known state, folded from events.
    pub known: KnownState,
    /// Source event ids converged most recently, oldest first, at most [`RECENT_EVENTS`].
    pub recent_events: Vec<String>,
    /// The next time the person's desired state changes by itself (a date HR set).
    pub due: Option<Due>,
    pub updated_at: DateTime<Utc>,
}

impl PersonRecord {
    pub fn new(person: PersonKey, source_kind: SourceKind, now: DateTime<Utc>) -> Self {
        PersonRecord {
            person,
            source_kind,
            user_id: None,
            known: KnownState::default(),
            recent_events: Vec::new(),
            due: None,
            updated_at: now,
        }
    }

    /// True when this event was converged already (an exact redelivery).
    pub fn recognises(&self, event_id: &str) -> bool {
        self.recent_events.iter().any(|id| id == event_id)
    }

    /// Remembers a converged event id, forgetting the oldest beyond [`RECENT_EVENTS`].
    pub fn remember(&mut self, event_id: &str) {
        if !self.recognises(event_id) {
            self.recent_events.push(event_id.to_owned());
        }
        let excess = self.recent_events.len().saturating_sub(RECENT_EVENTS);
        self.recent_events.drain(..excess);
    }
}

/// When a person's desired state next changes, and what should happen then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// In the connection's local time, e.g. "suspend at 2026-12-15 00:00 Europe/London
    /// (termination date 2026-12-15)".
    pub intent: String,
}

/// A due action as the sweep reads it from the due-time index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAction {
    pub person: PersonKey,
    pub source_kind: SourceKind,
    pub due: Due,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum InvitationStatus {
    /// Sent and not known to be accepted. Only these are in the pending index.
    Pending,
    Accepted,
    /// The person left (or was deleted) before accepting.
    Cleared,
    /// Re-issued the maximum number of times; a human has been told.
    Escalated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub person: PersonKey,
    pub user_id: ScimUserId,
    pub email: String,
    /// When the first invitation was sent.
    pub invited_at: DateTime<Utc>,
    /// When the latest invitation (first or re-issued) was sent.
    pub last_sent_at: DateTime<Utc>,
    /// The start date's instant when the invitation went out before it: until then the
    /// invitation is neither re-issued nor escalated.
    pub counts_from: Option<DateTime<Utc>>,
    /// Re-issues so far (0 after the first invitation).
    pub reissues: u32,
    pub status: InvitationStatus,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError>;

    /// Writes the person's record, and keeps it in the due-time index exactly while
    /// `record.due` is set.
    async fn save_person(&self, record: &PersonRecord) -> Result<(), LedgerError>;

    /// Due actions due at or before `due_by`, earliest first (then by person key), through
    /// the due-time index; after `after` when given (the last action of the previous page).
    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError>;

    /// Links a 1Password account to a person for good (the reverse link): conditional on
    /// the account being linked to nobody or to this person already. Returns false, and
    /// changes nothing, when another person holds it — so one account is never handed to
    /// two people, even by a bridge that drops `externalId`.
    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError>;

    /// Takes the person's lease until `until`, so the worker and invite-retry never act on
    /// one person's account at once (a toggle racing a suspension could reactivate a
    /// leaver). Conditional: free, expired at `now`, or already `holder`'s. False when
    /// someone else holds it.
    async fn try_lease(
        &self,
        person: &PersonKey,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError>;

    /// Gives the lease back, if `holder` still holds it.
    async fn release_lease(&self, person: &PersonKey, holder: &str) -> Result<(), LedgerError>;

    /// The person a 1Password account is linked to, if any.
    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError>;

    /// Takes the action out of the index. Conditional on the person's due time still being
    /// `action.due.at`: returns false and changes nothing when the worker has moved or
    /// cancelled it meanwhile (HR changed a date), so the newer plan is never lost.
    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError>;

    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError>;

    /// Starts tracking a new invitation (joiner, rehire). Conditional: returns false and
    /// changes nothing when a pending invitation for this person already exists.
    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError>;

    /// Sets the status of the person's invitation (accepted, cleared, escalated); a
    /// non-pending status removes it from the pending index. No-op when there is none.
    async fn overwrite_invitation_status(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<(), LedgerError>;

    /// Moves the person's invitation from pending to `status` (accepted, cleared,
    /// escalated) and out of the pending index. Conditional on it still being pending:
    /// returns false and changes nothing when it is not (say the worker cleared it for a
    /// leaver meanwhile), so a decision taken on a pending invitation never overwrites a
    /// newer one.
    async fn settle_invitation_if_pending(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<bool, LedgerError>;

    /// Records a re-issue: `last_sent_at = at`, `reissues += 1`. Conditional on the
    /// invitation still being pending with the `expected_reissues` count, so two runs never
    /// both count the same re-issue. Returns false when the condition failed.
    async fn record_reissue_if_unchanged(
        &self,
        person: &PersonKey,
        expected_reissues: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError>;

    /// Pending invitations whose latest invitation was sent before `sent_before`, oldest
    /// first, through the sparse index (no scan). At most `limit`.
    async fn pending_invitations(
        &self,
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Invitation>, LedgerError>;

    /// Every pending invitation (for matching sign-ins), through the same index.
    async fn all_pending_invitations(&self) -> Result<Vec<Invitation>, LedgerError>;

    /// The Events API cursor, opaque.
    async fn events_cursor(&self) -> Result<Option<String>, LedgerError>;
    async fn set_events_cursor(&self, cursor: &str) -> Result<(), LedgerError>;

    /// Remembers that the 1Password user `user_id` has signed in at least once, so
    /// invite-retry never suspends (toggles) that account later, whatever becomes of the
    /// invitation. User ids compare case-insensitively (the Events API and the bridge may
    /// spell them differently). Keeps the first time recorded; never forgotten.
    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError>;

    /// When `user_id` was first recorded signing in, or `None` if never.
    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError>;

    /// Mass-leaver brake: counts one suspension in the fixed window `window_id` unless
    /// `limit` suspensions are already counted there. Returns false (and counts nothing)
    /// when the window is full.
    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError>;
}
