//! The ledger: what the SCIM bridge cannot tell us. The bridge shows an invited person as
//! `active: true`, exactly like one who accepted, so we remember whom we invited and when;
//! we also keep the last event applied per person (idempotency, stale-event detection),
//! the Events API cursor and the mass-leaver brake's counters.
//!
//! One DynamoDB table (pk/sk) with a sparse index over pending invitations, and an
//! in-memory twin with the same semantics for unit tests and the local stack.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::PersonKey;
use crate::scim::ScimUserId;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod dynamo;
mod memory;

pub use dynamo::{DynamoLedger, PENDING_INDEX};
pub use memory::InMemoryLedger;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    #[error("ledger record for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What we know about a person we have acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    pub person: PersonKey,
    /// The 1Password user id, once known.
    pub user_id: Option<ScimUserId>,
    pub last_event_id: String,
    pub last_effective_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    /// Re-issues so far (0 after the first invitation).
    pub reissues: u32,
    pub status: InvitationStatus,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError>;

    /// Records an applied event. Conditional: never moves `last_effective_at` backwards, so
    /// a late, older event cannot overwrite a newer one. Returns false when the condition
    /// failed (a newer event was recorded meanwhile).
    async fn record_applied_if_newer(&self, record: &PersonRecord) -> Result<bool, LedgerError>;

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

    /// Mass-leaver brake: counts one suspension in the fixed window `window_id` unless
    /// `limit` suspensions are already counted there. Returns false (and counts nothing)
    /// when the window is full.
    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError>;
}
