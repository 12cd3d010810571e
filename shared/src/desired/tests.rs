//! Table tests of the desired state as of now: every lifecycle phase, the cutoff minute,
//! midnight, DST change days, a leap day, location zones and the scope rules.

use super::*;
use crate::mapping::MappingRules;
use chrono::TimeZone;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
}

fn date(text: &str) -> Option<NaiveDate> {
    Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("valid date"))
}

fn timing(json: &str) -> Timing {
    TimingRules::from_json(json, 5).expect("valid timing").for_connection("hr").clone()
}

/// An API record: active (or `status`), with these HR dates.
fn record(status: Status, start: Option<&str>, termination: Option<&str>) -> Truth {
    Truth {
        origin: crate::truth::Origin::SourceApi,
        status,
        attributes: Attributes {
            work_email: Some("ada@example.com".into()),
            department: Some("Engineering".into()),
            start_date: start.and_then(date),
            termination_date: termination.and_then(date),
            ..Default::default()
        },
        starts_at: None,
        ends_at: None,
        revoked_at: None,
    }
}

/// Phase, access and when the next change is due.
type Decision = (Phase, Access, Option<DateTime<Utc>>);

fn decide(truth: &Truth, timing: &Timing, now: DateTime<Utc>) -> Decision {
    let rules = MappingRules::default();
    let desired = desired_as_of(&PersonKey::new("hr", "1"), truth, &rules, timing, now);
    (desired.phase, desired.access, desired.next_change.map(|n| n.at))
}

#[test]
fn lifecycle_phases_and_the_next_change() {
    let utc_timing = timing("{}");
    let now = utc(2026, 12, 1, 12, 0);
    #[rustfmt::skip]
    let cases: Vec<(&str, Truth, Decision)> = vec![
        ("employed, no dates",
            record(Status::Active, Some("2020-01-06"), None),
            (Phase::Employed, Access::Granted, None)),
        ("leaving: termination ahead, suspension due at its start",
            record(Status::Active, Some("2020-01-06"), Some("2026-12-15")),
            (Phase::Leaving, Access::Granted, Some(utc(2026, 12, 15, 0, 0)))),
        ("termination dated today: access ends at once",
            record(Status::Active, Some("2020-01-06"), Some("2026-12-01")),
            (Phase::Left, Access::Revoked, None)),
        ("termination dated yesterday",
            record(Status::Active, None, Some("2026-11-30")),
            (Phase::Left, Access::Revoked, None)),
        ("inactive in the source",
            record(Status::Inactive, Some("2020-01-06"), None),
            (Phase::Left, Access::Revoked, None)),
        ("start in 30 days: invitation due 3 days before",
            record(Status::Active, Some("2026-12-31"), None),
            (Phase::BeforeStart, Access::NotYet, Some(utc(2026, 12, 28, 0, 0)))),
        ("start in 2 days: invitation due now, suspension none",
            record(Status::Active, Some("2026-12-03"), None),
            (Phase::BeforeStart, Access::Granted, None)),
        ("start in 2 days with a termination after it: the suspension is next",
            record(Status::Active, Some("2026-12-03"), Some("2027-03-01")),
            (Phase::BeforeStart, Access::Granted, Some(utc(2027, 3, 1, 0, 0)))),
        ("inactive, rehired with a start ahead: the old termination belongs to the last employment",
            record(Status::Inactive, Some("2026-12-20"), Some("2026-06-30")),
            (Phase::BeforeStart, Access::NotYet, Some(utc(2026, 12, 17, 0, 0)))),
        ("unknown lifecycle (movers only)",
            Truth { status: Status::Unknown, ..record(Status::Active, None, None) },
            (Phase::Unknown, Access::Keep, None)),
        ("generic leaver effective in 14 days",
            Truth { ends_at: Some(utc(2026, 12, 15, 9, 0)), ..record(Status::Active, None, None) },
            (Phase::Leaving, Access::Granted, Some(utc(2026, 12, 15, 9, 0)))),
        ("generic leaver effective an hour ago",
            Truth { ends_at: Some(utc(2026, 12, 1, 11, 0)), ..record(Status::Active, None, None) },
            (Phase::Left, Access::Revoked, None)),
        ("generic joiner effective in 10 days: invited 3 days before",
            Truth { starts_at: Some(utc(2026, 12, 11, 9, 0)), ..record(Status::Active, None, None) },
            (Phase::BeforeStart, Access::NotYet, Some(utc(2026, 12, 8, 9, 0)))),
        ("an HR start date wins over the event's effective time",
            Truth { starts_at: Some(utc(2026, 11, 30, 9, 0)), ..record(Status::Active, Some("2026-12-31"), None) },
            (Phase::BeforeStart, Access::NotYet, Some(utc(2026, 12, 28, 0, 0)))),
        ("immediate revocation beats a termination date ahead",
            Truth { revoked_at: Some(utc(2026, 12, 1, 11, 59)), ..record(Status::Active, None, Some("2026-12-15")) },
            (Phase::Left, Access::Revoked, None)),
    ];
    for (name, truth, expected) in cases {
        assert_eq!(decide(&truth, &utc_timing, now), expected, "{name}");
    }
}

