//! Who has accepted: successful sign-ins from the Events API, read from the cursor stored in
//! the ledger and matched to pending invitations by 1Password user id, falling back to the
//! e-mail, case-insensitively. Every user seen signing in is remembered in the ledger, so
//! their account is never toggled later.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::event::PersonKey;
use crate::events_api::{EventsApiError, PageRequest, RETENTION_DAYS, SignInAttempt, SignInEvents};
use crate::ledger::{Invitation, InvitationStatus, Ledger, LedgerError};
use crate::scim::ScimUserId;
use crate::telemetry::mask_email;

/// A sign-in may be stamped slightly before our own record of the invitation (two clocks).
const CLOCK_SKEW: ChronoDuration = ChronoDuration::minutes(10);
/// Sign-in records written at once: a first run may see thousands of users.
const SIGN_IN_WRITES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Events(#[from] EventsApiError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Pending invitations keyed for matching: by user id and by e-mail, both lower-cased.
#[derive(Default)]
pub struct PendingIndex {
    by_user_id: HashMap<String, PersonKey>,
    by_email: HashMap<String, PersonKey>,
    invitations: HashMap<PersonKey, Invitation>,
}

impl PendingIndex {
    pub fn new(pending: Vec<Invitation>) -> Self {
        let mut index = PendingIndex::default();
        for invitation in pending {
            if !invitation.user_id.as_str().is_empty() {
                index.by_user_id.insert(invitation.user_id.as_str().to_lowercase(), invitation.person.clone());
            }
            index.by_email.insert(invitation.email.trim().to_lowercase(), invitation.person.clone());
            index.invitations.insert(invitation.person.clone(), invitation);
        }
        index
    }

    /// The pending invitation this successful sign-in accepts, if any (removed from the
    /// index, so each is reported once).
    pub fn take_match(&mut self, attempt: &SignInAttempt) -> Option<Invitation> {
        if !attempt.is_success() {
            return None;
        }
        let by_id = self.by_user_id.get(&attempt.target_user.uuid.to_lowercase()).cloned();
        let person = by_id.or_else(|| self.by_email.get(&attempt.target_user.email.trim().to_lowercase()).cloned())?;
        let invitation = self.invitations.get(&person)?;
        // A sign-in from before this invitation belongs to an earlier account life.
        if attempt.timestamp + CLOCK_SKEW < invitation.invited_at {
            return None;
        }
        let invitation = self.invitations.remove(&person)?;
        self.by_user_id.remove(&invitation.user_id.as_str().to_lowercase());
        self.by_email.remove(&invitation.email.trim().to_lowercase());
        Some(invitation)
    }
}

/// Reads sign-ins page by page, marks matching invitations accepted and stores the cursor
/// after every page (a page read twice after a crash only marks the same people again).
pub struct SignInFeed {
    events: Arc<dyn SignInEvents>,
    ledger: Arc<dyn Ledger>,
    page_limit: u32,
    index: Option<PendingIndex>,
    /// Users (lower-cased ids) whose sign-in this feed has recorded in the ledger.
    recorded: HashSet<String>,
    /// `None` until the first page: then the stored cursor (or a reset) is used.
    next: Option<PageRequest>,
    last_caught_up: Option<Instant>,
}

impl SignInFeed {
    pub fn new(events: Arc<dyn SignInEvents>, ledger: Arc<dyn Ledger>, page_limit: u32) -> Self {
        SignInFeed {
            events,
            ledger,
            page_limit,
            index: None,
            recorded: HashSet::new(),
            next: None,
            last_caught_up: None,
        }
    }

    pub fn last_caught_up(&self) -> Option<Instant> {
        self.last_caught_up
    }

    /// Reads until the API has nothing more or `budget_end` comes. Returns the invitations
    /// marked accepted and whether the feed caught up (only then is "no sign-in seen" news).
    pub async fn catch_up(
        &mut self,
        now: DateTime<Utc>,
        budget_end: Instant,
    ) -> Result<(Vec<Invitation>, bool), FeedError> {
        let mut accepted = Vec::new();
        let mut reset_once = false;
        let mut request = match self.next.take() {
            Some(request) => request,
            None => match self.ledger.events_cursor().await? {
                Some(cursor) => PageRequest::Continue { cursor },
                None => self.reset(now).await?,
            },
        };
        loop {
            if Instant::now() >= budget_end {
                self.next = Some(request);
                return Ok((accepted, false));
            }
            let page = match self.events.sign_in_attempts(&request, budget_end).await {
                Ok(page) => page,
                // A cursor the API no longer knows (older than its retention, or corrupt):
                // start again from the oldest pending invitation.
                Err(EventsApiError::Status { status: 400, .. })
                    if !reset_once && matches!(request, PageRequest::Continue { .. }) =>
                {
                    tracing::warn!("Events API refused the stored cursor; starting a new one");
                    reset_once = true;
                    request = self.reset(now).await?;
                    continue;
                }
                Err(error) => {
                    self.next = Some(request);
                    return Err(error.into());
                }
            };
            accepted.extend(self.settle_accepted(&page.items).await?);
            self.ledger.set_events_cursor(&page.cursor).await?;
            request = PageRequest::Continue { cursor: page.cursor };
            if !page.has_more {
                self.next = Some(request);
                self.last_caught_up = Some(Instant::now());
                return Ok((accepted, true));
            }
        }
    }

    /// Marks accepted the pending invitations a successful sign-in on this page matches.
    async fn settle_accepted(&mut self, attempts: &[SignInAttempt]) -> Result<Vec<Invitation>, FeedError> {
        let mut accepted = Vec::new();
        if !attempts.iter().any(SignInAttempt::is_success) {
            return Ok(accepted);
        }
        self.record_sign_ins(attempts).await?;
        if self.index.is_none() {
            self.index = Some(PendingIndex::new(self.ledger.all_pending_invitations().await?));
        }
        let Some(index) = self.index.as_mut() else { return Ok(accepted) };
        for attempt in attempts {
            let Some(invitation) = index.take_match(attempt) else { continue };
            // Matched by e-mail, the invitation's user may differ from the one who signed in;
            // either way it is accepted, and however the ledger now holds it (a leaver
            // cleared it meanwhile) that account must never be toggled later.
            if !invitation.user_id.as_str().trim().is_empty() {
                self.ledger.record_sign_in(&invitation.user_id, attempt.timestamp).await?;
            }
            // Not pending any more: the worker cleared it (a leaver) since the index was read.
            if !self.ledger.settle_invitation_if_pending(&invitation.person, InvitationStatus::Accepted).await? {
                continue;
            }
            tracing::info!(person = %invitation.person, email = %mask_email(&invitation.email),
                user_id = %invitation.user_id, "invitation accepted (successful sign-in)");
            metrics::counter!("invitations", "outcome" => "accepted").increment(1);
            accepted.push(invitation);
        }
        Ok(accepted)
    }

    /// Records every user on this page who signed in successfully, once per feed. Not only
    /// those matching a pending invitation: someone who accepts after their invitation was
    /// escalated matches none, yet a later invitation (a rehire) must not toggle them.
    async fn record_sign_ins(&mut self, attempts: &[SignInAttempt]) -> Result<(), FeedError> {
        let mut fresh: HashMap<String, &SignInAttempt> = HashMap::new();
        for attempt in attempts.iter().filter(|a| a.is_success()) {
            let id = attempt.target_user.uuid.trim().to_lowercase();
            if !id.is_empty() && !self.recorded.contains(&id) {
                fresh.entry(id).or_insert(attempt);
            }
        }
        let ledger = &self.ledger;
        futures::stream::iter(fresh.values())
            .map(|attempt| async move {
                ledger.record_sign_in(&ScimUserId::new(attempt.target_user.uuid.trim()), attempt.timestamp).await
            })
            .buffer_unordered(SIGN_IN_WRITES)
            .try_collect::<Vec<()>>()
            .await?;
        // Only once written: a page that failed is read again and must record again.
        self.recorded.extend(fresh.into_keys());
        Ok(())
    }

    /// A reset cursor starting a little before the oldest pending invitation (no earlier
    /// than the API's retention), or now when nothing is pending.
    async fn reset(&self, now: DateTime<Utc>) -> Result<PageRequest, FeedError> {
        let oldest = self.ledger.all_pending_invitations().await?.into_iter().map(|i| i.invited_at).min();
        let earliest_allowed = now - ChronoDuration::days(RETENTION_DAYS) + ChronoDuration::hours(1);
        let start = oldest.map_or(now, |t| t - CLOCK_SKEW).max(earliest_allowed).min(now) - CLOCK_SKEW;
        Ok(PageRequest::Reset { limit: self.page_limit, start_time: Some(start) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events_api::EventUser;

    fn invitation(id: &str, user_id: &str, email: &str, invited_at: DateTime<Utc>) -> Invitation {
        Invitation {
            counts_from: None,
            person: PersonKey::new("hr", id),
            user_id: user_id.into(),
            email: email.into(),
            invited_at,
            last_sent_at: invited_at,
            reissues: 0,
            status: InvitationStatus::Pending,
        }
    }

    fn sign_in(user_id: &str, email: &str, category: &str, at: DateTime<Utc>) -> SignInAttempt {
        SignInAttempt {
            uuid: "a".into(),
            session_uuid: "s".into(),
            timestamp: at,
            category: category.into(),
            kind: "credentials_ok".into(),
            target_user: EventUser { uuid: user_id.into(), name: "N".into(), email: email.into() },
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn matches_by_user_id_then_by_email_case_insensitively() {
        let mut index = PendingIndex::new(vec![
            invitation("1", "UID1", "ada@example.com", t0()),
            invitation("2", "UID2", "Alan.Turing@Example.com", t0()),
        ]);
        let later = t0() + ChronoDuration::hours(1);
        // Id wins even when the e-mail changed in 1Password.
        assert_eq!(
            index.take_match(&sign_in("uid1", "ada.king@example.com", "success", later)).unwrap().person.id,
            "1"
        );
        // No id match (id unknown to us): the e-mail decides.
        assert_eq!(
            index.take_match(&sign_in("OTHER", "alan.turing@example.COM", "success", later)).unwrap().person.id,
            "2"
        );
        // Each invitation is accepted once.
        assert!(index.take_match(&sign_in("UID1", "ada@example.com", "success", later)).is_none());
    }

    #[test]
    fn failed_sign_ins_and_earlier_lives_do_not_count() {
        let mut index = PendingIndex::new(vec![invitation("1", "UID1", "ada@example.com", t0())]);
        assert!(index.take_match(&sign_in("UID1", "ada@example.com", "credentials_failed", t0())).is_none());
        assert!(
            index.take_match(&sign_in("UID1", "ada@example.com", "success", t0() - ChronoDuration::days(30))).is_none()
        );
        // Within the skew allowance it counts.
        assert!(
            index
                .take_match(&sign_in("UID1", "ada@example.com", "success", t0() - ChronoDuration::minutes(2)))
                .is_some()
        );
    }
}
