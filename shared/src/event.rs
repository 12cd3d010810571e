//! The canonical lifecycle event: what every source is normalized into and what the queue
//! carries. Its JSON form is a stable wire format, documented by
//! `schemas/lifecycle-event.v1.json`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The wire format version. Bump it (and add a new schema file) on any incompatible change.
pub const WIRE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    Joiner,
    Mover,
    Leaver,
    Rehire,
    /// Claims nothing new: "read this person's truth again and converge". Sent by the
    /// due-action sweep (a date HR set has arrived) and by admins.
    Converge,
}

impl EventKind {
    /// The wire name, as a metric label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Which kind of system sent the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum SourceKind {
    Generic,
    Bamboohr,
    Hibob,
    Okta,
}

impl SourceKind {
    /// The wire name, as a metric label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Identifies a person for as long as they exist in the source: the connection (one tenant
/// of one source system) and that system's stable employee/user id. Never the e-mail, which
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonKey {
    /// The connection name, e.g. `bamboohr-main`.
    pub source: String,
    /// The source's stable id for the person, e.g. BambooHR's employee id.
    pub id: String,
}

impl PersonKey {
    pub fn new(source: impl Into<String>, id: impl Into<String>) -> Self {
        PersonKey { source: source.into(), id: id.into() }
    }
}

/// `source:id`: used as the SQS message group, the ledger key and the SCIM `externalId`.
impl fmt::Display for PersonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.id)
    }
}

/// What the source told us about the person. Every field is optional: thin webhooks carry
/// only an id, and the worker enriches from the source's API.
/// The serde names of the [`Attributes`] fields, in field order.
pub const ATTRIBUTE_FIELDS: [&str; 12] = [
    "work_email",
    "given_name",
    "family_name",
    "display_name",
    "department",
    "title",
    "location",
    "manager",
    "employment_status",
    "employment_type",
    "start_date",
    "termination_date",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The manager's id or e-mail, as the source gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The source's own status word, e.g. `Active`, `Inactive`, `terminated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_status: Option<String>,
    /// e.g. `Full-Time`, `Contractor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employment_type: Option<String>,
    /// The first day of work (HR's date, no time zone): BambooHR `hireDate`, HiBob
    /// `work.startDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// The termination date (HR's date, no time zone): BambooHR `terminationDate`, HiBob
    /// `internal.terminationDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<NaiveDate>,
}

impl Attributes {
    /// True when the attributes carry everything an invitation needs.
    pub fn is_complete_for_invite(&self) -> bool {
        self.work_email.is_some() && (self.given_name.is_some() || self.display_name.is_some())
    }

    /// Fills every field that is `None` here from `other`; fields already present win,
    /// because the webhook is newer than an API read-back.
    pub fn fill_from(&mut self, other: &Attributes) {
        macro_rules! fill {
            ($($field:ident),*) => {$(
                if self.$field.is_none() { self.$field.clone_from(&other.$field); }
            )*};
        }
        fill!(
            work_email,
            given_name,
            family_name,
            display_name,
            department,
            title,
            location,
            manager,
            employment_status,
            employment_type,
            start_date,
            termination_date
        );
    }
}

/// One fact about one person: they joined, moved, left or came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleEvent {
    /// Always [`WIRE_VERSION`].
    #[serde(default = "wire_version")]
    pub version: u32,
    pub kind: EventKind,
    pub person: PersonKey,
    pub source_kind: SourceKind,
    /// The source's id for this event (Okta `uuid`, `webhook-id`, a derived key for sources
    /// without one). With the connection it forms the queue's deduplication id.
    pub source_event_id: String,
    /// When the change takes effect in the source.
    pub effective_at: DateTime<Utc>,
    /// When ingest accepted it; ingest stamps it on arrival.
    #[serde(default = "Utc::now")]
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub attributes: Attributes,
    /// Access ends now, whatever the dates say (HiBob's "revoke access immediately").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immediate: bool,
    /// How often the worker handed this message back to the queue because a source API was
    /// throttling it; bounded, so a source that never recovers still ends in the DLQ.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requeued: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn wire_version() -> u32 {
    WIRE_VERSION
}

#[cfg(test)]
mod schema_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_key_renders_as_source_colon_id() {
        assert_eq!(PersonKey::new("bamboohr-main", "1187").to_string(), "bamboohr-main:1187");
    }

    #[test]
    fn fill_from_keeps_present_fields_and_fills_missing_ones() {
        let mut event_attrs = Attributes { department: Some("Finance".into()), ..Default::default() };
        let api_attrs = Attributes {
            department: Some("Sales".into()),
            work_email: Some("a@example.com".into()),
            ..Default::default()
        };
        event_attrs.fill_from(&api_attrs);
        assert_eq!(event_attrs.department.as_deref(), Some("Finance"));
        assert_eq!(event_attrs.work_email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn unknown_fields_are_rejected_so_typos_do_not_pass_silently() {
        let json = r#"{"kind":"joiner","person":{"source":"s","id":"1"},"source_kind":"generic",
            "source_event_id":"e","effective_at":"2026-01-01T00:00:00Z","attributes":{"emial":"x"}}"#;
        assert!(serde_json::from_str::<LifecycleEvent>(json).is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let json = r#"{"version":1,"kind":"leaver","person":{"source":"okta-main","id":"00u1"},
            "source_kind":"okta","source_event_id":"uuid-1","effective_at":"2026-03-02T09:15:00Z",
            "received_at":"2026-03-02T09:15:01Z","attributes":{"work_email":"dana@example.com"}}"#;
        let event: LifecycleEvent = serde_json::from_str(json).unwrap();
        let again: LifecycleEvent = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(event, again);
        assert_eq!(event.kind, EventKind::Leaver);
    }
}
