//! Desired state as of now: a pure function of (truth, rules, timing, now). It decides
//! whether the person should have an active 1Password account at this instant, with which
//! profile and groups, and when that will next change by itself (a date HR set), so the
//! worker can record a due action for that instant.
//!
//! HR dates have no time zone. Each connection has one (default UTC), optionally one per
//! location; a start date begins at local midnight, and access ends on the termination
//! date at the connection's local `access_ends_at` (default 00:00, the start of that day:
//! HiBob's own `employee.left` fires at midnight of the effective date in the site's zone,
//! and BambooHR shows an employee active *until* the termination date). Local times that
//! a DST change skips or repeats resolve the way `jiff` calls "compatible": a skipped time
//! moves forward by the gap, a repeated one takes its first occurrence.

use chrono::{DateTime, NaiveDate, Utc};
use jiff::civil;
use jiff::tz::TimeZone;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

use crate::event::{Attributes, PersonKey};
use crate::mapping::{MappingRules, OutOfScope};
use crate::plan::Desired;
use crate::truth::{Status, Truth};

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    /// The start date (or a joiner's effective time) is ahead.
    BeforeStart,
    Employed,
    /// Employed, with a termination ahead.
    Leaving,
    Left,
    /// Current in the source, but the scope rules exclude them.
    OutOfScope,
    /// Nothing says whether the person is current (a sender without an API that has only
    /// sent movers).
    Unknown,
}

/// What the person's 1Password account should be now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Access {
    /// Exists and is active: invite if missing, reactivate if suspended.
    Granted,
    /// Suspended if it exists; never created.
    Revoked,
    /// Not yet: not created; an existing account keeps its state.
    NotYet,
    /// Unknown lifecycle: an existing account keeps its state; nothing is created.
    Keep,
    /// Out of scope, report only: an existing account is not touched at all.
    Untouched,
}

/// A change the clock will bring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextChange {
    pub at: DateTime<Utc>,
    /// In the connection's local time, for the due action and the logs.
    pub intent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    pub person: PersonKey,
    pub phase: Phase,
    pub access: Access,
    /// Profile and organisation, from the truth.
    pub attributes: Attributes,
    pub groups: Desired,
    pub next_change: Option<NextChange>,
    /// When the person starts, if that is still ahead: an invitation sent before it does not
    /// count towards escalation until then.
    pub starts_at: Option<DateTime<Utc>>,
    /// From a connection that describes people another connection owns: profile and groups
    /// only, on whatever account the e-mail finds, whoever it is linked to.
    pub attribute_only: bool,
}

/// One connection's time settings, validated.
#[derive(Debug, Clone)]
pub struct Timing {
    zone_name: String,
    zone: TimeZone,
    /// Lower-cased location → (zone name, zone).
    location_zones: BTreeMap<String, (String, TimeZone)>,
    access_ends_at: civil::Time,
    invite_lead_days: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            zone_name: "UTC".into(),
            zone: TimeZone::UTC,
            location_zones: BTreeMap::new(),
            access_ends_at: civil::Time::midnight(),
            invite_lead_days: DEFAULT_INVITE_LEAD_DAYS,
        }
    }
}

/// Three days: the invitation arrives before the first day and, with 1Password's default
/// five-day invitation lifetime, is still valid on it.
pub const DEFAULT_INVITE_LEAD_DAYS: u32 = 3;

/// The `TIMING` setting as an admin writes it (every field optional):
/// `{"time_zone": "Europe/London", "access_ends_at": "20:00", "invite_lead_days": 3,
///   "location_time_zones": {"New York": "America/New_York"},
///   "connections": {"hibob-us": {"time_zone": "America/Chicago"}}}`.
/// A connection's own fields override the top-level ones, field by field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingSpec {
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    access_ends_at: Option<String>,
    #[serde(default)]
    invite_lead_days: Option<u32>,
    #[serde(default)]
    location_time_zones: Option<BTreeMap<String, String>>,
    #[serde(default)]
    connections: BTreeMap<String, TimingSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error("TIMING is not valid JSON for the documented shape: {0}")]
    Parse(String),
    #[error("{place}: {zone:?} is not an IANA time zone (e.g. \"Europe/London\")")]
    UnknownZone { place: String, zone: String },
    #[error("{place}: access_ends_at {value:?} is not a local time HH:MM")]
    BadTime { place: String, value: String },
    #[error("{place}: invite_lead_days {days} is longer than the invitation lifetime ({ttl_days} days)")]
    LeadTooLong { place: String, days: u32, ttl_days: u32 },
}

