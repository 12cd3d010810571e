//! Whole-roster reads for the nightly reconcile: every person a connection's source API
//! knows, leavers and future hires included, in one [`Roster`].
//!
//! The requests go through the same pacing and throttled retries as single-person reads
//! ([`super::send`]); each source's request shape and its sources are in its own file
//! (`bamboohr.rs`, `hibob.rs`, `okta.rs`, each `roster`). A roster is all or nothing: a read
//! that keeps failing, or that cannot finish before the deadline, is an error, never a
//! shorter list (reconcile would take the missing people for leavers).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use reqwest::RequestBuilder;

use super::{Answer, EnrichError, InMemoryEnricher, Read, SourceApi, SourceApis, send};
use crate::event::{ATTRIBUTE_FIELDS, Attributes};

/// Every person a connection's source API knows, for reconciliation.
#[async_trait]
pub trait RosterSource: Send + Sync {
    /// The connections this source can list (those with an API configured / served).
    fn roster_connections(&self) -> Vec<String>;
    /// Every person of `connection`: all statuses, leavers and future hires included.
    async fn roster(&self, connection: &str, deadline: Option<Instant>) -> Result<Roster, EnrichError>;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    /// (source id, attributes) in the source's order. The id is the same id `fetch` takes
    /// (`PersonKey.id`).
    pub people: Vec<(String, Attributes)>,
    /// Names of the [`Attributes`] fields (their serde names, see [`ATTRIBUTE_FIELDS`]) that
    /// the source actually returned: for BambooHR the fields the report's `fields` list
    /// declares, for HiBob and Okta the fields present in at least one record. Reconcile
    /// aborts when a field its rules need is not in here (BambooHR and HiBob silently drop
    /// fields the API user may not read).
    pub fields_returned: BTreeSet<&'static str>,
    /// HTTP requests it took, throttled retries included.
    pub requests: usize,
}

impl Roster {
    /// A roster whose `fields_returned` are the fields with a value for at least one person
    /// (HiBob and Okta: nothing else says what the API user may read).
    pub(super) fn from_present_fields(people: People) -> Self {
        let people = people.people;
        let fields_returned = people.iter().flat_map(|(_, attributes)| present_fields(attributes)).collect();
        Roster { people, fields_returned, requests: 0 }
    }

    /// The fields with a value for at least one person.
    pub fn fields_present(&self) -> BTreeSet<&'static str> {
        self.people.iter().flat_map(|(_, attributes)| present_fields(attributes)).collect()
    }
}

/// The names of the fields of `attributes` that hold a value.
pub(super) fn present_fields(attributes: &Attributes) -> impl Iterator<Item = &'static str> + use<> {
    // Destructured whole, so a new field fails to compile here until it is named.
    let Attributes {
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
        termination_date,
    } = attributes;
    let present = [
        work_email.is_some(),
        given_name.is_some(),
        family_name.is_some(),
        display_name.is_some(),
        department.is_some(),
        title.is_some(),
        location.is_some(),
        manager.is_some(),
        employment_status.is_some(),
        employment_type.is_some(),
        start_date.is_some(),
        termination_date.is_some(),
    ];
    ATTRIBUTE_FIELDS.into_iter().zip(present).filter_map(|(name, present)| present.then_some(name))
}

/// Clears every field of `attributes` not named in `keep`, as a source does with fields the
/// API user may not read.
fn keep_only(attributes: &mut Attributes, keep: &BTreeSet<&'static str>) {
    let Attributes {
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
        termination_date,
    } = attributes;
    let texts = [
        ("work_email", work_email),
        ("given_name", given_name),
        ("family_name", family_name),
        ("display_name", display_name),
        ("department", department),
        ("title", title),
        ("location", location),
        ("manager", manager),
        ("employment_status", employment_status),
        ("employment_type", employment_type),
    ];
    for (name, value) in texts {
        if !keep.contains(name) {
            *value = None;
        }
    }
    for (name, value) in [("start_date", start_date), ("termination_date", termination_date)] {
        if !keep.contains(name) {
            *value = None;
        }
    }
}

/// The people of a roster as they are read: in the source's order, one entry per id. A
/// person listed twice (Okta: deactivated between the active and the deprovisioned listing)
/// keeps the first place and the later record, which is the newer one.
#[derive(Debug, Default)]
pub(super) struct People {
    people: Vec<(String, Attributes)>,
    index: HashMap<String, usize>,
}

impl People {
    pub(super) fn push(&mut self, id: String, attributes: Attributes) {
        match self.index.get(&id) {
            Some(&at) => self.people[at].1 = attributes,
            None => {
                self.index.insert(id.clone(), self.people.len());
                self.people.push((id, attributes));
            }
        }
    }

