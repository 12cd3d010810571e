//! The best truth about one person. An event only says "this person changed"; the worker
//! then reads what is true now: the source's API record where the connection has one,
//! otherwise the person's last known state, folded from every event the ledger has seen.
//!
//! The fold is order-free: each part keeps the value of the latest event by effective time
//! (ties broken by event id), so any permutation of a person's events, with duplicates,
//! folds to the same state. A mover never supersedes a lifecycle event, and each attribute
//! comes from the latest event that carried it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::event::{Attributes, EventKind, LifecycleEvent};

/// A value with the event that said it, ordered by (effective time, event id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    pub at: DateTime<Utc>,
    pub event_id: String,
}

impl<T> Stamped<T> {
    fn new(value: T, event: &LifecycleEvent) -> Self {
        Stamped { value, at: event.effective_at, event_id: event.source_event_id.clone() }
    }

    fn newer_than<U>(&self, other: &Stamped<U>) -> bool {
        (self.at, &self.event_id) > (other.at, &other.event_id)
    }
}

/// Keeps whichever of `slot` and `candidate` is newer.
fn keep_newest<T>(slot: &mut Option<Stamped<T>>, candidate: Stamped<T>) {
    if slot.as_ref().is_none_or(|current| candidate.newer_than(current)) {
        *slot = Some(candidate);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Joined or came back, as of the stamp's time.
    Joined,
    /// Leaves (or left) at the stamp's time.
    Leaves,
}

/// What the events said about a person, folded. Stored in the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Stamped<Lifecycle>>,
    /// Attribute name (as in [`Attributes`]' JSON) → its latest value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Stamped<serde_json::Value>>,
    /// The latest immediate revocation: access ends then, whatever the dates say, unless a
    /// later joiner or rehire came after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Stamped<()>>,
}

impl KnownState {
    /// Folds one event in. Idempotent and order-free.
    pub fn fold(&mut self, event: &LifecycleEvent) {
        match event.kind {
            EventKind::Joiner | EventKind::Rehire => {
                keep_newest(&mut self.lifecycle, Stamped::new(Lifecycle::Joined, event));
            }
            EventKind::Leaver => keep_newest(&mut self.lifecycle, Stamped::new(Lifecycle::Leaves, event)),
            EventKind::Mover | EventKind::Converge => {}
        }
        if event.immediate {
            // "Now" is when the sender told us, if that is earlier than the date it gave.
            let at = event.effective_at.min(event.received_at);
            keep_newest(&mut self.revoked, Stamped { value: (), at, event_id: event.source_event_id.clone() });
        }
        let serde_json::Value::Object(fields) = serde_json::to_value(&event.attributes).unwrap_or_default() else {
            return;
        };
        for (name, value) in fields {
            let mut slot = self.attributes.remove(&name);
            keep_newest(&mut slot, Stamped::new(value, event));
            self.attributes.extend(slot.map(|s| (name, s)));
        }
    }

    /// The folded attributes. A value that no longer parses (a field renamed between
    /// versions) is dropped rather than failing the person.
    pub fn attributes(&self) -> Attributes {
        let mut attributes = Attributes::default();
        for (name, stamped) in &self.attributes {
            let single = serde_json::json!({ name: stamped.value });
            if let Ok(one) = serde_json::from_value::<Attributes>(single) {
                attributes.fill_from(&one);
            }
        }
        attributes
    }

    /// The revocation instant still in force: not followed by a joiner or rehire.
    fn revocation_in_force(&self) -> Option<DateTime<Utc>> {
        let revoked = self.revoked.as_ref()?;
        match &self.lifecycle {
            Some(joined @ Stamped { value: Lifecycle::Joined, .. }) if joined.newer_than(revoked) => None,
            _ => Some(revoked.at),
        }
    }
}

/// What the source says about the person's standing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    /// A current person: employed, on leave, hired with a start date ahead, or leaving with
    /// a termination date ahead. The dates decide the phase.
    Active,
    /// The source says the person has left (BambooHR `Inactive`, HiBob `Terminated`, Okta
    /// `DEPROVISIONED` or `SUSPENDED`).
    Inactive,
    /// Nothing says either way (a generic sender that has only sent movers).
    Unknown,
}

impl Status {
    /// Reads a source's status word. A word we do not know counts as active: the person has
    /// a record in the source, and their dates still apply.
    pub fn from_word(word: Option<&str>) -> Status {
        let Some(word) = word.map(|w| w.trim().to_ascii_lowercase()) else { return Status::Active };
        match word.as_str() {
            "inactive" | "terminated" | "deprovisioned" | "suspended" => Status::Inactive,
            _ => Status::Active,
        }
    }
}

/// Where the truth came from, for logs and `plan` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Origin {
    SourceApi,
    Events,
}