/// Every connection's timing.
#[derive(Debug, Clone, Default)]
pub struct TimingRules {
    default: Timing,
    connections: HashMap<String, Timing>,
}

impl TimingRules {
    /// Parses and validates `TIMING`; the invitation lead may not exceed `invite_ttl_days`.
    pub fn from_json(text: &str, invite_ttl_days: u32) -> Result<Self, TimingError> {
        let spec: TimingSpec = serde_json::from_str(text).map_err(|e| TimingError::Parse(e.to_string()))?;
        let default = spec.resolve("TIMING", &Timing::default(), invite_ttl_days)?;
        let mut connections = HashMap::new();
        for (name, own) in &spec.connections {
            let place = format!("TIMING.connections.{name}");
            connections.insert(name.clone(), own.resolve(&place, &default, invite_ttl_days)?);
        }
        Ok(TimingRules { default, connections })
    }

    pub fn for_connection(&self, connection: &str) -> &Timing {
        self.connections.get(connection).unwrap_or(&self.default)
    }
}

impl TimingSpec {
    fn resolve(&self, place: &str, base: &Timing, ttl_days: u32) -> Result<Timing, TimingError> {
        let mut timing = base.clone();
        if let Some(name) = &self.time_zone {
            timing.zone = zone(place, name)?;
            timing.zone_name = name.clone();
        }
        if let Some(value) = &self.access_ends_at {
            timing.access_ends_at = civil::Time::strptime("%H:%M", value)
                .map_err(|_| TimingError::BadTime { place: place.to_owned(), value: value.clone() })?;
        }
        if let Some(days) = self.invite_lead_days {
            if days > ttl_days {
                return Err(TimingError::LeadTooLong { place: place.to_owned(), days, ttl_days });
            }
            timing.invite_lead_days = days;
        }
        if let Some(map) = &self.location_time_zones {
            timing.location_zones = map
                .iter()
                .map(|(location, name)| Ok((location.trim().to_lowercase(), (name.clone(), zone(place, name)?))))
                .collect::<Result<_, TimingError>>()?;
        }
        Ok(timing)
    }
}

fn zone(place: &str, name: &str) -> Result<TimeZone, TimingError> {
    TimeZone::get(name).map_err(|_| TimingError::UnknownZone { place: place.to_owned(), zone: name.to_owned() })
}

impl Timing {
    fn zone_for(&self, location: Option<&str>) -> (&str, &TimeZone) {
        match location.and_then(|l| self.location_zones.get(&l.trim().to_lowercase())) {
            Some((name, zone)) => (name, zone),
            None => (&self.zone_name, &self.zone),
        }
    }
}

/// A local date and time in `zone`, as an instant.
fn local_instant(date: NaiveDate, time: civil::Time, zone: &TimeZone) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    let month = i8::try_from(date.month()).ok()?;
    let day = i8::try_from(date.day()).ok()?;
    let civil_date = civil::Date::new(i16::try_from(date.year()).ok()?, month, day).ok()?;
    let timestamp = civil_date.to_datetime(time).to_zoned(zone.clone()).ok()?.timestamp();
    DateTime::from_timestamp(timestamp.as_second(), u32::try_from(timestamp.subsec_nanosecond()).ok()?)
}