    pub(super) fn into_vec(self) -> Vec<(String, Attributes)> {
        self.people
    }
}

/// One request of a roster read: paced, throttled answers retried within the deadline,
/// counted in `sent`. A listing that answers 404 is not "nobody", it is an error.
pub(super) async fn roster_page(
    read: Read<'_>,
    request: RequestBuilder,
    sent: &AtomicUsize,
) -> Result<Answer, EnrichError> {
    send(read, request, Some(sent)).await?.ok_or_else(|| unexpected(read.connection, "HTTP 404 for the roster listing"))
}

pub(super) fn unexpected(connection: &str, reason: impl Into<String>) -> EnrichError {
    EnrichError::UnexpectedResponse { connection: connection.to_owned(), reason: reason.into() }
}

#[async_trait]
impl RosterSource for SourceApis {
    fn roster_connections(&self) -> Vec<String> {
        let mut names: Vec<String> = self.apis.keys().cloned().collect();
        names.sort();
        names
    }

    async fn roster(&self, connection: &str, deadline: Option<Instant>) -> Result<Roster, EnrichError> {
        let Some(configured) = self.apis.get(connection) else {
            return Err(EnrichError::UnknownConnection { connection: connection.to_owned() });
        };
        let read = Read { http: &self.http, connection, pacer: &configured.pacer, deadline };
        let sent = AtomicUsize::new(0);
        let outcome = match &configured.api {
            SourceApi::Bamboohr(api) => api.roster(read, &sent).await,
            SourceApi::Hibob(api) => api.roster(read, &sent).await,
            SourceApi::Okta(api) => api.roster(read, &sent).await,
        };
        let requests = sent.load(Ordering::Relaxed);
        match outcome {
            Ok(roster) => {
                tracing::info!(connection, people = roster.people.len(), requests, "read the roster");
                Ok(Roster { requests, ..roster })
            }
            Err(error) => {
                tracing::warn!(connection, requests, %error, "roster read failed");
                Err(error)
            }
        }
    }
}

impl InMemoryEnricher {
    /// Makes every roster read of `connection` fail (as `Unavailable`) until
    /// [`InMemoryEnricher::heal_roster`]. Single-person reads are not affected.
    pub fn fail_roster(&self, connection: &str) {
        self.failing_rosters.write().unwrap_or_else(|p| p.into_inner()).insert(connection.to_owned());
    }

    /// Undoes [`InMemoryEnricher::fail_roster`].
    pub fn heal_roster(&self, connection: &str) {
        self.failing_rosters.write().unwrap_or_else(|p| p.into_inner()).remove(connection);
    }

    /// Declares the fields `connection`'s roster returns (by default all of
    /// [`ATTRIBUTE_FIELDS`]): `fields_returned` is exactly these, and the people's other
    /// fields read as absent, as when the API user may not read them.
    ///
    /// # Panics
    /// On a name that is not in [`ATTRIBUTE_FIELDS`] (a typo would otherwise pass silently).
    pub fn roster_fields<'a>(&self, connection: &str, fields: impl IntoIterator<Item = &'a str>) {
        let fields = fields
            .into_iter()
            .map(|name| match ATTRIBUTE_FIELDS.iter().find(|known| **known == name) {
                Some(known) => *known,
                None => panic!("{name:?} is not an Attributes field; the names are {ATTRIBUTE_FIELDS:?}"),
            })
            .collect();
        self.roster_fields.write().unwrap_or_else(|p| p.into_inner()).insert(connection.to_owned(), fields);
    }
}

#[async_trait]
impl RosterSource for InMemoryEnricher {
    fn roster_connections(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.connections.read().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        names.sort();
        names
    }

    /// The connection's people, ordered by id.
    async fn roster(&self, connection: &str, _deadline: Option<Instant>) -> Result<Roster, EnrichError> {
        if !self.connections.read().unwrap_or_else(|p| p.into_inner()).contains(connection) {
            return Err(EnrichError::UnknownConnection { connection: connection.to_owned() });
        }
        if self.failing_rosters.read().unwrap_or_else(|p| p.into_inner()).contains(connection) {
            return Err(EnrichError::Unavailable {
                connection: connection.to_owned(),
                reason: "the roster read failed (InMemoryEnricher::fail_roster)".into(),
            });
        }
        let fields_returned = self
            .roster_fields
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(connection)
            .cloned()
            .unwrap_or_else(|| ATTRIBUTE_FIELDS.into_iter().collect());
        let mut people: Vec<(String, Attributes)> = self
            .people
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(person, _)| person.source == connection)
            .map(|(person, attributes)| {
                let mut attributes = attributes.clone();
                keep_only(&mut attributes, &fields_returned);
                (person.id.clone(), attributes)
            })
            .collect();
        people.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(Roster { people, fields_returned, requests: 1 })
    }
}
