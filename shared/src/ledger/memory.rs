//! The in-memory twin of [`super::DynamoLedger`], with the same conditional semantics, for
//! unit tests and the local stack.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{DueAction, Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord};
use crate::event::PersonKey;
use crate::scim::ScimUserId;

#[derive(Default)]
struct State {
    people: HashMap<PersonKey, PersonRecord>,
    account_owners: HashMap<ScimUserId, PersonKey>,
    leases: HashMap<PersonKey, (String, DateTime<Utc>)>,
    invitations: HashMap<PersonKey, Invitation>,
    events_cursor: Option<String>,
    suspensions_by_window: HashMap<String, u32>,
    /// First recorded sign-in by lower-cased 1Password user id.
    sign_ins: HashMap<String, DateTime<Utc>>,
}

#[derive(Default)]
pub struct InMemoryLedger {
    state: Mutex<State>,
}

impl InMemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, LedgerError> {
        // A panic while holding the lock leaves the maps consistent (every operation
        // mutates at most one entry, last), so a poisoned lock is still usable.
        Ok(self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn pending_sorted(state: &State) -> Vec<Invitation> {
        let mut pending: Vec<Invitation> =
            state.invitations.values().filter(|i| i.status == InvitationStatus::Pending).cloned().collect();
        // The same order as the DynamoDB index's sort key: last_sent_at, then person key.
        pending.sort_by_key(|i| (i.last_sent_at, i.person.to_string()));
        pending
    }
}

#[async_trait]
impl Ledger for InMemoryLedger {
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError> {
        Ok(self.state()?.people.get(person).cloned())
    }

    async fn save_person(&self, record: &PersonRecord) -> Result<(), LedgerError> {
        self.state()?.people.insert(record.person.clone(), record.clone());
        Ok(())
    }

    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError> {
        let state = self.state()?;
        // The same order as the DynamoDB index's sort key: due time, then person key.
        let sort_key = |action: &DueAction| (action.due.at, action.person.to_string());
        let mut due: Vec<DueAction> = state
            .people
            .values()
            .filter_map(|record| {
                let due = record.due.clone()?;
                Some(DueAction { person: record.person.clone(), source_kind: record.source_kind, due })
            })
            .filter(|action| action.due.at <= due_by)
            .filter(|action| after.is_none_or(|after| sort_key(action) > sort_key(after)))
            .collect();
        due.sort_by_key(sort_key);
        due.truncate(limit);
        Ok(due)
    }

    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        let owner = state.account_owners.entry(user_id.clone()).or_insert_with(|| person.clone());
        Ok(owner == person)
    }

    async fn try_lease(
        &self,
        person: &PersonKey,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        let free = state.leases.get(person).is_none_or(|(current, expires)| current == holder || *expires <= now);
        if free {
            state.leases.insert(person.clone(), (holder.to_owned(), until));
        }
        Ok(free)
    }

    async fn release_lease(&self, person: &PersonKey, holder: &str) -> Result<(), LedgerError> {
        let mut state = self.state()?;
        if state.leases.get(person).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(person);
        }
        Ok(())
    }

    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError> {
        Ok(self.state()?.account_owners.get(user_id).cloned())
    }

    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        match state.people.get_mut(&action.person) {
            Some(record) if record.due.as_ref().is_some_and(|due| due.at == action.due.at) => {
                record.due = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError> {
        Ok(self.state()?.invitations.get(person).cloned())
    }

    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        if let Some(existing) = state.invitations.get(&invitation.person)
            && existing.status == InvitationStatus::Pending
        {
            return Ok(false);
        }
        state.invitations.insert(invitation.person.clone(), invitation.clone());
        Ok(true)
    }

    async fn overwrite_invitation_status(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<(), LedgerError> {
        if let Some(invitation) = self.state()?.invitations.get_mut(person) {
            invitation.status = status;
        }
        Ok(())
    }

    async fn settle_invitation_if_pending(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<bool, LedgerError> {
        match self.state()?.invitations.get_mut(person) {
            Some(invitation) if invitation.status == InvitationStatus::Pending => {
                invitation.status = status;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_reissue_if_unchanged(
        &self,
        person: &PersonKey,
        expected_reissues: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        match state.invitations.get_mut(person) {
            Some(invitation)
                if invitation.status == InvitationStatus::Pending && invitation.reissues == expected_reissues =>
            {
                invitation.reissues += 1;
                invitation.last_sent_at = at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn pending_invitations(
        &self,
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Invitation>, LedgerError> {
        let state = self.state()?;
        Ok(Self::pending_sorted(&state).into_iter().filter(|i| i.last_sent_at < sent_before).take(limit).collect())
    }

    async fn all_pending_invitations(&self) -> Result<Vec<Invitation>, LedgerError> {
        Ok(Self::pending_sorted(&*self.state()?))
    }

    async fn events_cursor(&self) -> Result<Option<String>, LedgerError> {
        Ok(self.state()?.events_cursor.clone())
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), LedgerError> {
        self.state()?.events_cursor = Some(cursor.to_owned());
        Ok(())
    }

    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.state()?.sign_ins.entry(user_id.as_str().to_lowercase()).or_insert(at);
        Ok(())
    }

    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        Ok(self.state()?.sign_ins.get(&user_id.as_str().to_lowercase()).copied())
    }

    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError> {
        let mut state = self.state()?;
        let count = state.suspensions_by_window.entry(window_id.to_owned()).or_insert(0);
        if *count >= limit {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_ledger_conformance_suite() {
        let failures =
            crate::ledger::conformance::run_all(|| async { Box::new(InMemoryLedger::new()) as Box<dyn Ledger> }).await;
        assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
    }
}