fn hhmm(time: civil::Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// The instants the truth's dates mean in the person's zone.
struct Dates {
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    invite_at: Option<DateTime<Utc>>,
    start_text: String,
    end_text: String,
}

fn dates(truth: &Truth, timing: &Timing) -> Dates {
    let (zone_name, zone) = timing.zone_for(truth.attributes.location.as_deref());
    let start_date = truth.attributes.start_date;
    // A termination dated before the latest start belongs to an earlier employment.
    let termination = truth.attributes.termination_date.filter(|end| start_date.is_none_or(|start| *end >= start));
    let date_start = start_date.and_then(|d| local_instant(d, civil::Time::midnight(), zone));
    let date_end = termination.and_then(|d| local_instant(d, timing.access_ends_at, zone));
    // An HR date is more precise than the effective time of the event that carried it.
    let starts_at = date_start.or(truth.starts_at);
    let ends_at = [date_end.or(truth.ends_at), truth.revoked_at].into_iter().flatten().min();
    let lead_days = timing.invite_lead_days;
    let invite_at = match start_date {
        Some(date) => date
            .checked_sub_days(chrono::Days::new(u64::from(lead_days)))
            .and_then(|d| local_instant(d, civil::Time::midnight(), zone)),
        None => truth.starts_at.and_then(|at| at.checked_sub_signed(chrono::Duration::days(i64::from(lead_days)))),
    };
    let start_text = match (start_date, truth.starts_at) {
        (Some(d), _) => format!("start date {d} in {zone_name}"),
        (None, Some(at)) => format!("effective {}", at.format("%Y-%m-%dT%H:%MZ")),
        _ => String::new(),
    };
    let end_text = match termination {
        Some(d) if date_end == ends_at => format!("termination date {d}, {} {zone_name}", hhmm(timing.access_ends_at)),
        _ if truth.revoked_at.is_some() && truth.revoked_at == ends_at => "access revoked immediately".to_owned(),
        _ => ends_at.map(|at| format!("effective {}", at.format("%Y-%m-%dT%H:%MZ"))).unwrap_or_default(),
    };
    Dates { starts_at, ends_at, invite_at, start_text, end_text }
}

fn phase(truth: &Truth, dates: &Dates, now: DateTime<Utc>) -> Phase {
    let starts_later = dates.starts_at.is_some_and(|s| s > now);
    let ended = dates.ends_at.is_some_and(|e| e <= now);
    match truth.status {
        Status::Inactive if starts_later => Phase::BeforeStart,
        Status::Inactive => Phase::Left,
        _ if ended => Phase::Left,
        _ if starts_later => Phase::BeforeStart,
        Status::Unknown => Phase::Unknown,
        _ if dates.ends_at.is_some() => Phase::Leaving,
        _ => Phase::Employed,
    }
}

/// The desired state of one person at `now`.
pub fn desired_as_of(
    person: &PersonKey,
    truth: &Truth,
    rules: &MappingRules,
    timing: &Timing,
    now: DateTime<Utc>,
) -> DesiredState {
    let dates = dates(truth, timing);
    let mut phase = phase(truth, &dates, now);
    let in_scope = rules.in_scope(&truth.attributes);
    if !in_scope && matches!(phase, Phase::Employed | Phase::Leaving | Phase::Unknown) {
        phase = Phase::OutOfScope;
    }
    let invite_due = dates.invite_at.is_none_or(|at| at <= now);
    let access = match phase {
        Phase::BeforeStart if invite_due && in_scope => Access::Granted,
        Phase::BeforeStart => Access::NotYet,
        Phase::Employed | Phase::Leaving => Access::Granted,
        Phase::Left => Access::Revoked,
        Phase::OutOfScope if rules.scope.when_out_of_scope == OutOfScope::Report => Access::Untouched,
        Phase::OutOfScope => Access::Revoked,
        Phase::Unknown => Access::Keep,
    };
    let next_change = match (phase, access) {
        (Phase::BeforeStart, Access::NotYet) if in_scope => dates.invite_at.map(|at| NextChange {
            at,
            intent: format!("invite ({} days before the {})", timing.invite_lead_days, dates.start_text),
        }),
        (Phase::BeforeStart | Phase::Employed | Phase::Leaving, Access::Granted) => dates
            .ends_at
            .filter(|at| *at > now)
            .map(|at| NextChange { at, intent: format!("suspend ({})", dates.end_text) }),
        _ => None,
    };
    let revoked = access == Access::Revoked;
    DesiredState {
        person: person.clone(),
        phase,
        access,
        groups: Desired {
            groups: if revoked { Default::default() } else { rules.desired_groups(&truth.attributes) },
            managed: rules.managed_groups(),
            complete: revoked || rules.can_decide(&truth.attributes),
        },
        attributes: truth.attributes.clone(),
        next_change,
        starts_at: dates.starts_at.filter(|at| *at > now),
        attribute_only: false,
    }
}

#[cfg(test)]
mod tests;