/// The best truth about one person, as the desired-state function reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub origin: Origin,
    pub status: Status,
    /// Profile, organisation and HR dates (`start_date`, `termination_date`).
    pub attributes: Attributes,
    /// An instant access starts (a generic joiner's effective time); HR dates are in
    /// `attributes.start_date`.
    pub starts_at: Option<DateTime<Utc>>,
    /// An instant access ends (a generic leaver's effective time).
    pub ends_at: Option<DateTime<Utc>>,
    /// An immediate revocation still in force: access ends then, whatever the dates say.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Truth {
    /// The truth of a sender without an API: the folded events.
    pub fn from_events(known: &KnownState) -> Truth {
        let (status, starts_at, ends_at) = match &known.lifecycle {
            Some(Stamped { value: Lifecycle::Joined, at, .. }) => (Status::Active, Some(*at), None),
            Some(Stamped { value: Lifecycle::Leaves, at, .. }) => (Status::Active, None, Some(*at)),
            None => (Status::Unknown, None, None),
        };
        let revoked_at = known.revocation_in_force();
        Truth { origin: Origin::Events, status, attributes: known.attributes(), starts_at, ends_at, revoked_at }
    }

    /// The truth from the source's API record; an immediate revocation the events carried
    /// still ends access (the API may show the person active until their termination date).
    /// Fields the API did not return (a field the API user may not read is silently
    /// omitted) are filled from the events.
    pub fn from_source(mut record: Attributes, known: &KnownState) -> Truth {
        record.fill_from(&known.attributes());
        let status = Status::from_word(record.employment_status.as_deref());
        Truth {
            origin: Origin::SourceApi,
            status,
            attributes: record,
            starts_at: None,
            ends_at: None,
            revoked_at: known.revocation_in_force(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PersonKey, SourceKind};
    use chrono::TimeZone;

    fn event(id: &str, kind: EventKind, minute: u32, attributes: Attributes) -> LifecycleEvent {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, minute, 0).unwrap();
        LifecycleEvent {
            version: 1,
            kind,
            person: PersonKey::new("hr", "1"),
            source_kind: SourceKind::Generic,
            source_event_id: id.into(),
            effective_at: at,
            received_at: at,
            attributes,
            immediate: false,
            requeued: 0,
        }
    }

    fn dept(name: &str) -> Attributes {
        Attributes { department: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn a_mover_never_supersedes_a_lifecycle_event_and_attributes_come_from_the_latest_carrier() {
        let mut known = KnownState::default();
        let joiner = event("j", EventKind::Joiner, 0, Attributes { work_email: Some("a@x.io".into()), ..dept("Ops") });
        let mover = event("m", EventKind::Mover, 20, dept("Finance"));
        let late_leaver = event("l", EventKind::Leaver, 10, dept("Sales"));
        for e in [&joiner, &mover, &late_leaver] {
            known.fold(e);
        }
        let truth = Truth::from_events(&known);
        assert_eq!(truth.ends_at, Some(late_leaver.effective_at), "the leaver is the latest lifecycle event");
        assert_eq!(truth.attributes.department.as_deref(), Some("Finance"), "the mover is the latest department");
        assert_eq!(truth.attributes.work_email.as_deref(), Some("a@x.io"));
    }

    #[test]
    fn an_immediate_revocation_ends_access_until_a_later_rehire() {
        let mut known = KnownState::default();
        let mut revoke = event("r", EventKind::Leaver, 5, Attributes::default());
        revoke.immediate = true;
        known.fold(&revoke);
        let api = Attributes { employment_status: Some("Employed".into()), ..Default::default() };
        assert_eq!(Truth::from_source(api.clone(), &known).revoked_at, Some(revoke.effective_at));
        known.fold(&event("h", EventKind::Rehire, 30, Attributes::default()));
        assert_eq!(Truth::from_source(api, &known).revoked_at, None);
    }

    #[test]
    fn status_words() {
        for (word, status) in [
            (Some("Inactive"), Status::Inactive),
            (Some(" terminated "), Status::Inactive),
            (Some("DEPROVISIONED"), Status::Inactive),
            (Some("SUSPENDED"), Status::Inactive),
            (Some("Garden leave"), Status::Active),
            (Some("Hired"), Status::Active),
            (Some("ACTIVE"), Status::Active),
            (None, Status::Active),
        ] {
            assert_eq!(Status::from_word(word), status, "{word:?}");
        }
    }

    #[test]
    fn without_a_lifecycle_event_the_status_is_unknown() {
        let mut known = KnownState::default();
        known.fold(&event("m", EventKind::Mover, 0, dept("Ops")));
        assert_eq!(Truth::from_events(&known).status, Status::Unknown);
    }
}