#[test]
fn the_cutoff_minute_in_the_connections_zone() {
    let london_evening = timing(r#"{"time_zone": "Europe/London", "access_ends_at": "20:00"}"#);
    let leaving = record(Status::Active, None, Some("2026-12-15"));
    // December: London is on GMT, so 20:00 local is 20:00 UTC.
    assert_eq!(decide(&leaving, &london_evening, utc(2026, 12, 15, 19, 59)).1, Access::Granted);
    assert_eq!(decide(&leaving, &london_evening, utc(2026, 12, 15, 20, 0)).1, Access::Revoked);
    // July: BST, 20:00 local is 19:00 UTC.
    let summer = record(Status::Active, None, Some("2026-07-15"));
    assert_eq!(decide(&summer, &london_evening, utc(2026, 7, 15, 18, 59)).2, Some(utc(2026, 7, 15, 19, 0)));
    assert_eq!(decide(&summer, &london_evening, utc(2026, 7, 15, 19, 0)).1, Access::Revoked);
    // Midnight in Tokyo is 15:00 UTC the day before.
    let tokyo = timing(r#"{"time_zone": "Asia/Tokyo"}"#);
    assert_eq!(decide(&leaving, &tokyo, utc(2026, 12, 14, 14, 59)).1, Access::Granted);
    assert_eq!(decide(&leaving, &tokyo, utc(2026, 12, 14, 15, 0)).1, Access::Revoked);
}

#[test]
fn dst_change_days() {
    // 29 March 2026, London: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist and moves
    // forward by the gap, to 02:30 BST = 01:30 UTC.
    let spring = timing(r#"{"time_zone": "Europe/London", "access_ends_at": "01:30"}"#);
    let leaving = record(Status::Active, None, Some("2026-03-29"));
    assert_eq!(decide(&leaving, &spring, utc(2026, 3, 28, 12, 0)).2, Some(utc(2026, 3, 29, 1, 30)));
    // 1 November 2026, New York: 01:30 happens twice; the first (EDT, UTC−4) counts.
    let autumn = timing(r#"{"time_zone": "America/New_York", "access_ends_at": "01:30"}"#);
    let leaving = record(Status::Active, None, Some("2026-11-01"));
    assert_eq!(decide(&leaving, &autumn, utc(2026, 10, 31, 12, 0)).2, Some(utc(2026, 11, 1, 5, 30)));
    // A start at local midnight on the day after the change: EST, UTC−5.
    let starter = record(Status::Active, Some("2026-11-05"), None);
    let lead_zero = timing(r#"{"time_zone": "America/New_York", "invite_lead_days": 0}"#);
    assert_eq!(decide(&starter, &lead_zero, utc(2026, 11, 1, 0, 0)).2, Some(utc(2026, 11, 5, 5, 0)));
}

#[test]
fn a_leap_day_start() {
    let starter = record(Status::Active, Some("2028-02-29"), None);
    let (_, access, next) = decide(&starter, &timing("{}"), utc(2028, 2, 1, 0, 0));
    assert_eq!((access, next), (Access::NotYet, Some(utc(2028, 2, 26, 0, 0))));
    let (phase, access, _) = decide(&starter, &timing("{}"), utc(2028, 2, 29, 0, 0));
    assert_eq!((phase, access), (Phase::Employed, Access::Granted));
}

#[test]
fn a_location_has_its_own_zone() {
    let rules = timing(r#"{"time_zone": "Europe/London", "location_time_zones": {"New York": "America/New_York"}}"#);
    let mut in_new_york = record(Status::Active, None, Some("2026-12-15"));
    in_new_york.attributes.location = Some(" new york ".into());
    assert_eq!(decide(&in_new_york, &rules, utc(2026, 12, 1, 0, 0)).2, Some(utc(2026, 12, 15, 5, 0)));
    in_new_york.attributes.location = Some("Paris".into());
    assert_eq!(decide(&in_new_york, &rules, utc(2026, 12, 1, 0, 0)).2, Some(utc(2026, 12, 15, 0, 0)));
}

#[test]
fn a_connection_overrides_the_defaults_field_by_field() {
    let rules = TimingRules::from_json(
        r#"{"time_zone": "Europe/London", "invite_lead_days": 2, "connections": {"us": {"time_zone": "America/Chicago"}}}"#,
        5,
    )
    .unwrap();
    let starter = record(Status::Active, Some("2026-12-31"), None);
    let now = utc(2026, 12, 1, 0, 0);
    assert_eq!(decide(&starter, rules.for_connection("us"), now).2, Some(utc(2026, 12, 29, 6, 0)));
    assert_eq!(decide(&starter, rules.for_connection("other"), now).2, Some(utc(2026, 12, 29, 0, 0)));
}

#[test]
fn scope_rules() {
    let report = MappingRules::from_json(
        r#"{"scope": {"exclude": [{"employment_type": ["Contractor"]}], "when_out_of_scope": "report"}}"#,
    )
    .unwrap();
    let suspend = MappingRules::from_json(r#"{"scope": {"exclude": [{"employment_type": ["Contractor"]}]}}"#).unwrap();
    let mut contractor = record(Status::Active, Some("2020-01-01"), None);
    contractor.attributes.employment_type = Some("Contractor".into());
    let mut future_contractor = record(Status::Active, Some("2026-12-31"), None);
    future_contractor.attributes.employment_type = Some("Contractor".into());
    let now = utc(2026, 12, 1, 0, 0);
    let person = PersonKey::new("hr", "1");
    let cases = [
        (&contractor, &suspend, Phase::OutOfScope, Access::Revoked),
        (&contractor, &report, Phase::OutOfScope, Access::Untouched),
        (&future_contractor, &suspend, Phase::BeforeStart, Access::NotYet),
    ];
    for (truth, rules, phase, access) in cases {
        let desired = desired_as_of(&person, truth, rules, &timing("{}"), now);
        assert_eq!((desired.phase, desired.access), (phase, access), "{:?}", truth.attributes.start_date);
        assert_eq!(desired.next_change, None, "never invited while out of scope");
    }
}

#[test]
fn revoked_access_wants_no_groups_and_intents_say_when_in_local_time() {
    let rules = MappingRules::from_json(r#"{"default_groups": ["Employees"]}"#).unwrap();
    let person = PersonKey::new("hr", "1");
    let london = timing(r#"{"time_zone": "Europe/London", "access_ends_at": "20:00"}"#);
    let leaving = record(Status::Active, None, Some("2026-12-15"));
    let desired = desired_as_of(&person, &leaving, &rules, &london, utc(2026, 12, 1, 0, 0));
    assert_eq!(desired.groups.groups.len(), 1);
    let intent = desired.next_change.map(|n| n.intent).unwrap_or_default();
    assert_eq!(intent, "suspend (termination date 2026-12-15, 20:00 Europe/London)");
    let gone = desired_as_of(&person, &leaving, &rules, &london, utc(2026, 12, 16, 0, 0));
    assert!(gone.groups.groups.is_empty() && gone.groups.complete);
}

#[test]
fn timing_errors_say_where_and_what() {
    let cases = [
        (r#"{"time_zone": "Mars/Olympus"}"#, "TIMING: \"Mars/Olympus\" is not an IANA time zone"),
        (r#"{"access_ends_at": "8pm"}"#, "TIMING: access_ends_at \"8pm\" is not a local time HH:MM"),
        (r#"{"connections": {"hr": {"invite_lead_days": 9}}}"#, "TIMING.connections.hr: invite_lead_days 9 is longer"),
        (r#"{"time_zone": 3}"#, "TIMING is not valid JSON"),
    ];
    for (json, expected) in cases {
        let error = TimingRules::from_json(json, 5).unwrap_err().to_string();
        assert!(error.starts_with(expected), "{json}: {error}");
    }
}
